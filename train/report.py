"""What a training run leaves behind: checkpoint, metrics.json, PNG plots and a printed summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from train.checkpoint import save_checkpoint
from train.config import DataConfig
from train.models import count_parameters


def collect_metrics(
    config: dict[str, Any],
    model: nn.Module,
    results: dict[str, dict[str, Any]],
    history: list[dict[str, float]],
    **extra: Any,
) -> dict[str, Any]:
    """The run's metrics: parameters, per-split accuracy and loss, per-epoch history, plus ``extra``."""
    return {
        "arch": config["arch"], "parameters": count_parameters(model),
        **{f"{split}_accuracy": r["accuracy"] for split, r in results.items()},
        **{f"{split}_loss": r["loss"] for split, r in results.items()},
        **extra, "history": history,
    }  # fmt: skip


def save_run(
    out: Path,
    model: nn.Module,
    config: dict[str, Any],
    data_config: DataConfig,
    metrics: dict[str, Any],
    test_labels: np.ndarray,
    test_predictions: np.ndarray,
) -> None:
    """Write model.pt, metrics.json, learning_curves.png, confusion_matrix.png to ``out``; print a summary."""
    save_checkpoint(out / "model.pt", model, config, data_config, metrics)
    matrix = confusion_matrix(test_labels, test_predictions, data_config.num_classes)
    write_metrics(out / "metrics.json", {**metrics, "test_confusion_matrix": matrix.tolist()})
    title = f"{config['arch']} ({config.get('preset', 'transfer')}), {metrics['parameters']:,} parameters"
    plot_learning_curves(metrics["history"], out / "learning_curves.png", title)
    plot_confusion_matrix(
        matrix,
        data_config.labels,
        out / "confusion_matrix.png",
        f"{title}\ntest accuracy {metrics['test_accuracy']:.2%}",
    )
    print(
        f"\n{title}\n"
        f"  accuracy  train {metrics['train_accuracy']:.4f}  val {metrics['val_accuracy']:.4f}"
        f"  test {metrics['test_accuracy']:.4f}  (images: {metrics['images']}"
        f"{_skipped(metrics.get('skipped_files'))})\n"
        f"  time      training {metrics['train_seconds'] / 60:.1f} min,"
        f" total {metrics['wall_seconds'] / 60:.1f} min"
        f" on {metrics['world_size']} process(es) × {metrics['threads']} thread(s)"
        f" (CPU time of rank 0: {metrics['cpu_seconds'] / 60:.1f} min)\n"
        f"  saved     {out / 'model.pt'}, metrics.json, learning_curves.png, confusion_matrix.png",
        flush=True,
    )


def _skipped(count: int | None) -> str:
    """The summary's count of unreadable files a folder run skipped (nothing for in-memory data sets)."""
    return "" if count is None else f"; skipped {count} unreadable file{'s' if count != 1 else ''}"


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[true class, predicted class]``."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, -1)


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(metrics, indent=2) + "\n")


def plot_learning_curves(history: list[dict[str, float]], path: str | Path, title: str) -> None:
    """Loss and accuracy per epoch, train vs validation."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], label="train (mean over the epoch, as trained)")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(matrix: np.ndarray, classes: tuple[str, ...], path: str | Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if count > threshold else "black",
        )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt
