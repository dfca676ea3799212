"""Model files that test themselves: `edgeinfer verify` / `Model.verify()` against the golden vectors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeinfer import Model
from edgeinfer.errors import MetadataError, ModelError
from edgeinfer.metadata import METADATA_KEY
from edgeinfer.model import DEFAULT_MODEL
from edgeinfer.selftest import SELF_TEST_KEY, build_self_test, generate_image
from export.self_test import embed_self_test
from tests.fixtures import gray_model, make_image, make_model, replace_props, rgb_model

ROOT = Path(__file__).resolve().parents[1]


def _verify_cli(model: Path | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "edgeinfer", "verify"] + ([str(model)] if model else [])
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT)


def _props(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_the_bundled_model_passes_its_self_test_without_torch():
    proc = _verify_cli()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("cases pass")
    result = Model().verify()
    assert result.passed and len(result.cases) >= 5
    assert all(c.preprocessing_exact for c in result.cases)


def test_the_bundled_model_keeps_its_output_in_float_and_a_measured_tolerance():
    import onnx

    model = onnx.load(str(DEFAULT_MODEL))
    producer = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    assert producer.op_type not in ("DequantizeLinear", "QuantizeLinear")  # the logits are not rounded
    assert "QuantizeLinear" in {n.op_type for n in model.graph.node}  # the network inside is quantized
    document = json.loads(_props(DEFAULT_MODEL)[SELF_TEST_KEY])
    assert document["tolerance_basis"].startswith("measured change under")
    assert 1e-3 < document["tolerance"] < 0.1


def test_float_output_removes_the_rounding_of_the_logits(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.float_output import keep_output_float

    # x + b, quantized to a uint8 grid of step 0.5 and dequantized: what onnxruntime's quantizer emits last.
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "b"], ["sum"]),
            helper.make_node("QuantizeLinear", ["sum", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["logits"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])],
        [
            numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), "b"),
            numpy_helper.from_array(np.array(0.5, np.float32), "scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "zero"),
        ],
    )
    path = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = np.array([[1.0, 1.1, 0.9]], np.float32)
    before = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    assert keep_output_float(path)
    after = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(before, [[1.0, 1.5, 1.0]])  # rounded: a tie between classes 0 and 2
    np.testing.assert_array_equal(after, x + np.array([0.1, 0.2, 0.3], np.float32))
    assert [n.op_type for n in onnx.load(path).graph.node] == ["Add"]
    assert not keep_output_float(path)  # nothing left to remove


def test_edited_preprocessing_fails_with_a_one_line_reason(tmp_path):
    path = shutil.copy(DEFAULT_MODEL, tmp_path / "edited.onnx")
    props = _props(path)
    metadata = json.loads(props[METADATA_KEY])
    normalize = metadata["preprocessing"]["transforms"][-1]
    normalize["mean"] = [0.3]  # a plausible edit: another mean
    replace_props(path, {**props, METADATA_KEY: json.dumps(metadata)})
    proc = _verify_cli(path)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()
    assert error == [
        f"Error: {path}: self-test failed: case 'seeded 28x28': the preprocessed tensor differs from the one "
        "recorded at export"
    ]


def test_altered_weights_fail(tmp_path):
    import onnx
    from onnx import numpy_helper

    path = tmp_path / "altered.onnx"
    model = onnx.load(str(DEFAULT_MODEL))
    # The first convolution is kept in float: perturb its weights slightly.
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    weight = next(t for t in floats if len(t.dims) == 4)
    values = numpy_helper.to_array(weight).copy()
    values *= np.float32(1.3)
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(path))
    proc = _verify_cli(path)
    assert proc.returncode == 1
    assert "self-test failed: case" in proc.stderr and "outputs differ by up to" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_model_without_self_test_says_so(tmp_path):
    path = shutil.copy(gray_model(), tmp_path / "plain.onnx")
    proc = _verify_cli(path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"Error: {path}: the model carries no self-test (export it with export/to_onnx.py to add one)"
    )
    with pytest.raises(ModelError, match="carries no self-test"):
        Model(path).verify()


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(tolerance=float("nan")),
        lambda d: d.update(version=True),
        lambda d: d["cases"][0].update(size=[10**9, 3]),
        lambda d: d["cases"][0].update(top1=99),
        lambda d: d.update(cases=[]),
        lambda d: d["cases"][0].update(output=["x"]),
        lambda d: d["cases"][0].update(name="\x1b[2Jcleared"),
        lambda d: d["made_with"].update(machine="x\ny"),
        lambda d: d["cases"][0].update(png="!!not base64"),
        lambda d: d["cases"][0].update(png="aGVsbG8="),  # base64 of "hello": not an image
        lambda d: d.update(output_std=-1.0),
    ],
)
def test_a_malformed_self_test_is_a_metadata_error(tmp_path, edit):
    path = shutil.copy(DEFAULT_MODEL, tmp_path / "bad.onnx")
    props = _props(path)
    document = json.loads(props[SELF_TEST_KEY])
    edit(document)
    replace_props(path, {**props, SELF_TEST_KEY: json.dumps(document)})
    with pytest.raises(MetadataError, match=f"{SELF_TEST_KEY}: "):
        Model(path).verify()
    proc = _verify_cli(path)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("fixture", [gray_model, rgb_model])
def test_an_fp32_export_records_a_tight_tolerance_and_passes(tmp_path, fixture):
    path = shutil.copy(fixture(), tmp_path / "fp32.onnx")
    document = embed_self_test(path)
    assert document["tolerance"] < 1e-3
    assert document["tolerance_basis"] != "output quantization step"
    result = Model(path).verify()
    assert result.passed, result.reason


@pytest.fixture(scope="module")
def int8_cnn(tmp_path_factory) -> Path:
    """The grayscale fixture CNN, statically quantized by export/ (QDQ, per-channel int8 weights, first
    convolution in float, logits in float) on seeded photo-like images, with its self-test."""
    from export import conversion, quantization

    folder = tmp_path_factory.mktemp("int8")
    fp32 = make_model(folder / "fp32.onnx")
    images = [make_image(28, 28, "L", seed=i) for i in range(64)]
    out = folder / "int8.onnx"
    options = quantization.StaticOptions(calibration_size=len(images))
    quantization.quantize(fp32, out, conversion.load_metadata(fp32), "int8", options, images)
    embed_self_test(out)
    return out


def _int8_weights(path: Path) -> list[str]:
    """The int8 weight tensors (initializers dequantized by a DequantizeLinear) of a QDQ model."""
    import onnx

    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    return [
        n.input[0]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in initializers
        and initializers[n.input[0]].data_type == onnx.TensorProto.INT8
        and len(initializers[n.input[0]].dims) >= 2
    ]


def _one_step_off(path: Path, weight: str, out: Path) -> Path:
    """``path`` with every int8 value of ``weight`` one quantization step higher (clipped at 127): the
    network a device computes when one kernel reads its weights wrong by one step."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    tensor = next(t for t in model.graph.initializer if t.name == weight)
    values = numpy_helper.to_array(tensor).astype(np.int16) + 1
    tensor.CopyFrom(numpy_helper.from_array(np.clip(values, -128, 127).astype(np.int8), weight))
    onnx.save(model, str(out))
    return out


