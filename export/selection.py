"""``--quantize auto``: quantize every way that may pay for this network, measure, keep what earns its place.

export/compare_quantization.py showed that the right variant depends on the network: static INT8 was 2.5×
faster than FP32 on the 468k-parameter Fashion-MNIST CNN and 6× slower on a narrow 27k-parameter one, and
4-bit fully connected weights only pay where the fully connected layers hold the weights. So no recipe is
fixed: the candidates below are built, and each is measured against FP32 on the model's own images through
``edgeinfer.Model`` (report.build_report). A candidate qualifies when its top-1 agreement with FP32 is at
least :func:`agreement_bar` (:data:`MIN_AGREEMENT`, or FP32's own agreement under ±1 pixel level of input
noise on the same images when that is lower: a head with near-tied classes; on the images where FP32 is
confident, :data:`MIN_CONFIDENT_AGREEMENT` or FP32's own agreement there when lower), it keeps
:func:`accuracy_bar` (FP32's accuracy less :data:`MAX_ACCURACY_DROP`, or FP32's accuracy on the noisy images
if lower; on unlabelled images, such as photos for an ImageNet head, agreement alone decides), it is not
slower than FP32 at batch 1 nor at batch 64, and its file is smaller. The smallest qualifying file wins
(ties: the faster at batch 64); when none qualifies, FP32 is kept and the reasons are recorded.

The static candidates share one calibration (quantization.calibrate). When plain int8 misses an agreement
bar on the selection images, "int8-mixed" (export/mixed.py) keeps in float the activations that the
sensitivity loop, run on calibration images, finds break it; it is measured like the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer.errors import first_line
from edgeinfer.metadata import ModelMetadata
from export import mixed, quantization, report
from export.quantization import Calibration, CalibrationReader, StaticOptions
from export.report import Agreement

MIN_AGREEMENT = 0.99
# On the images where FP32 is confident (report.CONFIDENT) a flipped top-1 is a real error, not a near-tie,
# judged on its own: this, or FP32's own agreement there under ±1 pixel level of noise when that is lower.
# Not 99 %: photo sets have a few dozen confident images (44 of 96 views for EfficientNet-Lite0), where 99 %
# would allow no flip at all.
MIN_CONFIDENT_AGREEMENT = 0.97
MAX_ACCURACY_DROP = 0.005  # 0.5 points
# "Linear-heavy": dynamic quantization (MatMul/Gemm weights only) is a candidate when fully connected
# layers hold at least this share of the weights; elsewhere it leaves the compute in float and gains nothing.
LINEAR_HEAVY = 0.5


@dataclass(frozen=True)
class Candidate:
    """One way to quantize: ``mode`` "int8" (static, with ``options``) or "dynamic"."""

    name: str
    description: str
    mode: str
    options: StaticOptions | None = None


@dataclass(frozen=True)
class Selection:
    """What ``auto`` kept, why, and the measured table it decided on; ``mixed_precision``: whether the
    sensitivity loop ran, and what it measured (export/mixed.py)."""

    chosen: str
    reason: str
    table: dict[str, dict[str, Any]]
    measured_on: dict[str, Any]
    mixed_precision: dict[str, Any]

    def provenance(self) -> dict[str, Any]:
        """What the model's metadata records about the decision."""
        return {"chosen": self.chosen, "reason": self.reason, "criteria": CRITERIA,
                "measured_on": self.measured_on, "candidates": self.table,
                "mixed_precision": self.mixed_precision}  # fmt: skip


CRITERIA = {
    "min_agreement_with_fp32": f"{MIN_AGREEMENT:.0%}, or FP32's own agreement under ±1 pixel level of noise "
    "on the same images when that is lower (agreement_bar)",
    "min_agreement_confident": f"on the images where FP32 is confident: {MIN_CONFIDENT_AGREEMENT:.0%}, or "
    "FP32's own agreement there under ±1 pixel level of noise when that is lower (agreement_bar)",
    "max_accuracy_drop": f"{MAX_ACCURACY_DROP:.1%}, or down to FP32's accuracy under ±1 pixel level of "
    "noise when that is lower (accuracy_bar); on unlabelled images agreement alone decides",
    "latency": "no slower than FP32 at batch 1 and 64",
    "size": "smaller than FP32",
    "preference": "smallest file, then fastest at batch 64",
}


