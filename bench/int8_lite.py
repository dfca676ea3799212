"""INT8 on real mobile networks: EfficientNet-Lite0/1/2 with Google's ImageNet weights, through ``auto``.

Usage::

    pip install -e '.[bench]'
    python bench/int8_lite.py --out runs/int8-lite [--variants 0 1 2]

Per network: the FP32 export (``export_model``), then ``--quantize auto``'s own selection
(``selection.select``, what ``export_model``/``to_onnx.py`` run): calibrated on 96 views, its candidates
(int8 as ``--quantize int8`` writes it, int8-fc4, and int8-mixed when int8 misses a bar) measured and chosen
on 96 other views of the same photos (never calibrated on; unlabelled, so agreement with FP32 decides).
Every model it built is then judged on 192 views of other photos (export/quantization_study.py's split):
top-1 agreement with FP32 overall and on confident views, against FP32's own agreement under ±1 pixel level
of noise (on the files' own channels and on the decoded RGB image); file size; latency at batch 1 and 64 on
1 thread, the models taking turns, printed as the ratio FP32 / model measured in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def measure(variant: int, out: Path, calibration: list[Path], held_out: list[Path], repeats: int) -> dict:
    from edgeinfer.pipeline import preprocess_batch
    from export import conversion, export_model, report, selection, sensitivity
    from export.quantization_study import agreement, lite, noisy

    fp32 = out / f"lite{variant}-fp32.onnx"
    if not fp32.exists():
        labels = [f"imagenet-{i}" for i in range(1000)]
        export_model(lite(variant), fp32, labels=labels, verify=held_out[:16], quantize="none", repeats=3)
    metadata = conversion.load_metadata(fp32)
    work = out / f"lite{variant}-auto"
    work.mkdir(exist_ok=True)
    chosen, paths, _ = selection.select(
        fp32, work, metadata, calibration[::2], calibration[1::2], None, repeats=repeats, threads=1
    )
    print(f"auto kept {chosen.chosen}: {chosen.reason}", flush=True)
    inputs = preprocess_batch(held_out, metadata)
    reference = sensitivity._logits(str(fp32), inputs)
    confident = report.probabilities(reference, metadata.output).max(1) >= report.CONFIDENT
    noise = preprocess_batch(noisy(held_out, np.random.default_rng(1)), metadata)
    kept = {e["tensor"] for e in chosen.mixed_precision.get("kept_in_float", ())}
    result = {
        "held_out_views": len(held_out), "confident_views": int(confident.sum()),
        "floor_files_channels": agreement(sensitivity._logits(str(fp32), noise), reference, confident),
        "floor_runtime_image": report.noise_floor(fp32, held_out),
        "auto": {"chosen": chosen.chosen, "reason": chosen.reason,
                 "agreement_bar": chosen.measured_on["agreement_bar"],
                 "on_selection_views": {name: {k: row.get(k) for k in ("agreement_with_fp32",
                                                                          "agreement_confident", "failed")}
                                        for name, row in chosen.table.items()},
                 "mixed_precision": {k: v for k, v in chosen.mixed_precision.items() if k != "kept_in_float"},
                 "kept_in_float": sorted(kept)},
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
            mark = "  <- auto" if name == summary["auto"]["chosen"] else ""
            print(f"  {name:10s} agreement {row['overall']:.2%} (confident {row['confident']:.2%}), "
                  f"size {row['size_ratio']:.3f}, batch 1 {row['batch_1_ms']:.2f} ms "
                  f"({row['speedup_batch_1']}x), batch 64 {row['batch_64_ms']:.1f} ms "
                  f"({row['speedup_batch_64']}x){mark}", flush=True)  # fmt: skip
    (args.out / "int8_lite.json").write_text(json.dumps(results, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/int8-lite"))
    parser.add_argument("--variants", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=10, help="latency: median of this many runs")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