def test_a_quantized_model_passes_and_one_weight_tensor_one_step_off_fails(int8_cnn, tmp_path):
    proc = _verify_cli(int8_cnn)
    assert proc.returncode == 0, proc.stderr
    weights = _int8_weights(int8_cnn)
    assert len(weights) == 3  # the second convolution and both fully connected layers
    for i, weight in enumerate(weights):
        off = _one_step_off(int8_cnn, weight, tmp_path / f"off{i}.onnx")
        proc = _verify_cli(off)
        assert proc.returncode == 1, f"{weight} one step off passed:\n{proc.stdout}"
        error = proc.stderr.strip().splitlines()
        assert len(error) == 1 and "self-test failed: case" in error[0]
        assert "outputs differ by up to" in error[0]


def test_the_bundled_model_with_one_weight_tensor_one_step_off_fails(tmp_path):
    weights = _int8_weights(DEFAULT_MODEL)
    assert weights
    for i, weight in enumerate(weights):
        result = Model(_one_step_off(DEFAULT_MODEL, weight, tmp_path / f"off{i}.onnx")).verify()
        assert not result.passed and "outputs differ by up to" in result.reason, weight


def test_a_quantized_model_has_a_tolerance_small_against_the_spread_of_its_outputs(int8_cnn):
    document = json.loads(_props(int8_cnn)[SELF_TEST_KEY])
    outputs = [np.array(case["output"]) for case in document["cases"]]
    spread = float(np.mean([np.std(o) for o in outputs]))
    assert document["output_std"] == pytest.approx(spread, rel=1e-12)
    assert 0 < document["tolerance"] < 0.05 * spread
    # An unoptimised session runs QDQ as float: not a kernel any device runs for a quantized model.
    assert "unoptimised" not in document["tolerance_basis"]


