"""Mixed precision chosen by measured sensitivity: keep in float the fewest nodes that bring INT8 to the bar.

The quantized activations are ranked by what their quantization costs the output
(:func:`choose_float_tensors`: each kept in float alone, the SQNR of the logits against FP32 measured), then
:func:`keep_in_float` keeps the most harmful in float one more at a time until the agreement measured by the
caller meets the target, and finally drops any kept node the agreement does not need, so the set kept is
minimal: removing any one of its nodes misses the target. Progress is printed at every measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.report import CONFIDENT, Agreement, agreement, probabilities


@dataclass(frozen=True)
class KeptInFloat:
    """What the loop kept in float, whether the target was met, and every measurement on the way."""

    nodes: tuple[str, ...]
    agreement: Agreement
    met: bool
    history: list[tuple[tuple[str, ...], Agreement]] = field(default_factory=list)


def keep_in_float(
    ranked: Sequence[str],
    agreement_of: Callable[[tuple[str, ...]], Agreement],
    target: Agreement,
    *,
    max_kept: int | None = None,
    progress: Callable[[str], None] = print,
) -> KeptInFloat:
    """Greedy accuracy-aware fallback: ``ranked`` (most harmful first) kept in float one by one until
    ``agreement_of(kept)`` meets ``target`` (overall, and on confident images when the target has that bar),
    then each kept node dropped again when the target still holds.

    ``agreement_of`` builds and measures the model with those nodes in float (top-1 agreement with FP32).
    Stops at ``max_kept`` nodes (default: all); ``met`` says whether the target was reached, and when it
    was not, the set returned is the best one measured (the largest margin on its worst criterion, the
    smallest of equals).
    """
    history: list[tuple[tuple[str, ...], Agreement]] = []

    def measure(kept: tuple[str, ...]) -> float:
        agreement = agreement_of(kept)
        history.append((kept, agreement))
        progress(f"      float: {len(kept):3d} node(s) → agreement {agreement}"
                 f"{'  (' + kept[-1] + ')' if kept else ''}")  # fmt: skip
        return agreement.margin(target)

    kept: tuple[str, ...] = ()
    margin = measure(kept)
    limit = len(ranked) if max_kept is None else min(max_kept, len(ranked))
    for node in ranked[:limit]:
        if margin >= 0:
            break
        kept += (node,)
        margin = measure(kept)
    if margin < 0:  # not met: the best set measured, the smallest among equals
        best, agreement = max(history, key=lambda h: (h[1].margin(target), -len(h[0])))
        return KeptInFloat(best, agreement, False, history)
    for node in reversed(kept[:-1]):  # the last one added was needed: without it the target was missed
        trial = tuple(n for n in kept if n != node)
        if measure(trial) >= 0:
            kept = trial
    agreement = next(a for k, a in reversed(history) if k == kept)
    return KeptInFloat(kept, agreement, True, history)


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``other`` against ``reference``, in dB."""
    noise = np.linalg.norm((reference - other).ravel())
    return float(20 * np.log10(max(np.linalg.norm(reference.ravel()), 1e-12) / max(noise, 1e-12)))


def quantized_activations(model: Any) -> dict[str, tuple[float, int, np.dtype]]:
    """Activation tensors of a QDQ model that go through QuantizeLinear → DequantizeLinear:
    {tensor: (scale, zero point, integer type)}. Weights (stored quantized, no QuantizeLinear) are not."""
    from onnx import numpy_helper

    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    found = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in consts and consts[node.input[1]].size == 1:
            zero = consts[node.input[2]]
            found[node.input[0]] = (float(consts[node.input[1]]), int(zero), zero.dtype)
    return found


def local_sqnr(
    activations: Mapping[str, np.ndarray], quantized: Mapping[str, tuple[float, int, np.dtype]]
) -> dict[str, float]:
    """SQNR (dB) of each float activation against itself through its own Q/DQ (scale, zero point, range):
    how much signal quantizing that one tensor loses, alone."""
    out = {}
    for name, (scale, zero, dtype) in quantized.items():
        if name not in activations:
            continue
        info = np.iinfo(dtype)
        x = activations[name]
        dq = (np.clip(np.round(x / scale) + zero, info.min, info.max) - zero) * scale
        out[name] = sqnr_db(x, dq)
    return out


