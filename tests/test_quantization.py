"""The keep-in-float loop of export/sensitivity.py: the fewest float nodes that meet the agreement target;
calibrating once (export/quantization.py) and the latency's time budget (export/report.py)."""

from __future__ import annotations

import numpy as np
import pytest

from export.quantization import shape_arithmetic
from export.report import Agreement
from export.sensitivity import keep_in_float, sqnr_db

BAR = Agreement(0.99, None)


def harm(costs: dict[str, float], confident_costs: dict[str, float] | None = None):
    """An ``agreement_of`` where quantizing node n costs ``costs[n]`` of agreement (and
    ``confident_costs[n]`` of agreement on confident images), and records its calls."""
    calls: list[tuple[str, ...]] = []

    def agreement_of(kept: tuple[str, ...]) -> Agreement:
        calls.append(kept)
        overall = 1.0 - sum(cost for name, cost in costs.items() if name not in kept)
        confident = 1.0 - sum(cost for name, cost in (confident_costs or {}).items() if name not in kept)
        return Agreement(overall, confident)

    return agreement_of, calls


def test_keeps_exactly_the_harmful_node_and_stops_when_met() -> None:
    agreement_of, calls = harm({"conv1": 0.001, "dw3": 0.2, "conv5": 0.002})
    kept = keep_in_float(["dw3", "conv5", "conv1"], agreement_of, target=BAR, progress=lambda line: None)
    assert kept.nodes == ("dw3",) and kept.met
    assert kept.agreement.overall == 1.0 - 0.003
    assert calls == [(), ("dw3",)]  # measured all-INT8, then with dw3 in float: met, nothing more tried


def test_drops_kept_nodes_the_target_does_not_need() -> None:
    # Ranked badly: conv5 looks harmful but is not; after dw3 and conv1 are needed, conv5 is dropped again.
    agreement_of, _ = harm({"conv1": 0.02, "dw3": 0.2, "conv5": 0.0})
    kept = keep_in_float(["conv5", "dw3", "conv1"], agreement_of, target=BAR, progress=lambda line: None)
    assert kept.nodes == ("dw3", "conv1") and kept.met
    assert [len(k) for k, _ in kept.history] == [0, 1, 2, 3, 2, 2]


def test_reports_a_missed_target_and_keeps_the_best_set_measured() -> None:
    agreement_of, _ = harm({"a": 0.1, "b": 0.1})
    kept = keep_in_float(["a", "b"], agreement_of, target=BAR, max_kept=1, progress=lambda line: None)
    assert not kept.met and kept.nodes == ("a",) and kept.agreement.overall == 0.9
    # Keeping c in float makes things worse (a float island between quantized tensors): not kept.
    agreement_of, _ = harm({"a": 0.1, "b": 0.1, "c": -0.05})
    kept = keep_in_float(["a", "c"], agreement_of, target=BAR, progress=lambda line: None)
    assert not kept.met and kept.nodes == ("a",) and np.isclose(kept.agreement.overall, 0.95)


def test_a_confident_image_that_flips_keeps_the_loop_going() -> None:
    # stem flips one top-1 in a hundred, all near-ties; head flips few images, but confident ones.
    agreement_of, calls = harm({"stem": 0.01, "head": 0.005}, confident_costs={"stem": 0.0, "head": 0.05})
    target = Agreement(0.98, 0.97)
    kept = keep_in_float(["stem", "head"], agreement_of, target=target, progress=lambda line: None)
    assert calls[0] == () and agreement_of(()).overall >= target.overall  # overall alone would stop here
    assert kept.met and kept.nodes == ("head",) and kept.agreement == Agreement(0.99, 1.0)
    assert kept.agreement.margin(target) >= 0 > agreement_of(("stem",)).margin(target)
    # Without a bar on confident images the all-INT8 model is enough.
    kept = keep_in_float(["stem", "head"], agreement_of, target=target._replace(confident=None),
                         progress=lambda line: None)  # fmt: skip
    assert kept.met and kept.nodes == ()


def test_sqnr_in_decibels() -> None:
    signal = np.array([3.0, 4.0])
    assert np.isclose(sqnr_db(signal, signal * 1.1), 20.0)


