"""The export, as one list of steps: :data:`STEPS`, run in order by :func:`export_network`.

An entry point gathers an :class:`ExportJob` (``to_onnx.py`` from a train/ checkpoint, ``export_model`` from
any ``nn.Module``) and hands it to :func:`export_network`, which prints each step as ``[n/N] <title>`` and
keeps each step's result, a small frozen dataclass, for the steps after it:

1. inputs: the job itself (:class:`ExportJob`), as its entry point gathered it
2. convert: FP32 ONNX with the metadata (:class:`Converted`)
3. read back: the metadata through onnxruntime, as the runtime reads it (:class:`ReadBack`)
4. verify: onnxruntime vs torch on real images at batch sizes 1, 2, 7 (:class:`Verification`)
5. quantize: none, int8, dynamic or auto; the self-test stored in the final file; a quantized model
   re-verified against torch (:class:`Kept`)
6. report: accuracy, agreement, size, latency; the agreement bar; the JSON report written (:class:`Report`)
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgeinfer.metadata import ModelMetadata
from export import ExportError
from export.conversion import DEFAULT_OPSET
from export.inputs import ImageSet
from export.quantization import StaticOptions
from export.report import CONFIDENT, LATENCY_BUDGET, MIN_RUNS, Agreement
from export.selection import MIN_AGREEMENT, Selection, agreement_bar
from export.verification import BATCH_SIZES, Verification

if TYPE_CHECKING:
    import torch

QUANTIZE_MODES = ("none", "int8", "dynamic", "auto")
VERIFY_IMAGES = 70  # real images for the torch vs onnxruntime check, in batches cycling through 1, 2, 7
ATOL = 1e-3  # max |logit difference| torch vs onnxruntime in FP32 (float32 reassociation gives ~1e-5)
LATENCY_REPEATS = 50
LATENCY_THREADS = 1
SEED = 0
INDENT = " " * 6  # detail lines sit under their step's "[n/N] " title


@dataclass(frozen=True)
class ExportJob:
    """Everything an export needs, gathered by an entry point before any step runs.

    Attributes:
        title, details: step 1's line (what was gathered) and the lines printed under it.
        verify: images for torch vs onnxruntime (FP32 must agree on every top-1, within ``atol``).
        report_on: images for the report's accuracy, size and latency (test).
        select_on: labelled images on which ``quantize="auto"`` measures its candidates (validation).
        calibration: images for static INT8 (``int8``, ``auto``).
        reference: torchvision's transform of a PIL image for the torch side (default: rebuilt from the spec).
        report_path: where the JSON report goes (None: ``out`` with ``.json``, see :attr:`report_file`).

    Raises:
        ValueError: an unknown ``quantize`` mode, or no images where the mode needs them.
    """

    network: torch.nn.Module
    out: Path
    metadata: ModelMetadata
    title: str
    verify: ImageSet
    report_on: ImageSet
    details: tuple[str, ...] = ()
    select_on: ImageSet | None = None
    calibration: ImageSet | None = None
    reference: Callable[[Any], Any] | None = None
    quantize: str = "none"
    options: StaticOptions = StaticOptions()
    opset: int = DEFAULT_OPSET
    atol: float = ATOL
    min_agreement: float = MIN_AGREEMENT
    repeats: int = LATENCY_REPEATS
    latency_budget: float = LATENCY_BUDGET
    threads: int = LATENCY_THREADS
    report_path: Path | None = None

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE_MODES:
            raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {self.quantize!r}")
        if self.quantize in ("int8", "auto") and self.calibration is None:
            raise ValueError(f"quantize={self.quantize!r} needs calibration images")
        if self.quantize == "auto" and self.select_on is None:
            raise ValueError("quantize='auto' needs images to measure the candidates on (select_on)")

    @property
    def report_file(self) -> Path:
        """Where the JSON report goes: ``report_path``, by default ``out`` with ``.json``."""
        return self.report_path or self.out.with_suffix(".json")


@dataclass(frozen=True)
class Converted:
    """Step 2: the FP32 ONNX file (``out`` itself when nothing is quantized, else a scratch file)."""

    fp32: Path


@dataclass(frozen=True)
class ReadBack:
    """Step 3: the metadata onnxruntime reads from the FP32 file (equal to what was written)."""

    metadata: ModelMetadata


@dataclass(frozen=True)
class Kept:
    """Step 5: the model written to ``out`` and how it was checked.

    Attributes:
        name: the quantization kept: the mode asked for, or ``auto``'s choice ("fp32" when none qualified).
        selection: ``auto``'s measured decision (None for the other modes).
        self_test: the self-test document stored in ``out``.
        check: a quantized model vs torch FP32 (None when ``out`` is the FP32 model).
    """

    name: str
    selection: Selection | None
    self_test: dict[str, Any]
    check: Verification | None


@dataclass(frozen=True)
class Report:
    """Step 6: the report written next to the model (the JSON document)."""

    summary: dict[str, Any]


R = TypeVar("R")


class Run:
    """One export in progress: its job, a scratch folder, and the result of each step so far (by type)."""

    def __init__(self, job: ExportJob, workdir: Path, progress: Callable[[str], None]) -> None:
        self.job = job
        self.workdir = workdir
        self.progress = progress
        self._results: dict[type, Any] = {}

    def __getitem__(self, kind: type[R]) -> R:
        return self._results[kind]

    def record(self, result: Any) -> None:
        self._results[type(result)] = result

    def note(self, line: str) -> None:
        """A detail line under the current step's title."""
        self.progress(INDENT + line)


