"""Keep a quantized model's output in float: no QuantizeLinear → DequantizeLinear pair on the logits.

onnxruntime's static quantizer also quantizes the graph output. Rounding the logits to a uint8 grid costs
nothing in speed or size to avoid, but it creates exact ties between classes and lets CPUs whose integer
kernels differ by one step disagree on the top-1 class (measured under emulated ARM64: see the README's
"Platforms"). Removing the pair leaves the last layer's float result as the output.
"""

from __future__ import annotations

from pathlib import Path


def keep_output_float(path: str | Path) -> bool:
    """Rewrite the model at ``path`` so that each graph output skips a final Q → DQ pair.

    Returns:
        Whether anything was removed.
    """
    import onnx

    from export.conversion import save_model

    model = onnx.load(str(path))
    graph = model.graph
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    removed = []
    for output in graph.output:
        dequantize = producers.get(output.name)
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        quantize = producers.get(dequantize.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear" or consumers[quantize.output[0]] != 1:
            continue
        source = producers.get(quantize.input[0])
        if source is None or consumers[quantize.input[0]] != 1:
            continue  # a graph input, or a float value also used elsewhere: leave the graph as it is
        source.output[list(source.output).index(quantize.input[0])] = output.name
        removed += [quantize, dequantize]
    if not removed:
        return False
    for node in removed:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    save_model(model, path)
    return True