def test_shape_arithmetic_is_never_quantized(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    # TensorFlow "same" padding: the pad amount is computed in float from the input's shape.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Sub", ["sf", "one"], ["p"], name="pad_amount"),
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
        helper.make_node("Add", ["y", "x"], ["z"], name="add"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("p", TensorProto.FLOAT, [2])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )  # fmt: skip
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    assert shape_arithmetic(path) == ["shape", "cast", "pad_amount"]


def test_a_tensor_kept_float_loses_its_quantize_dequantize_pair() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from export.sensitivity import keep_tensors_float, local_sqnr, quantized_activations

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
        helper.make_node("Relu", ["xd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.5]),
         helper.make_tensor("zero", TensorProto.UINT8, [], [10])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    found = quantized_activations(model)
    assert list(found) == ["x"] and found["x"][:2] == (0.5, 10)
    x = np.array([[0.2, 1.3, -7.0]], np.float32)
    assert local_sqnr({"x": x}, found)["x"] < 40  # rounded to steps of 0.5, clipped at -5
    kept = keep_tensors_float(model, ["x"])
    assert [n.op_type for n in kept.graph.node] == ["Clip", "Relu"] and kept.graph.node[0].input[0] == "x"
    onnx.checker.check_model(kept)
    session = ort.InferenceSession(kept.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    # Not rounded any more, still clamped to the pair's range: (0 - 10) * 0.5 = -5 to (255 - 10) * 0.5.
    np.testing.assert_array_equal(y, np.maximum(np.clip(x, -5.0, 122.5), 0))


def test_calibrated_once_the_model_is_the_one_quantize_static_calibrates_itself(tmp_path) -> None:
    """The calibrate-once path (calibrate → write_static_int8) against onnxruntime's quantize_static
    calibrating on the same images with the same settings: the same nodes, and bit-identical scales, zero
    points and weights."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    from export import quantization
    from export.conversion import load_metadata
    from export.float_output import keep_output_float
    from tests.fixtures import make_image, make_model

    fp32 = make_model(tmp_path / "m.onnx", image_mode="RGB", size=32)
    metadata = load_metadata(fp32)
    images = [make_image(40, 36, "RGB", seed=i) for i in range(16)]
    # onnxruntime has no bias correction; the first conv excluded as below
    options = quantization.StaticOptions(bias_correction=False, exclude=("first_conv",))
    ours = tmp_path / "ours.onnx"
    quantization.quantize(fp32, ours, metadata, "int8", options, images)
    prepared = tmp_path / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))
    theirs = tmp_path / "theirs.onnx"
    quantize_static(
        str(prepared), str(theirs), quantization.CalibrationReader(images, metadata),
        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
        nodes_to_exclude=[n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"][:1]
        + quantization.shape_arithmetic(prepared),
    )  # fmt: skip
    keep_output_float(theirs)
    a, b = onnx.load(str(ours)).graph, onnx.load(str(theirs)).graph
    assert [(n.op_type, list(n.input)) for n in a.node] == [(n.op_type, list(n.input)) for n in b.node]
    assert "QuantizeLinear" in {n.op_type for n in a.node}
    ours_constants = {t.name: numpy_helper.to_array(t) for t in a.initializer}
    theirs_constants = {t.name: numpy_helper.to_array(t) for t in b.initializer}
    assert ours_constants.keys() == theirs_constants.keys()
    for name, value in ours_constants.items():
        np.testing.assert_array_equal(value, theirs_constants[name], err_msg=name)


def test_a_calibration_serves_only_options_with_the_same_ranges(tmp_path) -> None:
    from export import quantization
    from export.conversion import load_metadata
    from tests.fixtures import make_image, make_model

    fp32 = make_model(tmp_path / "m.onnx", image_mode="RGB", size=32)
    reader = quantization.CalibrationReader([make_image(32, 32, "RGB", seed=i) for i in range(4)],
                                            load_metadata(fp32))  # fmt: skip
    ranges = quantization.calibrate(fp32, tmp_path, reader, quantization.StaticOptions())
    assert ranges.tensors > 0 and ranges.ranges.exists()
    with pytest.raises(ValueError, match=r"ranges calibrated for \('percentile',\) cannot serve"):
        quantization.write_static_int8(
            ranges, tmp_path / "x.onnx", quantization.StaticOptions(calibration_method="minmax")
        )


def test_latency_stops_at_the_budget_after_the_least_runs_or_at_repeats() -> None:
    from export.report import MIN_RUNS, measure_latency
    from tests.fixtures import gray_model, make_image

    images = [make_image(28, 28, "L", seed=i) for i in range(4)]
    paths = {"a": gray_model(), "b": gray_model()}
    few = measure_latency(paths, images, batch_sizes=(1,), repeats=2, budget=60.0)
    assert few["a"]["batch_1_runs"] == few["b"]["batch_1_runs"] == 2
    bounded = measure_latency(paths, images, batch_sizes=(1, 64), repeats=10**6, budget=0.02)
    for row in bounded.values():
        for size in (1, 64):
            assert MIN_RUNS <= row[f"batch_{size}_runs"] < 10**6
            assert row[f"batch_{size}_ms"] > 0


def test_a_quantized_file_does_not_keep_the_fp32_self_test(tmp_path) -> None:
    """A self-test measured on the FP32 graph would fail on the quantized one: quantize drops it (export then
    stores the quantized model's own, measured on the final file)."""
    import onnx

    from edgeinfer import Model
    from edgeinfer.selftest import SELF_TEST_KEY
    from export import quantization
    from export.conversion import load_metadata
    from export.self_test import embed_self_test
    from tests.fixtures import make_image, make_model

    fp32 = make_model(tmp_path / "m.onnx", image_mode="RGB", size=32)
    embed_self_test(fp32)
    out = tmp_path / "int8.onnx"
    images = [make_image(40, 36, "RGB", seed=i) for i in range(8)]
    quantization.quantize(fp32, out, load_metadata(fp32), "int8", quantization.StaticOptions(), images)
    assert SELF_TEST_KEY in {p.key for p in onnx.load(str(fp32)).metadata_props}
    assert SELF_TEST_KEY not in {p.key for p in onnx.load(str(out)).metadata_props}
    embed_self_test(out)
    assert Model(out, engine="auto").verify().passed