@dataclass(frozen=True)
class Step:
    """One export step: its title (printed as ``[n/N] title``, from the job) and the function that runs it."""

    title: Callable[[ExportJob], str]
    run: Callable[[Run], Any]


# -- the steps, in order -------------------------------------------------------------------------------------


def inputs(run: Run) -> ExportJob:
    """Step 1: what the entry point gathered, described under the title."""
    for line in run.job.details:
        run.note(line)
    return run.job


def convert(run: Run) -> Converted:
    """Step 2: the network to FP32 ONNX with its metadata (dynamic batch axis, checked graph)."""
    from export import conversion

    job = run.job
    fp32 = job.out if job.quantize == "none" else run.workdir / "fp32.onnx"
    conversion.export_onnx(job.network, fp32, job.metadata, opset=job.opset)
    return Converted(fp32)


def read_back(run: Run) -> ReadBack:
    """Step 3: the metadata as onnxruntime reads it must be the metadata written."""
    from export import conversion

    fp32 = run[Converted].fp32
    read = conversion.load_metadata(fp32)
    if read != run.job.metadata:
        raise ExportError(f"{fp32}: the metadata read back differs from the metadata written")
    return ReadBack(read)


def verify(run: Run) -> Verification:
    """Step 4: onnxruntime (edgeinfer's inputs) vs torch (torchvision's) must agree on every top-1."""
    from export import verification

    job = run.job
    check = verification.verify(
        job.network, run[Converted].fp32, job.metadata, job.verify.images, reference=job.reference
    )
    run.note(f"max |logit diff| {check.max_abs_diff:.3g}, top-1 agreement {check.top1_agreement:.2%}")
    check.check(atol=job.atol, min_agreement=1.0, what="FP32 export")
    return check


def quantize(run: Run) -> Kept:
    """Step 5: write ``out`` quantized as asked (``auto``: as measured), store its self-test, and verify a
    quantized model against torch as the FP32 one was."""
    from export import conversion, self_test, verification

    job = run.job
    selection = None
    if job.quantize == "auto":
        selection = _quantize_auto(run)
    elif job.quantize in ("int8", "dynamic"):
        _quantize_fixed(run)
    name = selection.chosen if selection else job.quantize
    document = self_test.embed_self_test(job.out, images=self_test.small_images(job.verify.images))
    run.note(f"self-test stored: {len(document['cases'])} cases, tolerance "
             f"{document['tolerance']:.3g} ({document['tolerance_basis']})")  # fmt: skip
    check = None
    if name not in ("none", "fp32"):
        written = conversion.load_metadata(job.out)
        check = verification.verify(job.network, job.out, written, job.verify.images, reference=job.reference)
        run.note(f"{name} vs torch FP32: top-1 agreement {check.top1_agreement:.2%}, "
                 f"batches {BATCH_SIZES} ran")  # fmt: skip
    return Kept(name, selection, document, check)


