"""FP32 vs quantized: accuracy, top-1 agreement, file size and latency, measured through edgeinfer.Model.

Every model sees the same tensors, made once by edgeinfer's image path from the first model's metadata.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgeinfer.pipeline import preprocess_batch

LATENCY_BATCHES = (1, 64)
# Latency: each model runs until it has run ``repeats`` times, or at least MIN_RUNS times and LATENCY_BUDGET
# seconds at that batch size: a large model's time is bounded, a small one still gets ``repeats`` runs.
MIN_RUNS = 3
LATENCY_BUDGET = 2.0
EVAL_CHUNK = 256  # images preprocessed at a time: bounds memory for large inputs
CONFIDENT = 0.3  # FP32's top softmax probability at or above this: a "confident" image
# The noise floor is the mean over this many draws of the noise: one draw of ±1 pixel level moved
# EfficientNet-Lite1's agreement with itself between 92.7 % and 95.8 % on the same 96 views (8 draws).
NOISE_DRAWS = 4


class Agreement(NamedTuple):
    """Top-1 agreement with FP32: over all images, and on the images where FP32 is confident (None: there
    are none). Measured, or a bar to reach (``confident`` None: no bar on confident images)."""

    overall: float
    confident: float | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Agreement:
        """The agreement of one model's row of :func:`evaluate` or :func:`build_report`."""
        return cls(row["agreement_with_fp32"], row.get("agreement_confident"))

    def margin(self, bar: Agreement) -> float:
        """How far above ``bar`` this is on its closest criterion (negative: missed by that much)."""
        margins = [self.overall - bar.overall]
        if bar.confident is not None and self.confident is not None:
            margins.append(self.confident - bar.confident)
        return min(margins)

    def shortfalls(self, bar: Agreement) -> list[str]:
        """Each criterion of ``bar`` this misses, with both numbers."""
        missed = []
        if self.overall < bar.overall:
            missed.append(f"top-1 agreement {self.overall:.2%} < {bar.overall:.2%}")
        if bar.confident is not None and self.confident is not None and self.confident < bar.confident:
            missed.append(f"agreement on confident images {self.confident:.2%} < {bar.confident:.2%}")
        return missed

    def __str__(self) -> str:
        confident = "n/a" if self.confident is None else f"{self.confident:.2%}"
        return f"{self.overall:.2%} (confident {confident})"


def agreement(predicted: np.ndarray, reference: np.ndarray, confident: np.ndarray) -> Agreement:
    """Top-1 agreement of the ``predicted`` classes with the ``reference`` ones, overall and on the rows
    where ``confident`` (a boolean mask) is set."""
    same = predicted == reference
    return Agreement(float(same.mean()), float(same[confident].mean()) if confident.any() else None)


def evaluate(
    model_paths: dict[str, Path], images: Sequence[Any], labels: np.ndarray | None
) -> dict[str, dict[str, Any]]:
    """Top-1 accuracy of each model on ``images`` (None without labels), and each one's top-1 agreement
    with the first model: overall, and on the images where the first model is confident (its top softmax
    probability ≥ :data:`CONFIDENT`; None when there are none). A near-tie flips under any noise; a
    confident top-1 that flips is a real error."""
    from edgeinfer import Model

    models = {name: Model(path) for name, path in model_paths.items()}
    metadata = next(iter(models.values())).metadata
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in models}
    top: list[np.ndarray] = []
    for start in range(0, len(images), EVAL_CHUNK):
        batch = preprocess_batch(images[start : start + EVAL_CHUNK], metadata)
        for number, (name, model) in enumerate(models.items()):
            output = model.run(batch)
            predictions[name].append(output.argmax(1))
            if number == 0:
                top.append(probabilities(output, metadata.output).max(1))
    predicted = {name: np.concatenate(chunks) for name, chunks in predictions.items()}
    reference = next(iter(predicted.values()))
    confident = np.concatenate(top) >= CONFIDENT
    rows = {}
    for name, pred in predicted.items():
        overall, on_confident = agreement(pred, reference, confident)
        rows[name] = {
            "accuracy": None if labels is None else float(np.mean(pred == labels)),
            "agreement_with_fp32": overall,
            "agreement_confident": on_confident,
            "images": len(images),
            "confident_images": int(confident.sum()),
        }
    return rows


