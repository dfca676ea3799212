"""Export a train/ checkpoint to a self-describing, verified ONNX model, quantized where measurement says so.

Usage:
    python export/to_onnx.py runs/cnn-improved/model.pt --out model.onnx            # --quantize auto
    python export/to_onnx.py runs/flowers/model.pt --out flowers.onnx --data ~/photos
    python export/to_onnx.py runs/cnn-improved/model.pt --out model.onnx --quantize none
    python export/to_onnx.py runs/vgg16/model.pt --out vgg16.onnx --quantize dynamic \
        --verify-images 10 --eval-size 100

Every image comes from the data set the checkpoint's data config names (Fashion-MNIST, or the image folder it
was trained on), or from --data (fashion-mnist or a folder with the checkpoint's class sub-folders), and goes
through edgeinfer's own image path (decode → image mode → the checkpoint's eval spec), as at run time.

Steps (export/steps.py, the same list export_model runs; each printed as "[n/6] ..."):
    1. (this script) load the checkpoint (weights_only), rebuild the network with train.models.build_model,
       build its metadata, pick the images of each split
    2. export FP32 ONNX (TorchScript exporter, dynamic batch axis) with edgeinfer metadata; onnx.checker
    3. read the metadata back through onnxruntime, as the runtime will
    4. verify: torch (torchvision's loader and pipeline) vs onnxruntime (edgeinfer) on test images at batch
       sizes 1, 2, 7; fail when logits differ by more than --atol or any top-1 differs
    5. quantize: none; int8 (quant_pre_process + static QDQ, per-channel weights, calibrated on
       --calibration-size training images, --fc-bits 4 for 4-bit fully connected weights); dynamic
       (MatMul/Gemm weights only); or auto: every candidate measured on validation images, the smallest one
       that agrees with FP32 on >= 99 % of top-1 (lowered to FP32's own agreement under ±1 pixel level of
       noise; on images where FP32 is confident 97 %, or FP32's own there when lower), loses <= 0.5
       accuracy points and is not slower at batch 1 and 64 is kept, else FP32 (export/selection.py); the
       static candidates share one calibration, and when int8 misses an agreement bar, int8-mixed keeps in
       float the activations a sensitivity loop on calibration images finds break it (export/mixed.py); the
       table, the tensors kept in float and the reason go into the report, the model's provenance and the
       table printed at the end; the self-test stored in the final model, a quantized one re-verified vs
       torch
    6. report FP32 vs the kept model on test images: accuracy, top-1 agreement (overall and where FP32 is
       confident), size, latency at batch 1 and 64 (median of at least 3 runs, up to --repeats or
       --latency-budget seconds per model) -> JSON next to the model; --quantize int8/dynamic fail when top-1
       agreement with FP32 is below --min-agreement, or below FP32's own agreement under ±1 pixel level of
       noise where that is lower (on images where FP32 is confident: 97 %, or FP32's own there if lower)
Then, with --image-model, the image model of the written model (export/image_model.py: decoded image in,
preprocessing in the graph), checked by its self-test: <out>.image.onnx, or the path given.

Exit status 1 with a one-line message when any step fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeinfer.errors import EdgeInferError
from export import ExportError
from export.conversion import DEFAULT_OPSET
from export.quantization import CALIBRATION_METHODS, EXCLUDABLE, StaticOptions
from export.steps import (
    ATOL,
    LATENCY_BUDGET,
    LATENCY_REPEATS,
    LATENCY_THREADS,
    MIN_AGREEMENT,
    QUANTIZE_MODES,
    SEED,
    VERIFY_IMAGES,
)
from export.verification import BATCH_SIZES


def export(args: argparse.Namespace) -> dict:
    """Gather the checkpoint's network, metadata and images, then run the export steps; returns the report.

    Raises:
        ExportError, ValueError, FileNotFoundError: with one-line messages.
    """
    from export import checkpoint, inputs
    from export.steps import ExportJob, export_network

    source = checkpoint.load_for_export(args.checkpoint, args.opset, args.data)
    labels, dataset, about = source.config.labels, source.dataset, source.metadata.provenance
    test = inputs.load_split(dataset, "test", labels)
    train = inputs.load_split(dataset, "train", labels)
    # Batches of 1, 2 and 7 need 10 images; a small folder's test split can have fewer.
    verify = test if len(test) >= sum(BATCH_SIZES) else train
    job = ExportJob(
        source.network, Path(args.out), source.metadata,
        title=f"loading {args.checkpoint}",
        details=(f"{about['architecture']}, {about['parameters']:,} parameters, {len(labels)} classes, "
                 f"input {list(source.metadata.input.shape)} ({source.config.image_mode}), "
                 f"checkpoint test accuracy {about['test_accuracy']:.2%}, data {dataset}",),
        verify=verify.sample(args.verify_images, args.seed),
        select_on=inputs.load_split(dataset, "val", labels).sample(args.eval_size, args.seed)
        if args.quantize == "auto" else None,
        report_on=test.sample(args.eval_size, args.seed),
        calibration=train.sample(args.calibration_size, args.seed)
        if args.quantize in ("int8", "auto") else None,
        quantize=args.quantize,
        options=StaticOptions(
            calibration_method=args.calibration_method, calibration_size=args.calibration_size,
            exclude=tuple(args.keep_float), fc_bits=args.fc_bits,
        ),
        opset=args.opset, atol=args.atol, min_agreement=args.min_agreement, repeats=args.repeats,
        latency_budget=args.latency_budget, threads=args.threads,
        report_path=Path(args.report) if args.report else None,
    )  # fmt: skip
    summary = export_network(job)
    if args.image_model is not None:
        from export.image_model import build_image_model

        print(f"wrote {build_image_model(job.out, args.image_model or None)} (image model)")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a train/ checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="the ONNX file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="auto",
        help="auto (default): quantize only where it measures as accurate and as fast as FP32 on validation "
        "images; none: FP32; int8, dynamic: force one recipe",
    )
    parser.add_argument(
        "--calibration-method", choices=CALIBRATION_METHODS, default=StaticOptions.calibration_method
    )
    parser.add_argument(
        "--calibration-size", type=int, default=StaticOptions.calibration_size, help="training images"
    )
    parser.add_argument(
        "--fc-bits",
        type=int,
        choices=[8, 4],
        default=8,
        help="int8: 4 stores fully connected weights as 4-bit blocks (MatMulNBits)",
    )
    parser.add_argument(
        "--keep-float",
        nargs="*",
        choices=EXCLUDABLE,
        default=list(StaticOptions.exclude),
        help="int8: nodes left in float (default: single_channel_first_conv, the first conv and what feeds "
        "it when it reads one channel; first_conv: any first conv and what feeds it; last_gemm: the last "
        "fully connected layer; none given: quantize everything)",
    )
    parser.add_argument(
        "--data", help="fashion-mnist or an image folder (default: the checkpoint's data set)"
    )
    parser.add_argument("--report", help="the JSON report (default: the model's path with .json)")
    parser.add_argument(
        "--image-model",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write the image model (decoded uint8 image in, preprocessing in the graph) to PATH "
        "(default: <out>.image.onnx)",
    )
    parser.add_argument("--verify-images", type=int, default=VERIFY_IMAGES)
    parser.add_argument("--atol", type=float, default=ATOL, help="max FP32 |logit difference|")
    parser.add_argument(
        "--min-agreement", type=float, default=MIN_AGREEMENT,
        help="quantized vs FP32 top-1 agreement, overall (lowered to FP32's own agreement under ±1 pixel "
        "level of noise where that is lower) and on the images where FP32 is confident (at most 97%%, "
        "lowered the same way)",
    )  # fmt: skip
    parser.add_argument(
        "--eval-size", type=int, default=10_000, help="test (and, for auto, validation) images measured"
    )
    parser.add_argument(
        "--repeats", type=int, default=LATENCY_REPEATS, help="latency: at most this many runs per batch size"
    )
    parser.add_argument(
        "--latency-budget",
        type=float,
        default=LATENCY_BUDGET,
        help="latency: seconds per model and batch size after which runs stop (at least 3 runs)",
    )
    parser.add_argument("--threads", type=int, default=LATENCY_THREADS, help="onnxruntime threads (latency)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.opset < 17:
        parser.error(f"--opset must be 17 or newer, got {args.opset}")
    if args.latency_budget <= 0:
        parser.error(f"--latency-budget must be positive, got {args.latency_budget}")
    for name in ("calibration_size", "verify_images", "eval_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    try:
        export(args)
    except (ExportError, EdgeInferError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