def report(run: Run) -> Report:
    """Step 6: FP32 vs the kept model on the report's images; the agreement bar; the JSON report."""
    from export import conversion
    from export import report as reports

    job, kept, fp32_check = run.job, run[Kept], run[Verification]
    models = {"fp32": run[Converted].fp32}
    if kept.check is not None:
        models[kept.name] = job.out
    selection = kept.selection
    if selection is not None and job.report_on is job.select_on:  # already measured: the table's rows
        summary = {"models": {name: selection.table[name] for name in models},
                   "measured_on": selection.measured_on}  # fmt: skip
    else:
        summary = reports.build_report(
            models, job.report_on.images, job.report_on.labels, repeats=job.repeats, threads=job.threads,
            budget=job.latency_budget, progress=run.note,
        )  # fmt: skip
    summary["verification"] = {
        "images": fp32_check.images,
        "source": job.verify.source,
        "batch_sizes": list(fp32_check.batch_sizes),
        "fp32_max_abs_logit_diff": fp32_check.max_abs_diff,
        "fp32_top1_agreement": fp32_check.top1_agreement,
    }
    summary["quantization"] = {"requested": job.quantize, "kept": kept.name}
    summary["self_test"] = {k: kept.self_test[k] for k in ("tolerance", "tolerance_basis")}
    summary["self_test"]["cases"] = len(kept.self_test["cases"])
    if selection is not None:
        summary["quantization"]["auto"] = {**selection.provenance(), "images": job.select_on.source}
    summary["metadata"] = conversion.load_metadata(job.out).to_dict()
    print_table(summary["models"], run.progress)
    if selection is not None:
        run.note(f"quantize auto: the candidates, measured on {len(job.select_on)} images of "
                 f"{job.select_on.source}")  # fmt: skip
        print_table(selection.table, run.progress)
        print_mixed_precision(selection.mixed_precision, run.progress)
        run.note(f"kept: {selection.chosen}")
    if job.quantize in ("int8", "dynamic"):
        agreement = Agreement.of(summary["models"][job.quantize])
        floor = reports.noise_floor(run[Converted].fp32, job.report_on.images)
        bar = agreement_bar(floor, job.min_agreement)
        summary["quantization"]["fp32_noise_floor"] = floor
        summary["quantization"]["agreement_bar"] = bar._asdict()
        if missed := agreement.shortfalls(bar):
            raise ExportError(
                f"the {job.quantize} model on {len(job.report_on)} images: {'; '.join(missed)} (the bars: "
                f"{bar}, from --min-agreement and 97% on confident images, each lowered to FP32's own "
                "agreement under ±1 pixel level of noise): try another calibration method, or --quantize auto"
            )
    reports.write_report(summary, job.report_file)
    return Report(summary)


def _quantize_auto(run: Run) -> Selection:
    """Build and measure every candidate (export/selection.py); copy the kept one to ``out`` with the
    decision in its provenance."""
    from export import conversion, selection

    job = run.job
    chosen, paths, metas = selection.select(
        run[Converted].fp32, run.workdir, job.metadata, job.calibration.images, job.select_on.images,
        job.select_on.labels, repeats=job.repeats, threads=job.threads, budget=job.latency_budget,
        progress=run.progress,
    )  # fmt: skip
    run.note(f"kept: {chosen.reason}")
    kept = metas[chosen.chosen]
    record = {**kept.provenance["quantization"], "auto": chosen.provenance()}
    shutil.copyfile(paths[chosen.chosen], job.out)
    conversion.rewrite_metadata(
        job.out, dataclasses.replace(kept, provenance={**kept.provenance, "quantization": record})
    )
    return chosen


def _quantize_fixed(run: Run) -> None:
    """``int8`` (static, calibrated) or ``dynamic``, as asked, written to ``out``."""
    from export import quantization

    job = run.job
    calibration = None if job.calibration is None else job.calibration.images
    quantization.quantize(run[Converted].fp32, job.out, job.metadata, job.quantize, job.options, calibration)


def print_table(rows: dict[str, dict[str, Any]], progress: Callable[[str], None]) -> None:
    """The measured models, one line each: accuracy, top-1 agreement with FP32 (overall, and on the images
    where FP32 is confident), size, latency, activations kept in float, and the verdict."""
    progress(f"{INDENT}{'model':10} {'accuracy':>8} {'agree':>8} {'confident':>9} {'size':>12} {'ratio':>6} "
             f"{'b1 ms':>8} {'b64 ms':>9} {'float':>5}  kept/why not")  # fmt: skip
    for name, m in rows.items():
        if "latency" not in m:  # a candidate that could not be built
            blank = f"{'':>8} {'':>8} {'':>9} {'':>12} {'':>6} {'':>8} {'':>9} {'':>5}"
            progress(f"{INDENT}{name:10} {blank}  {'; '.join(m['failed'])}")
            continue
        accuracy = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.2%}"
        confident = "n/a" if m.get("agreement_confident") is None else f"{m['agreement_confident']:.2%}"
        verdict = "" if "qualifies" not in m else "qualifies" if m["qualifies"] else "; ".join(m["failed"])
        b1, b64 = m["latency"]["batch_1_ms"], m["latency"]["batch_64_ms"]
        floats = len(m.get("kept_in_float", ()))
        progress(f"{INDENT}{name:10} {accuracy:>8} {m['agreement_with_fp32']:8.2%} {confident:>9} "
                 f"{m['size_bytes']:12,} {m['size_ratio_to_fp32']:6.3f} {b1:8.3f} {b64:9.3f} {floats:5}  "
                 f"{verdict}")  # fmt: skip
    first = next(iter(rows.values()))
    if "confident_images" in first:
        progress(f"{INDENT}confident: {first['confident_images']} of {first['images']} images have an FP32 "
                 f"top softmax probability ≥ {CONFIDENT}")  # fmt: skip


