"""Measure the quantization options on one checkpoint, to choose the one that wins.

Usage:
    python export/compare_quantization.py runs/cnn-improved/model.pt --out export/quantization_study.json

Exports the checkpoint to FP32 once, then quantizes it every way listed in VARIANTS (QDQ vs QOperator,
per-channel or per-tensor weights, uint8 or int8 activations, reduce_range, calibration methods, float first
conv / last fully connected layer, 4-bit fully connected weights, dynamic), and measures each on the test
images of its data set through edgeinfer: accuracy, top-1 agreement with FP32, file size, latency at
batch 1 and 64 (median, all models taking turns). Prints a table with the targets (accuracy within 0.3
points of FP32, file <= 25 %, batch-64 latency no slower than FP32) and writes it all as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from export.quantization import StaticOptions

# -- the options measured; "dynamic" is quantize_dynamic, everything else static INT8 -----------------------
# The baseline: QDQ, per-channel int8 weights, uint8 activations, minmax calibration, nothing left in float.
ALL_INT8 = StaticOptions(calibration_method="minmax", exclude=())
VARIANTS: dict[str, StaticOptions | str] = {
    "qdq-perchannel-u8": ALL_INT8,
    "qdq-pertensor-u8": dataclasses.replace(ALL_INT8, per_channel=False),
    "qdq-perchannel-s8": dataclasses.replace(ALL_INT8, activation_type="int8"),
    "qdq-perchannel-u8-reduce-range": dataclasses.replace(ALL_INT8, reduce_range=True),
    "qoperator-perchannel-u8": dataclasses.replace(ALL_INT8, quant_format="qoperator"),
    "qdq-entropy": dataclasses.replace(ALL_INT8, calibration_method="entropy"),
    "qdq-percentile": dataclasses.replace(ALL_INT8, calibration_method="percentile"),
    "qdq-float-first-conv": dataclasses.replace(ALL_INT8, exclude=("first_conv",)),
    "qdq-float-last-fc": dataclasses.replace(ALL_INT8, exclude=("last_gemm",)),
    "qdq-fc-4bit": dataclasses.replace(ALL_INT8, fc_bits=4),
    "qdq-fc-4bit-percentile": dataclasses.replace(ALL_INT8, fc_bits=4, calibration_method="percentile"),
    "qdq-fc-4bit-float-first-conv": dataclasses.replace(ALL_INT8, fc_bits=4, exclude=("first_conv",)),
    "qdq-fc-4bit-percentile-float-first-conv": dataclasses.replace(
        ALL_INT8, fc_bits=4, calibration_method="percentile", exclude=("first_conv",)
    ),
    "dynamic": "dynamic",
}
ACCURACY_DROP = 0.003
SIZE_RATIO = 0.25
CALIBRATION_SEED = 0


def compare(checkpoint_path: str, data: str | None, repeats: int, threads: int) -> dict:
    from export import checkpoint, conversion, inputs, quantization, report

    # 1. the FP32 model, exported once; its images from the data set its data config names (or --data)
    source = checkpoint.load_for_export(checkpoint_path, conversion.DEFAULT_OPSET, data)
    metadata = source.metadata
    train = inputs.load_split(source.dataset, "train", source.config.labels)
    test = inputs.load_split(source.dataset, "test", source.config.labels)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fp32": Path(tmp) / "fp32.onnx"}
        conversion.export_onnx(source.network, paths["fp32"], metadata)

        # 2. every variant, calibrated on the same training images
        for name, options in VARIANTS.items():
            print(f"quantizing: {name}", flush=True)
            paths[name] = Path(tmp) / f"{name}.onnx"
            if options == "dynamic":
                quantization.quantize(paths["fp32"], paths[name], metadata, "dynamic")
            else:
                calibration = train.sample(options.calibration_size, CALIBRATION_SEED).images
                quantization.quantize(paths["fp32"], paths[name], metadata, "int8", options, calibration)

        # 3. all measured in one run
        print(f"measuring {len(paths)} models on {len(test)} images of {test.source}", flush=True)
        result = report.build_report(paths, test.images, test.labels, repeats=repeats, threads=threads)
    fp32 = result["models"]["fp32"]
    for name, m in result["models"].items():
        options = VARIANTS.get(name, "none")
        m["options"] = options.provenance() if isinstance(options, StaticOptions) else {"mode": options}
        m["targets"] = {
            "accuracy_within_0.3_points": fp32["accuracy"] - m["accuracy"] <= ACCURACY_DROP,
            "size_at_most_25_percent": m["size_ratio_to_fp32"] <= SIZE_RATIO,
            "batch_64_no_slower": m["latency"]["batch_64_ms"] <= fp32["latency"]["batch_64_ms"],
        }
    result["checkpoint"] = {"path": checkpoint_path, "sha256": metadata.provenance["checkpoint_sha256"]}
    return result


def print_table(result: dict) -> None:
    print(
        f"\n{'variant':40} {'accuracy':>9} {'agree':>7} {'size':>9} {'ratio':>6} {'b1 ms':>7} {'b64 ms':>7}"
        "  targets"
    )
    for name, m in result["models"].items():
        met = sum(m["targets"].values())
        print(
            f"{name:40} {m['accuracy']:9.2%} {m['agreement_with_fp32']:7.2%} {m['size_bytes']:9,} "
            f"{m['size_ratio_to_fp32']:6.3f} {m['latency']['batch_1_ms']:7.3f} "
            f"{m['latency']['batch_64_ms']:7.3f}  {met}/3"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument(
        "--data", help="fashion-mnist or an image folder (default: the checkpoint's data set)"
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    result = compare(args.checkpoint, args.data, args.repeats, args.threads)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
