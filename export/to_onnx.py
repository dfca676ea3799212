"""Export a train/ checkpoint to a self-describing, verified ONNX model, optionally quantized to INT8.

Usage:
    python export/to_onnx.py runs/cnn-improved/model.pt --out model.onnx --quantize int8
    python export/to_onnx.py runs/vgg16/model.pt --out vgg16.onnx --quantize dynamic \
        --verify-images 10 --eval-size 100

Steps:
    1. load the checkpoint (weights_only) and rebuild the network with train.models.build_model
    2. export FP32 ONNX (TorchScript exporter, dynamic batch axis) with edgeinfer metadata; onnx.checker
    3. read the metadata back through onnxruntime, as the runtime will
    4. verify: torch (torchvision preprocessing) vs onnxruntime (edgeinfer preprocessing) on real test images
       at batch sizes 1, 2, 7; fail when logits differ by more than --atol or top-1 disagrees
    5. quantize (--quantize int8: quant_pre_process + static QDQ, per-channel weights, calibrated on
       --calibration-size training images through edgeinfer, --fc-bits 4 for 4-bit fully connected weights;
       --quantize dynamic: MatMul/Gemm weights only)
    6. report FP32 vs quantized: test accuracy, size, latency at batch 1 and 64 -> JSON next to the model;
       fail when the quantized model's top-1 agreement with FP32 is below --min-agreement

Exit status 1 with a one-line message when any step fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import tempfile

from export import ExportError
from export.conversion import DEFAULT_OPSET
from export.quantization import CALIBRATION_METHODS, EXCLUDABLE, StaticOptions
from train.data import DEFAULT_DATA_DIR

# -- defaults ------------------------------------------------------------------------------------------------
VERIFY_IMAGES = 70  # real test images for step 4, in batches cycling through 1, 2, 7
ATOL = 1e-3  # max |logit difference| torch vs onnxruntime in FP32 (float32 reassociation gives ~1e-5)
MIN_AGREEMENT = 0.99  # quantized vs FP32 top-1 agreement on the evaluation images
LATENCY_REPEATS = 50
LATENCY_THREADS = 1
SEED = 0


def export(args: argparse.Namespace) -> dict:
    """Run steps 1-6; returns the report. Raises ExportError, ValueError or FileNotFoundError."""
    from export import checkpoint, conversion, inputs, quantization, report, verification
    from train.data import load_fashion_mnist

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report_path = Path(args.report) if args.report else out.with_suffix(".json")

    print(f"[1/6] loading {args.checkpoint}")
    ckpt = checkpoint.load_checkpoint(args.checkpoint)
    network = checkpoint.build_network(ckpt)
    metadata = checkpoint.build_metadata(ckpt, network, checkpoint.file_sha256(args.checkpoint), args.opset)
    about = metadata.provenance
    print(f"      {about['architecture']}, {about['parameters']:,} parameters, "
          f"input {list(metadata.input.shape)}, checkpoint test accuracy {about['test_accuracy']}")

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = out if args.quantize == "none" else Path(tmp) / "fp32.onnx"
        print(f"[2/6] exporting FP32 ONNX (opset {args.opset})")
        conversion.export_onnx(network, fp32_path, metadata, opset=args.opset)

        print("[3/6] reading the metadata back through onnxruntime")
        if conversion.load_metadata(fp32_path) != metadata:
            raise ExportError(f"{fp32_path}: the metadata read back differs from the metadata written")

        test_images, test_labels = load_fashion_mnist(args.data_dir, "test")
        sample, _ = inputs.sample(test_images, test_labels, args.verify_images, args.seed)
        print(f"[4/6] onnxruntime vs torch on {len(sample)} test images, batches {verification.BATCH_SIZES}")
        fp32_check = verification.verify(network, fp32_path, metadata, sample)
        print(f"      max |logit diff| {fp32_check.max_abs_diff:.3g}, "
              f"top-1 agreement {fp32_check.top1_agreement:.2%}")
        fp32_check.check(atol=args.atol, min_agreement=1.0, what="FP32 export")

        models = {"fp32": fp32_path}
        if args.quantize == "none":
            print("[5/6] quantization: none")
        else:
            options = quantization.StaticOptions(
                calibration_method=args.calibration_method, calibration_size=args.calibration_size,
                exclude=tuple(args.keep_float), fc_bits=args.fc_bits,
            )  # fmt: skip
            calibration = None
            if args.quantize == "int8":
                train_images, train_labels = load_fashion_mnist(args.data_dir, "train")
                calibration, _ = inputs.sample(train_images, train_labels, args.calibration_size, args.seed)
                print(f"[5/6] quantizing: static INT8, {len(calibration)} calibration images "
                      f"({args.calibration_method}), fully connected weights {args.fc_bits}-bit, "
                      f"kept in float: {', '.join(args.keep_float) or 'nothing'}")
            else:
                print("[5/6] quantizing: dynamic INT8 (MatMul/Gemm weights)")
            quantized = quantization.quantize(fp32_path, out, metadata, args.quantize, options, calibration)
            check = verification.verify(network, out, quantized, sample)
            print(f"      vs torch FP32: top-1 agreement {check.top1_agreement:.2%}, "
                  f"batches {verification.BATCH_SIZES} ran")
            models[args.quantize] = out

        images, labels = inputs.sample(test_images, test_labels, args.eval_size, args.seed)
        print(f"[6/6] report on {len(images)} test images: accuracy, size, latency at batches "
              f"{report.LATENCY_BATCHES} ({args.threads} thread(s), median of {args.repeats})")
        summary = report.build_report(models, images, labels, repeats=args.repeats, threads=args.threads)
        summary["verification"] = {
            "images": fp32_check.images,
            "batch_sizes": list(fp32_check.batch_sizes),
            "fp32_max_abs_logit_diff": fp32_check.max_abs_diff,
            "fp32_top1_agreement": fp32_check.top1_agreement,
        }
        summary["metadata"] = conversion.load_metadata(out).to_dict()
    report.write_report(summary, report_path)
    _print_table(summary)
    print(f"wrote {out} and {report_path}")
    if args.quantize != "none":
        agreement = summary["models"][args.quantize]["agreement_with_fp32"]
        if agreement < args.min_agreement:
            raise ExportError(
                f"the {args.quantize} model agrees with FP32 on {agreement:.2%} of {len(images)} test images "
                f"below --min-agreement {args.min_agreement:.2%}: try another --calibration-method"
            )
    return summary


def _print_table(summary: dict) -> None:
    print(f"{'model':8} {'accuracy':>9} {'agree':>8} {'size':>12} {'ratio':>6} {'b1 ms':>8} {'b64 ms':>8}")
    for name, m in summary["models"].items():
        latency = m["latency"]
        print(f"{name:8} {m['accuracy']:9.2%} {m['agreement_with_fp32']:8.2%} {m['size_bytes']:12,} "
              f"{m['size_ratio_to_fp32']:6.3f} {latency['batch_1_ms']:8.3f} {latency['batch_64_ms']:8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a train/ checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="the ONNX file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--quantize", choices=["none", "int8", "dynamic"], default="none")
    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS,
                        default=StaticOptions.calibration_method)
    parser.add_argument("--calibration-size", type=int, default=StaticOptions.calibration_size,
                        help="training images")
    parser.add_argument("--fc-bits", type=int, choices=[8, 4], default=8,
                        help="int8: 4 stores fully connected weights as 4-bit blocks (MatMulNBits)")
    parser.add_argument("--keep-float", nargs="*", choices=EXCLUDABLE, default=list(StaticOptions.exclude),
                        help="int8: nodes left in float (default: first_conv; none: quantize everything)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--report", help="the JSON report (default: the model's path with .json)")
    parser.add_argument("--verify-images", type=int, default=VERIFY_IMAGES)
    parser.add_argument("--atol", type=float, default=ATOL, help="max FP32 |logit difference|")
    parser.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT, help="quantized vs FP32 top-1")
    parser.add_argument("--eval-size", type=int, default=10_000, help="test images for the report's accuracy")
    parser.add_argument("--repeats", type=int, default=LATENCY_REPEATS, help="latency runs per batch size")
    parser.add_argument("--threads", type=int, default=LATENCY_THREADS, help="onnxruntime threads (latency)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.opset < 17:
        parser.error(f"--opset must be 17 or newer, got {args.opset}")
    for name in ("calibration_size", "verify_images", "eval_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    try:
        export(args)
    except (ExportError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
