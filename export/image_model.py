"""An image model: one ONNX file that takes the decoded image and holds the model's whole preprocessing.

Usage:
    python -m export.image_model model.onnx --out model.image.onnx
    python export/to_onnx.py runs/cnn-improved/model.pt --out model.onnx --image-model

The input is ``image``: uint8 [H, W, C] as any decoder gives it (H, W dynamic; C = 1, 3 or 4 — L, RGB or RGBA
as a browser canvas gives it; LA too), converted to the model's image mode as Pillow's ``convert`` does. The
graph then runs the model's preprocessing spec bit-exactly (export/image_preprocessing.py) and the network,
and outputs the network's output (``logits``), ``probabilities`` (softmax) and, for testing, ``preprocessed``
(the float32 [1, C, H, W] tensor). Standard ONNX operators only (``OPERATORS``); the network's IR version and
opsets are kept (opset 17 at least). The file carries the network's metadata with the input declared as
``{"name": "image", "shape": [null, null, null], "layout": "HWC", "dtype": "uint8"}``, and its self-test, so
``edgeinfer verify`` and ``edgeinfer predict`` work on it; :func:`build_image_model` runs the self-test
before it returns.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinfer.metadata import METADATA_KEY, InputSpec, ModelMetadata
from export import ExportError

if TYPE_CHECKING:
    import onnx

INPUT = "image"
PROBABILITIES = "probabilities"
PREPROCESSED = "preprocessed"
MIN_OPSET = 17  # the preprocessing graph's operators are written against opset 17 (also valid up to 21)
MAX_IR_VERSION = 10  # onnxruntime 1.18, the oldest the runtime supports, reads IR versions up to 10
PREFIX = "image_model/"
# Every operator the preprocessing graph may use (all in the default ONNX domain).
OPERATORS = (
    "Abs", "Add", "And", "Cast", "Ceil", "Concat", "Constant", "CumSum", "Div", "Equal", "Expand",
    "Floor", "Gather", "Greater", "GreaterOrEqual", "Identity", "If", "Less", "LessOrEqual", "MatMulInteger",
    "Max", "Min", "Mod", "Mul", "Neg", "Not", "Pad", "Range", "ReduceMax", "ReduceMin", "ReduceSum",
    "Reshape", "Round", "Shape", "Sin", "Slice", "Softmax", "Sub", "Tile", "Transpose", "Unsqueeze", "Where",
)  # fmt: skip


def image_model_path(model_path: str | Path) -> Path:
    """Where an image model goes by default: ``<model>.image.onnx`` beside the model."""
    path = Path(model_path)
    return path.with_name(path.stem + ".image.onnx")


def build_image_model(model_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the image model of the exported model at ``model_path`` to ``out_path`` (default:
    :func:`image_model_path`); checked with ``onnx.checker`` (full check) and by its self-test.

    Raises:
        ExportError: the model has no edgeinfer metadata, a preprocessing step cannot be embedded (the
            message names it), the graph fails the checker, or the image model fails its self-test.
    """
    import onnx

    from edgeinfer.errors import EdgeInferError
    from export.conversion import save_model

    model_path = Path(model_path)
    out = Path(out_path) if out_path is not None else image_model_path(model_path)
    network = onnx.load(str(model_path))
    props = {p.key: p.value for p in network.metadata_props}
    try:
        metadata = ModelMetadata.from_props(props)
    except EdgeInferError as e:
        raise ExportError(f"{model_path}: {e}") from None
    merged = merge(network, metadata)
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    image_metadata = dataclasses.replace(
        metadata,
        input=InputSpec(INPUT, (None, None, None), layout="HWC", dtype="uint8"),
        provenance={**metadata.provenance, "image_model": {"network_sha256": digest}},
    )
    props[METADATA_KEY] = image_metadata.to_json()
    del merged.metadata_props[:]
    for key, value in props.items():
        merged.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(merged, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{out}: the image model fails onnx.checker: {str(e).splitlines()[0]}") from None
    save_model(merged, out)
    _self_test(out)
    return out


def merge(network: onnx.ModelProto, metadata: ModelMetadata) -> onnx.ModelProto:
    """The preprocessing graph for ``metadata`` in front of ``network`` (an onnx.ModelProto); outputs
    the network's output, the probabilities and the preprocessed tensor."""
    from onnx import helper

    from export.image_preprocessing import preprocessing
    from export.onnx_graph import FLOAT, UINT8, Graph

    graph = network.graph
    if len(graph.input) != 1 or graph.input[0].name != metadata.input.name:
        raise ExportError(f"image model: expected one network input named {metadata.input.name!r}")
    names = {v for n in graph.node for v in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    taken = names & {INPUT, PROBABILITIES, PREPROCESSED} | {n for n in names if n.startswith(PREFIX)}
    if taken:
        raise ExportError(f"image model: the network already uses the names {sorted(taken)}")
    g = Graph(PREFIX)
    tensor = preprocessing(g, INPUT, metadata.preprocessing, metadata.image_mode)
    head = [
        helper.make_node("Identity", [tensor], [PREPROCESSED], name=PREFIX + "preprocessed"),
        helper.make_node("Identity", [PREPROCESSED], [metadata.input.name], name=PREFIX + "network_input"),
    ]
    output = graph.output[0]
    tail = []
    outputs = [output]
    if metadata.output == "logits":
        tail.append(helper.make_node("Softmax", [output.name], [PROBABILITIES], axis=1,
                                     name=PREFIX + "softmax"))  # fmt: skip
        outputs.append(helper.make_tensor_value_info(PROBABILITIES, FLOAT, ["batch", len(metadata.labels)]))
    outputs.append(helper.make_tensor_value_info(PREPROCESSED, FLOAT, [1, *metadata.input.shape[1:]]))
    merged_graph = helper.make_graph(
        [*g.constants, *g.nodes, *head, *graph.node, *tail],
        graph.name or "image_model",
        [helper.make_tensor_value_info(INPUT, UINT8, ["height", "width", "channels"])],
        outputs,
        initializer=list(graph.initializer),
        value_info=list(graph.value_info),
    )
    opsets = [
        helper.make_opsetid(o.domain, max(o.version, MIN_OPSET) if o.domain in ("", "ai.onnx") else o.version)
        for o in network.opset_import
    ]
    if network.ir_version > MAX_IR_VERSION:
        raise ExportError(f"image model: the network's IR version {network.ir_version} is newer than "
                          f"{MAX_IR_VERSION}, which onnxruntime 1.18 reads")  # fmt: skip
    merged = helper.make_model(merged_graph, opset_imports=opsets, producer_name="edgeinfer.image_model",
                               ir_version=network.ir_version)  # fmt: skip
    return merged


def preprocessing_model(spec: dict[str, Any], image_mode: str, opset: int = MIN_OPSET) -> onnx.ModelProto:
    """The preprocessing graph alone, as an onnx.ModelProto: ``image`` → ``preprocessed`` (what the tests
    compare with edgeinfer's NumPy transforms and the benchmark times).

    Raises:
        UnsupportedStep: a step cannot be embedded.
    """
    from onnx import helper

    from export.image_preprocessing import preprocessing
    from export.onnx_graph import FLOAT, UINT8, Graph

    g = Graph(PREFIX)
    tensor = preprocessing(g, INPUT, spec, image_mode)
    graph = helper.make_graph(
        [*g.constants, *g.nodes, helper.make_node("Identity", [tensor], [PREPROCESSED])],
        "preprocessing",
        [helper.make_tensor_value_info(INPUT, UINT8, ["height", "width", "channels"])],
        [helper.make_tensor_value_info(PREPROCESSED, FLOAT, [1, None, None, None])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _self_test(path: Path) -> None:
    """Run the copied self-test on the image model: its in-graph preprocessing must give the tensors the
    NumPy preprocessing gave at export, bit for bit, and the outputs must agree."""
    from edgeinfer import Model

    model = Model(path, threads=1)
    if model.self_test_document() is None:
        return
    result = model.verify()
    if not result.passed:
        raise ExportError(f"{path}: the image model fails its self-test: {result.reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the image model of an exported edgeinfer model.")
    parser.add_argument("model", help="an ONNX model exported by edgeinfer (with its metadata)")
    parser.add_argument("--out", help="the image model to write (default: <model>.image.onnx)")
    args = parser.parse_args(argv)
    try:
        out = build_image_model(args.model, args.out)
    except (ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
