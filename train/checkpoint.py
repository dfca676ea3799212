"""The checkpoint format shared with export/: one ``torch.save``d dict of tensors and plain data.

Keys: ``state_dict``; ``config`` (JSON-able training config: ``train.models.build_model(config)``
rebuilds the network, whatever its ``arch``); ``data_config`` (``train.config.DataConfig.to_dict()``: the
architecture, the data set, and the model's labels, image mode, input size and eval preprocessing spec as
edgeinfer metadata); ``metrics``. Loadable with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.config import DataConfig


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    data_config: DataConfig,
    metrics: dict[str, Any],
) -> None:
    """Write the checkpoint of ``model`` (unwrapped from DDP, tensors moved to CPU and made contiguous)."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    state_dict = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    checkpoint = {
        "state_dict": state_dict,
        "config": config,
        "data_config": data_config.to_dict(),
        "metrics": metrics,
    }
    torch.save(checkpoint, path)
