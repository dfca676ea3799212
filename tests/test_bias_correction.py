"""Static INT8's two fixes for mobile networks, checked with real onnxruntime sessions against the FP32 file:
bias correction (export/bias_correction.py) and a first convolution that really stays float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import export_rgb_network, make_image

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

SIZE = 24


def depthwise_network():
    """Pad (reflect: not foldable into the conv) → conv → ReLU6 → 5×5 depthwise conv → ReLU6 → pool →
    linear, like a MobileNet stem. In each depthwise channel one weight sets the int8 scale and the other
    24 are rounded down by 0.45 of a step: the rounding error does not cancel, as in EfficientNet-Lite0."""
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(3, 16, 3), nn.ReLU6(),
        nn.Conv2d(16, 16, 5, padding=2, groups=16), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    steps = torch.randint(1, 12, (16, 1, 5, 5)).float() + 0.45
    steps[:, :, 2, 2] = 127
    with torch.no_grad():
        net[1].bias.add_(2.0)  # inputs well above zero: the shift is (W - Wq) · E[x]
        net[3].weight.copy_(steps / 127 * 0.2)
    return net.eval()


def export(tmp_path: Path) -> tuple[Path, object]:
    path = tmp_path / "fp32.onnx"
    return path, export_rgb_network(depthwise_network(), path, SIZE, "depthwise-test")


def logits(path: Path, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": inputs})[0]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> dict:
    from edgeinfer.pipeline import preprocess_batch
    from export import quantization
    from export.quantization import StaticOptions

    tmp_path = tmp_path_factory.mktemp("bias")
    fp32, meta = export(tmp_path)
    calibration = [make_image(SIZE, SIZE, "RGB", seed=i) for i in range(32)]
    held_out = preprocess_batch([make_image(SIZE, SIZE, "RGB", seed=100 + i) for i in range(64)], meta)
    paths = {"fp32": fp32}
    for corrected in (False, True):
        paths[corrected] = tmp_path / f"int8-{corrected}.onnx"
        options = StaticOptions(
            calibration_method="minmax", bias_correction=corrected, exclude=("first_conv",)
        )
        quantization.quantize(fp32, paths[corrected], meta, "int8", options, calibration)
    paths["int8 stem"] = tmp_path / "int8-stem.onnx"
    options = StaticOptions(calibration_method="minmax")  # the default keeps only a one-channel stem float
    quantization.quantize(fp32, paths["int8 stem"], meta, "int8", options, calibration)
    return {"paths": paths, "reference": logits(fp32, held_out), "inputs": held_out}


def test_bias_correction_removes_the_systematic_error_of_int8_weights(quantized) -> None:
    reference, inputs = quantized["reference"], quantized["inputs"]
    bias = {c: np.abs((logits(quantized["paths"][c], inputs) - reference).mean(axis=0)).max() for c in (0, 1)}
    # The mean logit error over images other than the calibration ones: what the rounding shifted.
    assert bias[True] < 0.25 * bias[False], bias


def test_bias_correction_changes_only_int32_biases(quantized) -> None:
    from onnx import numpy_helper

    graphs = [onnx.load(str(quantized["paths"][c])).graph for c in (False, True)]
    tensors = [{t.name: numpy_helper.to_array(t) for t in graph.initializer} for graph in graphs]
    assert tensors[0].keys() == tensors[1].keys()
    changed = [name for name in tensors[0] if not np.array_equal(tensors[0][name], tensors[1][name])]
    assert changed and all(tensors[1][name].dtype == np.int32 for name in changed), changed


def test_a_first_convolution_kept_float_keeps_what_feeds_it_float(quantized) -> None:
    """No Q/DQ on the image or the Pad before a float first conv: onnxruntime would quantize that conv's
    weights itself at load time (its input being dequantized) and the "float" stem would run in int8."""
    graph = onnx.load(str(quantized["paths"][True])).graph
    producers = {name: node for node in graph.node for name in node.output}
    first = next(node for node in graph.node if node.op_type == "Conv")
    assert producers[first.input[0]].op_type == "Pad"
    assert first.input[1] not in producers  # float weights (an initializer, no DequantizeLinear)
    assert not [n.name for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input"]
    pad = producers[first.input[0]]
    assert pad.input[0] == "input"


def test_single_channel_first_conv_quantizes_an_rgb_stem(quantized) -> None:
    """``single_channel_first_conv`` keeps only a one-channel first conv in float: this RGB stem gets
    per-channel int8 weights and a quantized input (its Pad included)."""
    graph = onnx.load(str(quantized["paths"]["int8 stem"])).graph
    producers = {name: node for node in graph.node for name in node.output}
    first = next(node for node in graph.node if node.op_type == "Conv")
    assert producers[first.input[1]].op_type == "DequantizeLinear"
    assert producers[first.input[0]].op_type == "DequantizeLinear"