def agreement_bar(floor: dict[str, float | None] | None = None, minimum: float = MIN_AGREEMENT) -> Agreement:
    """The top-1 agreement a quantized model must reach: ``minimum``, or FP32's own agreement under ±1 pixel
    level of noise (``floor``, :func:`report.noise_floor`) on the same images when that is lower:
    quantization may cost as much as one pixel level, not more. On the images where FP32 is confident,
    :data:`MIN_CONFIDENT_AGREEMENT` (or ``minimum`` if lower), or FP32's own agreement there when lower
    (None when ``floor`` found no confident image)."""
    floor = floor or {}
    confident = floor.get("confident", 1.0)
    if confident is not None:
        confident = min(minimum, MIN_CONFIDENT_AGREEMENT, confident)
    return Agreement(min(minimum, floor.get("overall", 1.0)), confident)


def candidates(fp32_path: str | Path, calibration_size: int) -> list[Candidate]:
    """The variants worth measuring for this graph (FP32 is always the baseline, not listed)."""
    conv, linear = _weight_counts(fp32_path)
    static = StaticOptions(calibration_size=calibration_size)
    found = [
        Candidate(
            "int8",
            "static QDQ, per-channel bias-corrected int8 weights, exact residual Adds, a one-channel "
            "first conv in float",
            "int8",
            static,
        )
    ]
    if linear:
        found.append(Candidate(
            "int8-fc4", "static QDQ + 4-bit fully connected weights (MatMulNBits)", "int8",
            StaticOptions(calibration_size=calibration_size, fc_bits=4),
        ))  # fmt: skip
    if linear >= LINEAR_HEAVY * (conv + linear):
        found.append(Candidate("dynamic", "dynamic INT8 (MatMul/Gemm weights)", "dynamic"))
    return found


def select(
    fp32_path: Path,
    workdir: Path,
    metadata: ModelMetadata,
    calibration: Sequence[Any],
    images: Sequence[Any],
    labels: np.ndarray | None,
    *,
    repeats: int,
    threads: int,
    budget: float = report.LATENCY_BUDGET,
    progress: Callable[[str], None] = print,
) -> tuple[Selection, dict[str, Path], dict[str, ModelMetadata]]:
    """Build and measure every candidate; returns the selection, every model's path and its metadata."""
    paths: dict[str, Path] = {"fp32": Path(fp32_path)}
    metas = {"fp32": metadata}
    descriptions = {"fp32": "FP32 (no quantization)"}
    broken: dict[str, dict[str, Any]] = {}
    found = candidates(fp32_path, len(calibration))
    ranges = _calibrate(fp32_path, workdir, metadata, calibration, found, broken, progress)
    for candidate in found:
        if candidate.name in broken:
            continue
        progress(f"      quantizing: {candidate.name} ({candidate.description})")
        path = workdir / f"{candidate.name}.onnx"
        try:
            metas[candidate.name] = quantization.quantize(
                fp32_path, path, metadata, candidate.mode, candidate.options, calibration, calibration=ranges
            )
        except Exception as e:  # onnxruntime.quantization raises anything (e.g. numpy's on flat histograms)
            _broken(broken, candidate.name, candidate.description, f"quantization failed: {first_line(e)}",
                    progress)  # fmt: skip
            continue
        paths[candidate.name] = path
        descriptions[candidate.name] = candidate.description
    floor = report.noise_floor(paths["fp32"], images, labels)
    bar = agreement_bar(floor)
    progress(f"      FP32 under ±1 pixel level of noise agrees with itself on "
             f"{Agreement(floor['overall'], floor['confident'])} of the selection images: agreement "
             f"bar {bar}")  # fmt: skip
    mixed_record = {"ran": False, "why": "no int8 candidate"}
    if "int8" in paths:
        mixed_record = _add_mixed(paths, metas, descriptions, calibration, images, labels, bar, progress)
    progress(f"      measuring {len(paths)} models on {len(images)} images (latency: median of at least "
             f"{min(report.MIN_RUNS, repeats)} runs, up to {repeats} or {budget:g} s per model)")  # fmt: skip
    measured = report.build_report(
        paths, images, labels, repeats=repeats, threads=threads, budget=budget, progress=_indented(progress)
    )
    table = {name: {"description": descriptions[name], **row} for name, row in measured["models"].items()}
    if "int8-mixed" in table:
        table["int8-mixed"]["kept_in_float"] = mixed_record["kept_in_float"]
    table.update(broken)
    chosen, reason = decide(table, floor)
    measured_on = {**measured["measured_on"], "fp32_noise_floor": floor, "agreement_bar": bar._asdict()}
    return Selection(chosen, reason, table, measured_on, mixed_record), paths, metas