def print_mixed_precision(record: dict[str, Any], progress: Callable[[str], None]) -> None:
    """What the sensitivity loop did for ``auto`` (export/mixed.py): why it ran or not, each tensor kept
    in float with what keeping it alone gained."""
    if not record["ran"]:
        progress(f"{INDENT}mixed precision: not tried ({record['why']})")
        return
    met = "met" if record["met"] else "missed, best set kept"
    shared = record["images_shared_with_selection"]
    overlap = "overlap unknown" if shared is None else f"{shared} of them also selection images"
    progress(f"{INDENT}mixed precision ({record['why']}): sensitivity loop on {record['images']} "
             f"{record['images_from']} images ({overlap}), {record['ranked']}, {record['seconds']:g} s; "
             f"target {Agreement(**record['target_agreement'])} {met}: agreement there "
             f"{Agreement(**record['int8_agreement'])} → {Agreement(**record['agreement'])}")  # fmt: skip
    for entry in record["kept_in_float"]:
        alone, gain = entry["logit_sqnr_alone_db"], entry["gain_db"]
        progress(f"{INDENT}  in float: {entry['tensor']}  logit SQNR alone {alone:.1f} dB "
                 f"({gain:+.1f} dB over all-INT8)")  # fmt: skip


def _convert_title(job: ExportJob) -> str:
    return f"exporting FP32 ONNX (opset {job.opset}), input {list(job.metadata.input.shape)}"


def _verify_title(job: ExportJob) -> str:
    return f"onnxruntime vs torch on {len(job.verify)} images of {job.verify.source}, batches {BATCH_SIZES}"


def _quantize_title(job: ExportJob) -> str:
    if job.quantize == "auto":
        calibration, select_on = job.calibration, job.select_on
        return (f"quantize auto: candidates calibrated on {len(calibration)} images of {calibration.source}, "
                f"measured on {len(select_on)} of {select_on.source}")  # fmt: skip
    if job.quantize == "int8":
        options = job.options
        return (f"quantizing: static INT8, {len(job.calibration)} calibration images "
                f"({options.calibration_method}), fully connected weights {options.fc_bits}-bit, "
                f"left in float where they apply: {', '.join(options.exclude) or 'nothing'}")  # fmt: skip
    if job.quantize == "dynamic":
        return "quantizing: dynamic INT8 (MatMul/Gemm weights)"
    return "quantization: none"


def _report_title(job: ExportJob) -> str:
    from export.report import LATENCY_BATCHES

    return (f"report on {len(job.report_on)} images of {job.report_on.source}: accuracy, size, latency at "
            f"batches {LATENCY_BATCHES} ({job.threads} thread(s), median of at least "
            f"{min(MIN_RUNS, job.repeats)} runs, up to {job.repeats} or {job.latency_budget:g} s)"
            )  # fmt: skip


STEPS: tuple[Step, ...] = (
    Step(lambda job: job.title, inputs),
    Step(_convert_title, convert),
    Step(lambda job: "reading the metadata back through onnxruntime", read_back),
    Step(_verify_title, verify),
    Step(_quantize_title, quantize),
    Step(_report_title, report),
)


def export_network(job: ExportJob, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run :data:`STEPS` in order on ``job``; returns the report (also written to ``job.report_file``).

    Raises:
        ExportError: conversion, verification or the agreement bar fails.
    """
    job.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(job, Path(tmp), progress)
        for number, step in enumerate(STEPS, 1):
            progress(f"[{number}/{len(STEPS)}] {step.title(job)}")
            run.record(step.run(run))
    progress(f"wrote {job.out} and {job.report_file}")
    return run[Report].summary