def test_a_probe_that_differs_sets_the_tolerance():
    model = Model(gray_model())
    document = build_self_test(model, probes={"a shifted copy": lambda batch: model.run(batch) + 0.05})
    assert document["tolerance_basis"] == "measured difference from a shifted copy x2"
    assert document["tolerance"] == pytest.approx(0.1, rel=1e-4)


def _mixed_self_test(int8: Path, kept: str, out: Path, monkeypatch) -> dict:
    """``int8`` with the activation ``kept`` in float, recorded in its provenance as export/mixed.py does,
    and its self-test. The probe moves float-kept tensors by 1 ulp; 8192 ulps here, where a small network's
    roundings do change."""
    import dataclasses

    import onnx

    from export import conversion, self_test
    from export.sensitivity import keep_tensors_float, quantized_activations

    model = onnx.load(str(int8))
    assert kept in quantized_activations(model)
    metadata = conversion.load_metadata(int8)
    record = {**metadata.provenance["quantization"], "kept_in_float": [kept]}
    mixed = keep_tensors_float(model, [kept])
    conversion.write_metadata(
        mixed, dataclasses.replace(metadata, provenance={**metadata.provenance, "quantization": record})
    )
    conversion.save_model(mixed, out)
    monkeypatch.setattr(self_test, "FLOAT_KEPT_ULPS", 8192)
    return embed_self_test(out)


def test_activations_kept_in_float_widen_the_tolerance_by_what_their_rounding_moves(
    int8_cnn, tmp_path, monkeypatch
):
    """auto's int8-mixed computes around a float-kept activation in float, which another CPU rounds
    differently (measured on emulated aarch64, export/self_test.py); the self-test must allow for that."""
    document = _mixed_self_test(int8_cnn, "/4/Relu_output_0", tmp_path / "mixed.onnx", monkeypatch)
    assert document["tolerance_basis"].startswith(
        "measured difference from the activations kept in float 8192"
    )
    assert Model(tmp_path / "mixed.onnx").verify().passed


def test_an_rgb_model_whose_quantized_image_is_kept_in_float_gets_its_self_test(tmp_path, monkeypatch):
    """An RGB network's first conv is quantized, so the image itself is a quantized activation, the first in
    graph order: the sensitivity loop may keep it in float, and the probe must scale a graph input."""
    from export import conversion, quantization

    fp32 = rgb_model()
    images = [make_image(32, 32, "RGB", seed=i) for i in range(32)]
    int8 = tmp_path / "int8.onnx"
    options = quantization.StaticOptions(calibration_size=len(images))
    quantization.quantize(fp32, int8, conversion.load_metadata(fp32), "int8", options, images)
    document = _mixed_self_test(int8, "input", tmp_path / "mixed.onnx", monkeypatch)
    assert document["tolerance_basis"].startswith("measured difference from the activations kept in float")
    assert Model(tmp_path / "mixed.onnx").verify().passed


def test_cases_cover_the_sizes_the_preprocessing_accepts():
    cases = json.loads(_props(DEFAULT_MODEL)[SELF_TEST_KEY])["cases"]
    resized = {tuple(c["size"]) for c in cases if "size" in c}
    assert (28, 28) in resized and len(resized) == 5  # Resize + CenterCrop take any size
    fixed = shutil.copy(gray_model(), Path(gray_model()).with_name("fixed-copy.onnx"))
    document = embed_self_test(fixed)  # ToTensor + Normalize only: just the network's 28x28
    assert [c["size"] for c in document["cases"]] == [[28, 28]]


def _splitmix64(x: int) -> int:
    mask = 2**64 - 1
    z = x & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_generated_images_follow_the_documented_integer_recipe(mode):
    # Recomputed with Python integers, independently of NumPy's uint64 wrap-around.
    h, w, seed = 5, 7, 12345
    channels = 1 if mode == "L" else 3
    expected = np.zeros((h, w, channels), np.uint8)
    for y in range(h):
        for x in range(w):
            for c in range(channels):
                index = (y * w + x) * channels + c
                noise = (_splitmix64(index + seed * 0x9E3779B97F4A7C15) >> 59) - 16
                gradient = (y * 256 // h + x * 512 // w + c * 85) % 256
                expected[y, x, c] = min(255, max(0, gradient + noise))
    image = generate_image(seed, h, w, mode)
    assert np.array_equal(image, expected[:, :, 0] if mode == "L" else expected)


def test_generating_a_large_case_needs_little_more_memory_than_the_image():
    import tracemalloc  # NumPy reports its array allocations to tracemalloc

    tracemalloc.start()
    try:
        image = generate_image(7, 1024, 1024, "RGB")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * image.nbytes, f"peak {peak} bytes for an image of {image.nbytes}"