def keep_tensors_float(model: Any, tensors: Sequence[str]) -> Any:
    """``model`` (QDQ, an onnx ModelProto; edited in place and returned) with the activation tensors
    ``tensors`` left in float: each QuantizeLinear → DequantizeLinear pair becomes a Clip to the pair's
    range, so the nodes reading the tensor compute in float (onnxruntime fuses int8 kernels only between
    Q/DQ pairs). The Clip matters: onnxruntime's quantizer removes a ReLU6 whose range the Q/DQ already
    clamps, so bypassing the pair alone would drop the activation (measured: agreement 67 % → 3 %). The
    scales and zero points only the bypassed pairs read are removed.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    ranges = quantized_activations(model)
    wanted = set(tensors) & set(ranges)
    quantize = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in wanted}
    dequantized = {n.output[0]: quantize[n.input[0]].input[0] for n in graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in quantize}  # fmt: skip
    nodes = []
    for node in graph.node:
        if node.output[0] in quantize:
            continue
        if node.output[0] in dequantized:
            tensor = dequantized[node.output[0]]
            scale, zero, dtype = ranges[tensor]
            info = np.iinfo(dtype)
            bounds = [f"{tensor}_float_min", f"{tensor}_float_max"]
            for name, level in zip(bounds, (info.min, info.max), strict=True):
                graph.initializer.append(numpy_helper.from_array(np.float32((level - zero) * scale), name))
            node = helper.make_node("Clip", [tensor, *bounds], [node.output[0]], name=f"{tensor}_float_clip")
        nodes.append(node)
    bypassed = {name for n in graph.node if n.output[0] in quantize or n.output[0] in dequantized
                for name in n.input[1:]}  # fmt: skip
    read = {name for node in nodes for name in node.input}
    constants = [t for t in graph.initializer if t.name not in bypassed or t.name in read]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(constants)
    return model


def scale_tensors(model: Any, tensors: Sequence[str], factor: float) -> Any:
    """``model`` (an onnx ModelProto; edited in place and returned) with every reader of each of ``tensors``
    reading it multiplied by ``factor``: what another CPU's float rounding does to a tensor computed in
    float, for the self-test's tolerance (export/self_test.py)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    wanted = set(tensors)

    def scaled(name: str) -> Any:
        graph.initializer.append(numpy_helper.from_array(np.float32(factor), f"{name}_factor"))
        return helper.make_node("Mul", [name, f"{name}_factor"], [f"{name}_scaled"])

    for node in graph.node:
        node.input[:] = [f"{name}_scaled" if name in wanted else name for name in node.input]
    nodes = [scaled(value.name) for value in graph.input if value.name in wanted]  # the image: first
    for node in graph.node:
        nodes.append(node)
        nodes.extend(scaled(name) for name in sorted(set(node.output) & wanted))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def choose_float_tensors(
    fp32_path: str | Path,
    qdq_path: str | Path,
    inputs: np.ndarray,
    target: Agreement,
    *,
    output: str = "logits",
    max_kept: int = 16,
    tensors: Sequence[str] | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[Any, KeptInFloat, dict[str, float]]:
    """Mixed precision for a QDQ model: each quantized activation (or each of ``tensors``, to bound the
    cost: one model run per tensor) kept in float alone and measured (SQNR of the logits against FP32 on
    ``inputs``), ranked by that gain, then :func:`keep_in_float` to the top-1 agreement ``target`` (FP32
    confident where its top probability, from its ``output`` kind, is ≥ report.CONFIDENT). Returns the
    model with the chosen tensors in float, the loop's result, and the measured logit SQNR (dB) per tensor.
    """
    import onnx

    reference = _logits(str(fp32_path), inputs)
    expected = reference.argmax(1)
    confident = probabilities(reference, output).max(1) >= CONFIDENT
    quantized = onnx.load(str(qdq_path))
    tensors = list(quantized_activations(quantized) if tensors is None else tensors)
    progress(f"      sensitivity: {len(tensors)} quantized activations, each kept in float alone, "
             f"on {len(inputs)} images")  # fmt: skip
    gain = {}
    for number, tensor in enumerate(tensors, 1):
        logits = _logits(keep_tensors_float(onnx.load(str(qdq_path)), [tensor]).SerializeToString(), inputs)
        gain[tensor] = sqnr_db(reference, logits)
        if number % 10 == 0 or number == len(tensors):
            progress(f"      sensitivity: {number}/{len(tensors)} measured")
    ranked = sorted(tensors, key=lambda t: -gain[t])

    def agreement_of(kept: tuple[str, ...]) -> Agreement:
        model = keep_tensors_float(onnx.load(str(qdq_path)), kept).SerializeToString()
        return agreement(_logits(model, inputs).argmax(1), expected, confident)

    result = keep_in_float(ranked, agreement_of, target, max_kept=max_kept, progress=progress)
    return keep_tensors_float(quantized, result.nodes), result, gain


def logit_sqnr(fp32_path: str | Path, qdq_path: str | Path, inputs: np.ndarray) -> float:
    """SQNR (dB) of the logits of the QDQ model against FP32's on ``inputs``."""
    return sqnr_db(_logits(str(fp32_path), inputs), _logits(str(qdq_path), inputs))


def _logits(model: str | bytes, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # keep quiet about anything left unused by the bypassed pairs
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: inputs[i : i + batch]})[0] for i in range(0, len(inputs), batch)]
    )
