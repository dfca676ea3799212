"""Residual Adds that every CPU computes alike (StaticOptions.exact_adds, export/quantization.py).

onnxruntime fuses DequantizeLinear → Add → QuantizeLinear into QLinearAdd, which rounds in float32 on x86
and in fixed point on ARM (MLAS's NEON kernel): the two differ by one step wherever the exact sum falls near
a half, and a quantized network's outputs then differ between the CPUs. With one range for both inputs and
the output the Add adds integers and both kernels give the same result. Checked on a quantized network: its
scales, and each Add's 65,536 input pairs through onnxruntime on this machine against the fixed-point
arithmetic of the ARM kernel.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import export_rgb_network, make_image

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

SIZE = 24


def network(relu_between_blocks: bool = False):
    """A stem and a linear projection, then two residual blocks whose outputs add to their inputs (a chain of
    two Adds, as in a MobileNet or EfficientNet-Lite stage), then pooling and a linear layer. With
    ``relu_between_blocks``, each block is ``relu(x + f(x))`` as in a ResNet: its Adds read a ReLU output."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(8, 16, 1), nn.ReLU6(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(),
                nn.Conv2d(16, 8, 1),
            )  # fmt: skip

        def forward(self, x):
            y = x + self.body(x)
            return torch.relu(y) if relu_between_blocks else y

    torch.manual_seed(0)
    head = [nn.ReLU()] if relu_between_blocks else []
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 1), *head, Block(), Block(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip
    return net.eval()


def quantize_both(tmp_path: Path, net) -> dict:
    """FP32 and INT8 with and without exact_adds: the files, their provenance and their logits."""
    import onnxruntime as ort

    from edgeinfer.pipeline import preprocess_batch
    from export import quantization

    fp32 = tmp_path / "fp32.onnx"
    meta = export_rgb_network(net, fp32, SIZE, "residual-test")
    calibration = [make_image(SIZE, SIZE, "RGB", seed=i) for i in range(16)]
    inputs = preprocess_batch([make_image(SIZE, SIZE, "RGB", seed=100 + i) for i in range(32)], meta)

    def logits(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": inputs})[0]

    found = {"fp32": logits(fp32)}
    for exact in (True, False):
        path = tmp_path / f"int8-{exact}.onnx"
        options = quantization.StaticOptions(calibration_method="minmax", exact_adds=exact)
        written = quantization.quantize(fp32, path, meta, "int8", options, calibration)
        found[exact] = {
            "model": onnx.load(str(path)),
            "exclude": written.provenance["quantization"]["exclude"],
            "logits": logits(path),
        }
    return found


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    return quantize_both(tmp_path_factory.mktemp("adds"), network())


def residual_adds(model) -> list[tuple[tuple[float, int], tuple[float, int], tuple[float, int]]]:
    """(scale, zero point) of both inputs and the output of every Add that reads two DequantizeLinear and
    feeds a QuantizeLinear: what onnxruntime fuses into QLinearAdd."""
    from onnx import numpy_helper

    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {name: node for node in graph.node for name in node.output}

    def quantization_of(node) -> tuple[float, int]:
        return float(values[node.input[1]]), int(values[node.input[2]])

    found = []
    for node in graph.node:
        inputs = [producers.get(name) for name in node.input]
        dequantized = all(p is not None and p.op_type == "DequantizeLinear" for p in inputs)
        if node.op_type != "Add" or not dequantized:
            continue
        out = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == node.output[0])
        found.append((quantization_of(inputs[0]), quantization_of(inputs[1]), quantization_of(out)))
    return found


def onnxruntime_add(a: tuple[float, int], b: tuple[float, int], c: tuple[float, int]) -> np.ndarray:
    """onnxruntime's QLinearAdd on this machine (a fused DQ → Add → Q graph) over every uint8 input pair, as a
    256×256 table indexed [qa, qb]."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def constant(name: str, value, dtype) -> object:
        return helper.make_tensor(name, dtype, [], [value])

    nodes = [
        helper.make_node("DequantizeLinear", ["qa", "sa", "za"], ["fa"]),
        helper.make_node("DequantizeLinear", ["qb", "sb", "zb"], ["fb"]),
        helper.make_node("Add", ["fa", "fb"], ["fc"]),
        helper.make_node("QuantizeLinear", ["fc", "sc", "zc"], ["qc"]),
    ]
    initializers = []
    for name, (scale, zero_point) in zip("abc", (a, b, c), strict=True):
        initializers.append(constant(f"s{name}", scale, TensorProto.FLOAT))
        initializers.append(constant(f"z{name}", zero_point, TensorProto.UINT8))
    graph = helper.make_graph(
        nodes, "qlinear_add",
        [helper.make_tensor_value_info(n, TensorProto.UINT8, [256, 256]) for n in ("qa", "qb")],
        [helper.make_tensor_value_info("qc", TensorProto.UINT8, [256, 256])], initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    qa, qb = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    return session.run(None, {"qa": qa, "qb": qb})[0]


def arm_add(a: tuple[float, int], b: tuple[float, int], c: tuple[float, int]) -> np.ndarray:
    """The same table by the fixed-point arithmetic of MLAS's NEON QLinearAdd (onnxruntime on ARM): both scale
    ratios as integer multipliers over a common power of two, the sum rounded half away from zero."""
    ratios = np.float32(a[0]) / np.float32(c[0]), np.float32(b[0]) / np.float32(c[0])
    exponent = int(np.frexp(max(ratios))[1]) - 1
    shift = 21 - exponent
    multipliers = [int(np.rint(np.float32(r) * np.float32(2.0**shift))) for r in ratios]
    assert 13 <= shift <= 31 and max(multipliers) >= 1 << 21, "outside the fixed-point kernel's range"
    qa, qb = np.meshgrid(np.arange(256, dtype=np.int64), np.arange(256, dtype=np.int64), indexing="ij")
    acc = (qa - a[1]) * multipliers[0] + (qb - b[1]) * multipliers[1]
    acc = acc - (acc < 0)  # NEON's vsra by the sign bit: halves then round away from zero
    rounded = (acc + (1 << (shift - 1))) >> shift
    return np.clip(np.clip(rounded, -32768, 32767) + c[1], 0, 255).astype(np.uint8)


def test_residual_adds_share_one_scale(models) -> None:
    from export.quantization import inexact_adds

    exact, default = residual_adds(models[True]["model"]), residual_adds(models[False]["model"])
    assert len(exact) == len(default) == 2
    assert all(a[0] == b[0] == c[0] for a, b, c in exact), exact
    assert not all(a[0] == b[0] == c[0] for a, b, c in default), default
    assert inexact_adds(models[True]["model"]) == [] and len(inexact_adds(models[False]["model"])) == 2
    assert models[True]["exclude"] == ["single_channel_first_conv"]  # the RGB stem is quantized


def test_the_integer_add_is_the_same_on_x86_and_arm(models) -> None:
    """Every input pair: onnxruntime here, the ARM kernel's arithmetic and the exact integer sum agree when
    the Adds share one scale; with their own ranges, x86 and ARM differ on some pairs."""
    adds = residual_adds(models[True]["model"])
    assert adds
    for a, b, c in adds:
        qa, qb = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
        integer = np.clip(qa - a[1] + qb - b[1] + c[1], 0, 255)
        np.testing.assert_array_equal(onnxruntime_add(a, b, c), integer)
        np.testing.assert_array_equal(arm_add(a, b, c), integer)
    if platform.machine().lower() in ("x86_64", "amd64"):  # on ARM, onnxruntime's kernel is arm_add's
        differing = [
            int(np.count_nonzero(onnxruntime_add(a, b, c) != arm_add(a, b, c)))
            for a, b, c in residual_adds(models[False]["model"])
        ]
        assert any(differing), differing


def test_one_range_costs_little_against_fp32(models) -> None:
    """The shared range is the union of the calibrated ones: the network stays as close to FP32."""
    from export.sensitivity import sqnr_db

    reference = models["fp32"]
    assert sqnr_db(reference, models[True]["logits"]) > sqnr_db(reference, models[False]["logits"]) - 3


def test_adds_that_read_a_relu_keep_its_clamp_and_a_float_stem(tmp_path) -> None:
    """relu(x + f(x)): onnxruntime drops the ReLU and clamps with its output's range, so that range stays as
    calibrated; those Adds then round differently on other CPUs, and the first conv stays float (its own
    rounding differences give the self-test its tolerance)."""
    from export.quantization import inexact_adds
    from export.sensitivity import sqnr_db

    found = quantize_both(tmp_path, network(relu_between_blocks=True))
    reference = found["fp32"]
    assert sqnr_db(reference, found[True]["logits"]) > sqnr_db(reference, found[False]["logits"]) - 3
    assert inexact_adds(found[True]["model"])
    assert found[True]["exclude"] == ["single_channel_first_conv", "first_conv"]
    graph = found[True]["model"].graph
    first = next(node for node in graph.node if node.op_type == "Conv")
    assert first.input[1] in {t.name for t in graph.initializer}  # float weights: no DequantizeLinear