def noise_floor(
    fp32_path: Path,
    images: Sequence[Any],
    labels: np.ndarray | None = None,
    seed: int = 0,
    draws: int = NOISE_DRAWS,
) -> dict[str, float | None]:
    """FP32's top-1 agreement with itself when every decoded pixel moves by a uniform integer in {-1, 0, 1}
    (clipped to 0–255): overall, on the images where it is confident, and its accuracy on the noisy images
    (None without ``labels``), each the mean over ``draws`` independent draws of the noise. On near-ties (a
    head trained two epochs, photos outside the training classes) one pixel level flips many top-1s; no
    quantization can be asked to do better than that."""
    from edgeinfer import Model
    from edgeinfer.decoding import load_image

    model = Model(fp32_path)
    metadata = model.metadata
    rng = np.random.default_rng(seed)
    same, sure, right = [], [], []
    for start in range(0, len(images), EVAL_CHUNK):
        decoded = [load_image(image, metadata.image_mode) for image in images[start : start + EVAL_CHUNK]]
        clean = model.run(preprocess_batch(decoded, metadata))
        sure.append(probabilities(clean, metadata.output).max(1) >= CONFIDENT)
        flips, hits = [], []
        for _ in range(draws):
            noisy = [np.clip(a.astype(np.int16) + rng.integers(-1, 2, a.shape), 0, 255).astype(np.uint8)
                     for a in decoded]  # fmt: skip
            top1 = model.run(preprocess_batch(noisy, metadata)).argmax(1)
            flips.append(clean.argmax(1) == top1)
            if labels is not None:
                hits.append(top1 == labels[start : start + EVAL_CHUNK])
        same.append(np.mean(flips, axis=0))
        right.append(np.mean(hits, axis=0) if hits else None)
    agree, confident = np.concatenate(same), np.concatenate(sure)
    return {
        "overall": float(agree.mean()),
        "confident": float(agree[confident].mean()) if confident.any() else None,
        "accuracy": None if labels is None else float(np.concatenate(right).mean()),
        "draws": draws,
    }


def probabilities(output: np.ndarray, kind: str) -> np.ndarray:
    """Each row of a model's ``output`` as probabilities: softmax of logits, or as is (metadata's kind)."""
    if kind == "probabilities":
        return output
    shifted = np.exp(output - output.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def measure_latency(
    model_paths: dict[str, Path],
    images: Sequence[Any],
    *,
    batch_sizes: tuple[int, ...] = LATENCY_BATCHES,
    repeats: int = 50,
    budget: float = LATENCY_BUDGET,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Median milliseconds per ``Model.run`` call of each model at each batch size (``images`` repeated to
    fill the batch), and the runs it is the median of (``batch_<n>_runs``).

    Each model runs ``repeats`` times, or fewer when it has run at least :data:`MIN_RUNS` times (or
    ``repeats`` if fewer) and ``budget`` seconds at that batch size. The models take turns run by run, after
    one warm-up run each (it allocates and packs the weights), so background load on a shared machine hits
    them alike.
    """
    from edgeinfer import Model

    models = {name: Model(path, threads=threads) for name, path in model_paths.items()}
    tensors = preprocess_batch(images[: max(batch_sizes)], next(iter(models.values())).metadata)
    result: dict[str, dict[str, float]] = {name: {} for name in models}
    least = min(MIN_RUNS, repeats)
    for size in batch_sizes:
        batch = np.resize(tensors, (size, *tensors.shape[1:]))
        for model in models.values():
            model.run(batch)
        times: dict[str, list[float]] = {name: [] for name in models}
        running = list(models)
        while running:
            for name in running:
                start = time.perf_counter()
                models[name].run(batch)
                times[name].append(time.perf_counter() - start)
            running = [
                name for name in running
                if len(times[name]) < repeats and (len(times[name]) < least or sum(times[name]) < budget)
            ]  # fmt: skip
        for name in models:
            result[name][f"batch_{size}_ms"] = round(1000 * statistics.median(times[name]), 4)
            result[name][f"batch_{size}_runs"] = len(times[name])
        if progress is not None:
            medians = (f"{name} {result[name][f'batch_{size}_ms']:.4g} ms ({len(times[name])} runs)"
                       for name in models)  # fmt: skip
            progress(f"latency at batch {size}: {', '.join(medians)}")
    return result


def file_sizes(model_paths: dict[str, Path]) -> dict[str, int]:
    """Bytes on disk, including an external-data file beside the model if there is one."""
    sizes = {}
    for name, path in model_paths.items():
        data = path.with_name(f"{path.name}.data")
        sizes[name] = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    return sizes


def build_report(
    model_paths: dict[str, Path],
    images: Sequence[Any],
    labels: np.ndarray | None,
    *,
    repeats: int,
    threads: int,
    budget: float = LATENCY_BUDGET,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The comparison as one JSON-able dict: per model accuracy, agreement (overall and confident), size (and
    ratio), latency (and the runs behind each median)."""
    accuracy = evaluate(model_paths, images, labels)
    sizes = file_sizes(model_paths)
    latency = measure_latency(
        model_paths, images, repeats=repeats, budget=budget, threads=threads, progress=progress
    )
    first = next(iter(model_paths))
    models = {
        name: {
            **accuracy[name],
            "size_bytes": sizes[name],
            "size_ratio_to_fp32": round(sizes[name] / sizes[first], 4),
            "latency": {k: v for k, v in latency[name].items() if k.endswith("_ms")},
            "latency_runs": {k[:-5]: v for k, v in latency[name].items() if k.endswith("_runs")},
        }
        for name in model_paths
    }
    measured_on = {"threads": threads, "repeats": repeats, "min_runs": MIN_RUNS, "budget_s": budget,
                   "confident": CONFIDENT, "cpu": _cpu_name(), "cores": os.cpu_count()}  # fmt: skip
    return {"models": models, "measured_on": measured_on}


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