def _calibrate(
    fp32_path: Path,
    workdir: Path,
    metadata: ModelMetadata,
    calibration: Sequence[Any],
    found: list[Candidate],
    broken: dict[str, dict[str, Any]],
    progress: Callable[[str], None],
) -> Calibration | None:
    """The static candidates' one calibration; when it fails, each of them is recorded as broken."""
    import time

    static = [c for c in found if c.mode == "int8"]
    if not static:
        return None
    options = static[0].options
    progress(f"      calibrating once for {', '.join(c.name for c in static)}: {len(calibration)} images, "
             f"{options.calibration_method}")  # fmt: skip
    started = time.perf_counter()
    try:
        ranges = quantization.calibrate(fp32_path, workdir, CalibrationReader(calibration, metadata), options)
    except Exception as e:  # onnxruntime.quantization raises anything (e.g. numpy's on flat histograms)
        for candidate in static:
            _broken(broken, candidate.name, candidate.description, f"calibration failed: {first_line(e)}",
                    progress)  # fmt: skip
        return None
    progress(f"      calibrated: ranges of {ranges.tensors} tensors in {time.perf_counter() - started:.1f} s")
    return ranges


def _add_mixed(
    paths: dict[str, Path],
    metas: dict[str, ModelMetadata],
    descriptions: dict[str, str],
    calibration: Sequence[Any],
    images: Sequence[Any],
    labels: np.ndarray | None,
    bar: Agreement,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The "int8-mixed" candidate added to ``paths`` when int8 misses the agreement ``bar`` on ``images`` and
    the sensitivity loop keeps some tensor in float; returns the record of what was decided and measured."""
    subset = {name: paths[name] for name in ("fp32", "int8")}
    agreement = Agreement.of(report.evaluate(subset, images, labels)["int8"])
    missed = agreement.shortfalls(bar)
    if not missed:
        progress(f"      int8 agrees with FP32 on {agreement} of the selection images: not mixed")
        return {"ran": False, "why": f"int8 agrees with FP32 on {agreement}, bar {bar}"}
    why = f"int8 on the selection images: {'; '.join(missed)}"
    progress(f"      {why}: looking for activations to keep in float")
    on = mixed.sensitivity_images(calibration)
    path = paths["int8"].with_name("int8-mixed.onnx")
    meta, record = mixed.build_mixed(paths["fp32"], paths["int8"], metas["int8"], on, path, progress)
    shared = _shared(on, images)
    record = {"ran": True, "why": why, **record, "images_shared_with_selection": shared}
    if meta is None:
        progress("      int8-mixed: no tensor kept in float, not a candidate")
        return record
    kept = len(record["kept_in_float"])
    paths["int8-mixed"], metas["int8-mixed"] = path, meta
    descriptions["int8-mixed"] = f"int8 with {kept} activation(s) kept in float (measured sensitivity)"
    return record


def _shared(some: Sequence[Any], others: Sequence[Any]) -> int | None:
    """How many of ``some`` are in ``others`` too (paths by name, arrays by content; None: not comparable)."""

    def key(image: Any) -> Any:
        if isinstance(image, (str, Path)):
            return str(image)
        if isinstance(image, np.ndarray):
            return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        raise TypeError

    try:
        return len({key(x) for x in some} & {key(x) for x in others})
    except TypeError:
        return None


def _broken(table: dict[str, dict[str, Any]], name: str, about: str, reason: str, progress: Any) -> None:
    progress(f"      {name}: {reason}")
    table[name] = {"description": about, "failed": [reason], "qualifies": False}


def _indented(progress: Callable[[str], None]) -> Callable[[str], None]:
    return lambda line: progress(f"      {line}")


def decide(table: dict[str, dict[str, Any]], floor: dict[str, float | None] | None = None) -> tuple[str, str]:
    """Mark each row ``qualifies``/``failed`` (in place), agreement judged against :func:`agreement_bar` and
    accuracy against :func:`accuracy_bar`, both from FP32's own ``floor`` under ±1 pixel level of noise on
    the same images (None: not measured, the fixed bars), and return the kept model's name and why."""
    fp32 = table["fp32"]
    fp32["qualifies"], fp32["failed"] = True, []
    for name, row in table.items():
        if name == "fp32" or "latency" not in row:  # not measured: it could not be built
            continue
        row["failed"] = failures(row, fp32, floor)
        row["qualifies"] = not row["failed"]
    winners = sorted(
        (name for name, row in table.items() if name != "fp32" and row["qualifies"]),
        key=lambda n: (table[n]["size_bytes"], table[n]["latency"]["batch_64_ms"]),
    )
    if winners:
        best = table[winners[0]]
        return winners[0], (
            f"{winners[0]} qualifies and is the smallest: {best['size_ratio_to_fp32']:.3f}× the FP32 size, "
            f"batch 1 {best['latency']['batch_1_ms']:.3g} ms vs {fp32['latency']['batch_1_ms']:.3g}, "
            f"batch 64 {best['latency']['batch_64_ms']:.3g} ms vs {fp32['latency']['batch_64_ms']:.3g}, "
            f"top-1 agreement {Agreement.of(best)}"
        )
    why = "; ".join(f"{name}: {', '.join(row['failed'])}" for name, row in table.items() if name != "fp32")
    return "fp32", f"no quantized variant qualifies, FP32 kept ({why})"


def accuracy_bar(fp32_accuracy: float, noisy_accuracy: float | None = None) -> float:
    """The accuracy a quantized model must keep: FP32's less :data:`MAX_ACCURACY_DROP`, or FP32's accuracy
    under ±1 pixel level of noise when that is lower (on 100 images one image is a whole point)."""
    bar = fp32_accuracy - MAX_ACCURACY_DROP
    return bar if noisy_accuracy is None else min(bar, noisy_accuracy)


def failures(
    row: dict[str, Any], fp32: dict[str, Any], floor: dict[str, float | None] | None = None
) -> list[str]:
    """The criteria ``row`` misses against the ``fp32`` row and the bars FP32's noise ``floor`` sets
    (:func:`agreement_bar`, :func:`accuracy_bar`), each with the measured numbers."""
    failed = []
    noisy_accuracy = (floor or {}).get("accuracy")
    if row["size_bytes"] >= fp32["size_bytes"]:  # Q/DQ scales outweigh the int8 savings on tiny networks
        failed.append(f"not smaller: {row['size_bytes']:,} bytes vs FP32 {fp32['size_bytes']:,}")
    failed += Agreement.of(row).shortfalls(agreement_bar(floor))
    if row["accuracy"] is not None:  # unlabelled images: agreement alone decides
        bar = accuracy_bar(fp32["accuracy"], noisy_accuracy)
        if row["accuracy"] < bar - 1e-9:
            failed.append(f"accuracy {row['accuracy']:.2%} vs FP32 {fp32['accuracy']:.2%} (bar {bar:.2%})")
    for batch in ("batch_1_ms", "batch_64_ms"):
        if row["latency"][batch] > fp32["latency"][batch]:
            failed.append(
                f"slower at {batch[:-3].replace('_', ' ')}: {row['latency'][batch]:.3g} ms vs "
                f"FP32 {fp32['latency'][batch]:.3g} ms"
            )
    return failed


def _weight_counts(path: str | Path) -> tuple[int, int]:
    """(conv weights, fully connected weights): sizes of the weight initializers of Conv and Gemm/MatMul."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    counts = {"Conv": 0, "Linear": 0}
    for node in graph.node:
        kind = "Conv" if node.op_type == "Conv" else "Linear" if node.op_type in ("Gemm", "MatMul") else None
        if kind:
            counts[kind] += sum(sizes.get(name, 0) for name in node.input[1:2])
    return counts["Conv"], counts["Linear"]
