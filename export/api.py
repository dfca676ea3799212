"""Export a torch network to a verified, self-describing ONNX model: from a train/ checkpoint or anywhere.

:func:`export_model` is the entry for a network trained elsewhere (any ``nn.Module`` with its torchvision
eval ``Compose``, labels and image mode); ``to_onnx.py`` is the same flow for train/ checkpoints. Both run
:func:`export_network`: FP32 export with metadata, metadata read back, torch vs onnxruntime on real images at
batch sizes 1, 2 and 7 (edgeinfer's image path vs torchvision's, tensors bit-identical), quantization
(none, int8, dynamic, or ``auto``: measured, see export/selection.py), and a report of accuracy, agreement,
size and latency.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinfer.metadata import ModelMetadata
from export import ExportError
from export.conversion import DEFAULT_OPSET
from export.inputs import ImageSet
from export.quantization import StaticOptions

if TYPE_CHECKING:
    import torch

QUANTIZE_MODES = ("none", "int8", "dynamic", "auto")
VERIFY_IMAGES = 70  # real images for the torch vs onnxruntime check, in batches cycling through 1, 2, 7
ATOL = 1e-3  # max |logit difference| torch vs onnxruntime in FP32 (float32 reassociation gives ~1e-5)
MIN_AGREEMENT = 0.99  # --quantize int8/dynamic: quantized vs FP32 top-1 agreement on the report's images
LATENCY_REPEATS = 50
LATENCY_THREADS = 1
SEED = 0


def export_network(
    network: torch.nn.Module,
    out: str | Path,
    metadata: ModelMetadata,
    *,
    verify: ImageSet,
    report_on: ImageSet,
    select_on: ImageSet | None = None,
    calibration: ImageSet | None = None,
    reference: Callable[[Any], Any] | None = None,
    quantize: str = "none",
    options: StaticOptions | None = None,
    opset: int = DEFAULT_OPSET,
    atol: float = ATOL,
    min_agreement: float = MIN_AGREEMENT,
    repeats: int = LATENCY_REPEATS,
    threads: int = LATENCY_THREADS,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export ``network`` (eval mode) to ``out`` with ``metadata``; returns the report (not written).

    Args:
        verify: images for torch vs onnxruntime (FP32 must agree on every top-1, within ``atol``).
        select_on: labelled images on which ``quantize="auto"`` measures its candidates (validation).
        report_on: images for the report's accuracy, size and latency (test).
        calibration: images for static INT8 (``int8``, ``auto``).
        reference: torchvision's transform of a PIL image for the torch side (default: rebuilt from the spec).

    Raises:
        ExportError: conversion, verification or the agreement bar fails.
        ValueError: an unknown ``quantize`` mode, or no calibration images where they are needed.
    """
    from export import conversion, quantization, report, selection, self_test, verification

    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    if quantize in ("int8", "auto") and calibration is None:
        raise ValueError(f"quantize={quantize!r} needs calibration images")
    if quantize == "auto" and select_on is None:
        raise ValueError("quantize='auto' needs images to measure the candidates on (select_on)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = out if quantize == "none" else Path(tmp) / "fp32.onnx"
        progress(f"[2/6] exporting FP32 ONNX (opset {opset}), input {list(metadata.input.shape)}")
        conversion.export_onnx(network, fp32_path, metadata, opset=opset)

        progress("[3/6] reading the metadata back through onnxruntime")
        if conversion.load_metadata(fp32_path) != metadata:
            raise ExportError(f"{fp32_path}: the metadata read back differs from the metadata written")

        progress(f"[4/6] onnxruntime vs torch on {len(verify)} images of {verify.source}, "
                 f"batches {verification.BATCH_SIZES}")  # fmt: skip
        fp32_check = verification.verify(network, fp32_path, metadata, verify.images, reference=reference)
        progress(f"      max |logit diff| {fp32_check.max_abs_diff:.3g}, "
                 f"top-1 agreement {fp32_check.top1_agreement:.2%}")  # fmt: skip
        fp32_check.check(atol=atol, min_agreement=1.0, what="FP32 export")

        chosen, auto = quantize, None
        if quantize == "auto":
            progress(f"[5/6] quantize auto: candidates calibrated on {len(calibration)} images of "
                     f"{calibration.source}, measured on {len(select_on)} of {select_on.source}")  # fmt: skip
            auto, paths, metas = selection.select(
                fp32_path, Path(tmp), metadata, calibration.images, select_on.images, select_on.labels,
                repeats=repeats, threads=threads, progress=progress,
            )  # fmt: skip
            _print_table(auto.table, progress)
            progress(f"      kept: {auto.reason}")
            chosen = auto.chosen
            kept = metas[chosen]
            quantization_record = {**kept.provenance["quantization"], "auto": auto.provenance()}
            shutil.copyfile(paths[chosen], out)
            conversion.rewrite_metadata(
                out,
                dataclasses.replace(
                    kept, provenance={**kept.provenance, "quantization": quantization_record}
                ),
            )
        elif quantize == "none":
            progress("[5/6] quantization: none")
        else:
            if quantize == "int8":
                options = options or StaticOptions()
                progress(f"[5/6] quantizing: static INT8, {len(calibration)} calibration images "
                         f"({options.calibration_method}), fully connected weights {options.fc_bits}-bit, "
                         f"kept in float: {', '.join(options.exclude) or 'nothing'}")  # fmt: skip
            else:
                progress("[5/6] quantizing: dynamic INT8 (MatMul/Gemm weights)")
            quantization.quantize(
                fp32_path,
                out,
                metadata,
                quantize,
                options,
                None if calibration is None else calibration.images,
            )
        document = self_test.embed_self_test(out, images=self_test.small_images(verify.images))
        progress(f"      self-test stored: {len(document['cases'])} cases, tolerance "
                 f"{document['tolerance']:.3g} ({document['tolerance_basis']})")  # fmt: skip
        models = {"fp32": fp32_path}
        if chosen not in ("none", "fp32"):
            check = verification.verify(
                network, out, conversion.load_metadata(out), verify.images, reference=reference
            )
            progress(f"      {chosen} vs torch FP32: top-1 agreement {check.top1_agreement:.2%}, "
                     f"batches {verification.BATCH_SIZES} ran")  # fmt: skip
            models[chosen] = out

        progress(f"[6/6] report on {len(report_on)} images of {report_on.source}: accuracy, size, latency at "
                 f"batches {report.LATENCY_BATCHES} ({threads} thread(s), median of {repeats})")  # fmt: skip
        if auto is not None and report_on is select_on:  # already measured: the table's rows
            summary = {"models": {name: auto.table[name] for name in models}, "measured_on": auto.measured_on}
        else:
            summary = report.build_report(
                models, report_on.images, report_on.labels, repeats=repeats, threads=threads
            )
        summary["verification"] = {
            "images": fp32_check.images,
            "source": verify.source,
            "batch_sizes": list(fp32_check.batch_sizes),
            "fp32_max_abs_logit_diff": fp32_check.max_abs_diff,
            "fp32_top1_agreement": fp32_check.top1_agreement,
        }
        summary["quantization"] = {"requested": quantize, "kept": chosen}
        summary["self_test"] = {k: document[k] for k in ("tolerance", "tolerance_basis")}
        summary["self_test"]["cases"] = len(document["cases"])
        if auto is not None:
            summary["quantization"]["auto"] = {**auto.provenance(), "images": select_on.source}
        summary["metadata"] = conversion.load_metadata(out).to_dict()
    _print_table(summary["models"], progress)
    if quantize in ("int8", "dynamic"):
        agreement = summary["models"][quantize]["agreement_with_fp32"]
        if agreement < min_agreement:
            raise ExportError(
                f"the {quantize} model agrees with FP32 on {agreement:.2%} of {len(report_on)} images, below "
                f"the minimum {min_agreement:.2%}: try another calibration method, or --quantize auto"
            )
    return summary


def export_model(
    module: torch.nn.Module,
    path: str | Path,
    *,
    transform: Any,
    labels: Sequence[str],
    image_mode: str = "RGB",
    calibration: str | Path | Sequence[Any] | None = None,
    verify: str | Path | Sequence[Any],
    quantize: str = "auto",
    architecture: str | None = None,
    calibration_size: int = StaticOptions.calibration_size,
    opset: int = DEFAULT_OPSET,
    report: str | Path | None = None,
    repeats: int = LATENCY_REPEATS,
    threads: int = LATENCY_THREADS,
    seed: int = SEED,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export a network trained anywhere: verified against torch, quantized where it pays, self-describing.

    Args:
        module: the classifier (put in eval mode here); its output is one logit per label.
        transform: its torchvision evaluation pipeline (a ``Compose``), converted with ``from_torchvision``;
            verification checks that edgeinfer reproduces it bit for bit on ``verify``.
        labels: class names in output order.
        image_mode: "RGB" or "L": what decoded images are converted to before ``transform``.
        calibration: images for static INT8 (a folder or a sequence of paths/arrays/PIL images).
        verify: images for verification, for ``auto``'s measurements and the report; a folder with one
            sub-folder per label (as torchvision's ``ImageFolder``) also gives the accuracy.
        quantize: "auto" (measure, keep what qualifies, see export/selection.py), "int8", "dynamic", "none".
        report: where to write the report as JSON (default: ``path`` with ``.json``).

    Returns:
        The report: per model accuracy, agreement, size, latency; verification; the quantization kept and,
        for ``auto``, the measured table and the reason.

    Raises:
        ExportError, ValueError, FileNotFoundError: with one-line messages.
    """
    from edgeinfer.metadata import InputSpec, check_labels
    from edgeinfer.pipeline import preprocess
    from edgeinfer.transforms import from_torchvision
    from export import checkpoint, inputs
    from export import report as reports
    from train.config import DataConfig

    labels = list(check_labels(labels, "labels"))  # before any work: a str is not a list of labels
    spec = from_torchvision(transform).to_spec()
    verify_set = inputs.from_source(verify, labels, "verify")
    calibration_set = None
    if calibration is not None:
        calibration_set = inputs.from_source(calibration, labels, "calibration").sample(
            calibration_size, seed
        )
    progress(f"[1/6] {len(labels)} labels, image mode {image_mode}, {len(verify_set)} verify images, "
             f"{len(calibration_set or ())} calibration images")  # fmt: skip
    # The input size is what the runtime's own image path makes of a real image.
    probe = ModelMetadata(labels=tuple(labels), preprocessing=spec, image_mode=image_mode,
                          input=InputSpec("input", (None,) * 4))  # fmt: skip
    input_size = preprocess(verify_set.images[0], probe).shape
    module = module.eval()
    config = DataConfig.create(
        architecture=architecture or type(module).__name__, labels=tuple(labels), image_mode=image_mode,
        input_size=input_size, preprocessing=spec, dataset={"kind": "images", "root": verify_set.source},
    )  # fmt: skip
    metadata = config.to_metadata(checkpoint.provenance(config, module, opset))
    summary = export_network(
        module, path, metadata, verify=verify_set.sample(VERIFY_IMAGES, seed), select_on=verify_set,
        report_on=verify_set, calibration=calibration_set, reference=inputs.pil_callable(transform),
        quantize=quantize, opset=opset, repeats=repeats, threads=threads, progress=progress,
    )  # fmt: skip
    report_path = Path(report) if report else Path(path).with_suffix(".json")
    reports.write_report(summary, report_path)
    progress(f"wrote {path} and {report_path}")
    return summary


def _print_table(rows: dict[str, dict[str, Any]], progress: Callable[[str], None]) -> None:
    progress(f"      {'model':9} {'accuracy':>9} {'agree':>8} {'size':>12} {'ratio':>6} {'b1 ms':>8} "
             f"{'b64 ms':>8}  kept/why not")  # fmt: skip
    for name, m in rows.items():
        if "latency" not in m:  # a candidate that could not be built
            progress(
                f"      {name:9} {'':>9} {'':>8} {'':>12} {'':>6} {'':>8} {'':>8}  {'; '.join(m['failed'])}"
            )
            continue
        accuracy = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.2%}"
        verdict = "" if "qualifies" not in m else "qualifies" if m["qualifies"] else "; ".join(m["failed"])
        b1, b64 = m["latency"]["batch_1_ms"], m["latency"]["batch_64_ms"]
        progress(f"      {name:9} {accuracy:>9} {m['agreement_with_fp32']:8.2%} {m['size_bytes']:12,} "
                 f"{m['size_ratio_to_fp32']:6.3f} {b1:8.3f} {b64:8.3f}  {verdict}")  # fmt: skip
