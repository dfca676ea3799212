"""FP32 vs quantized: accuracy, top-1 agreement, file size and latency, measured through edgeinfer.Model.

Every model sees the same tensors, made once by edgeinfer's image path from the first model's metadata.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeinfer.pipeline import preprocess_batch

LATENCY_BATCHES = (1, 64)
EVAL_CHUNK = 256  # images preprocessed at a time: bounds memory for large inputs


def evaluate(
    model_paths: dict[str, Path], images: Sequence[Any], labels: np.ndarray | None
) -> dict[str, dict[str, Any]]:
    """Top-1 accuracy of each model on ``images`` (None without labels), and each one's top-1 agreement
    with the first model."""
    from edgeinfer import Model

    models = {name: Model(path) for name, path in model_paths.items()}
    metadata = next(iter(models.values())).metadata
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for start in range(0, len(images), EVAL_CHUNK):
        batch = preprocess_batch(images[start : start + EVAL_CHUNK], metadata)
        for name, model in models.items():
            predictions[name].append(model.run(batch).argmax(1))
    predicted = {name: np.concatenate(chunks) for name, chunks in predictions.items()}
    reference = next(iter(predicted.values()))
    return {
        name: {
            "accuracy": None if labels is None else float(np.mean(pred == labels)),
            "agreement_with_fp32": float(np.mean(pred == reference)),
            "images": len(images),
        }
        for name, pred in predicted.items()
    }


def measure_latency(
    model_paths: dict[str, Path],
    images: Sequence[Any],
    *,
    batch_sizes: tuple[int, ...] = LATENCY_BATCHES,
    repeats: int = 50,
    threads: int = 1,
) -> dict[str, dict[str, float]]:
    """Median milliseconds per ``Model.run`` call of each model at each batch size (``images`` repeated to
    fill the batch).

    The models take turns run by run, so background load on a shared machine hits them alike.
    """
    from edgeinfer import Model

    models = {name: Model(path, threads=threads) for name, path in model_paths.items()}
    tensors = preprocess_batch(images[: max(batch_sizes)], next(iter(models.values())).metadata)
    result: dict[str, dict[str, float]] = {name: {} for name in models}
    for size in batch_sizes:
        batch = np.resize(tensors, (size, *tensors.shape[1:]))
        times: dict[str, list[float]] = {name: [] for name in models}
        for model in models.values():  # warm-up: first runs allocate and pack weights
            for _ in range(3):
                model.run(batch)
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model.run(batch)
                times[name].append(time.perf_counter() - start)
        for name in models:
            result[name][f"batch_{size}_ms"] = round(1000 * statistics.median(times[name]), 4)
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
) -> dict[str, Any]:
    """The comparison as one JSON-able dict: per model accuracy, agreement, size (and ratio), latency."""
    accuracy = evaluate(model_paths, images, labels)
    sizes = file_sizes(model_paths)
    latency = measure_latency(model_paths, images, repeats=repeats, threads=threads)
    first = next(iter(model_paths))
    models = {
        name: {
            **accuracy[name],
            "size_bytes": sizes[name],
            "size_ratio_to_fp32": round(sizes[name] / sizes[first], 4),
            "latency": latency[name],
        }
        for name in model_paths
    }
    return {
        "models": models,
        "measured_on": {"threads": threads, "repeats": repeats, "cpu": _cpu_name(), "cores": os.cpu_count()},
    }


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
