"""The checkpoint format shared with export/: one ``torch.save``d dict of tensors and plain data.

Keys: ``state_dict``, ``config`` (JSON-able; ``train.models.build_model(config)`` rebuilds the network),
``preprocessing`` (edgeinfer transforms spec of the eval pipeline), ``labels``, ``image_mode``,
``input_shape`` ([C, H, W]), ``dataset``, ``metrics``. Loadable with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    preprocessing: dict[str, Any],
    labels: tuple[str, ...],
    input_shape: tuple[int, int, int],
    metrics: dict[str, Any],
    image_mode: str = "L",
    dataset: str = "fashion-mnist",
) -> None:
    """Write the checkpoint of ``model`` (unwrapped from DDP, tensors moved to CPU and made contiguous)."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    state_dict = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    checkpoint = {
        "state_dict": state_dict,
        "config": config,
        "preprocessing": preprocessing,
        "labels": list(labels),
        "image_mode": image_mode,
        "input_shape": list(input_shape),
        "dataset": dataset,
        "metrics": metrics,
    }
    torch.save(checkpoint, path)
