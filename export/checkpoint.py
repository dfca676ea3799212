"""Training checkpoints as export reads them: the network, and the metadata describing its ONNX file."""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinfer.errors import MetadataError, first_line
from edgeinfer.metadata import ModelMetadata
from train.config import DataConfig

if TYPE_CHECKING:
    import torch

REQUIRED_KEYS = ("state_dict", "config", "data_config")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by train/ (tensors and plain data only: ``weights_only=True``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a checkpoint in the train/ format, or its data config is invalid.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises bare RuntimeError/UnpicklingError/EOFError for bad files
        raise ValueError(f"{path} is not a loadable checkpoint: {first_line(e)}") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"{path} is not a train/ checkpoint: expected a dict, got {type(checkpoint).__name__}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"{path} is not a train/ checkpoint: it lacks {', '.join(missing)}")
    if "arch" not in checkpoint["config"]:
        raise ValueError(f"{path}: checkpoint config has no 'arch'")
    try:
        data_config(checkpoint)
    except MetadataError as e:
        raise ValueError(f"{path}: {e}") from None
    return checkpoint


def data_config(checkpoint: dict[str, Any]) -> DataConfig:
    """The model's data config (labels, image mode, input size, eval preprocessing, data set).

    Raises:
        MetadataError: the stored data config is invalid.
    """
    return DataConfig.from_dict(checkpoint["data_config"])


def build_network(checkpoint: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the trained network in eval mode, exactly as train/ defined it.

    Raises:
        ValueError: the weights do not fit the network that train/ builds from the checkpoint's config.
    """
    from train.models import build_model

    network = build_model(checkpoint["config"])
    try:
        network.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:  # missing/unexpected keys or shape mismatches: train/ and the file disagree
        raise ValueError(
            f"the checkpoint's weights do not fit train.models' {checkpoint['config']['arch']!r}: "
            f"{str(e).splitlines()[1].strip()}"
        ) from None
    return network.eval()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_date() -> str:
    """UTC date-time of the export; honours SOURCE_DATE_EPOCH so that rebuilds can be byte-identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
        if epoch
        else datetime.datetime.now(datetime.timezone.utc)
    )
    return moment.replace(microsecond=0).isoformat()


def build_metadata(
    checkpoint: dict[str, Any], network: torch.nn.Module, checkpoint_sha256: str, opset: int
) -> ModelMetadata:
    """The FP32 model's edgeinfer metadata (quantization: none; export.quantization records its own)."""
    data = data_config(checkpoint)
    test_accuracy = checkpoint.get("metrics", {}).get("test_accuracy")
    return data.to_metadata(
        provenance(data, network, opset, test_accuracy=test_accuracy, checkpoint_sha256=checkpoint_sha256)
    )


def provenance(data: DataConfig, network: torch.nn.Module, opset: int, **extra: Any) -> dict[str, Any]:
    """Where an exported model comes from: architecture, data set kind, ``extra`` (e.g. test accuracy and
    checkpoint SHA-256), parameter count, opset, export date and library versions."""
    import PIL
    import torch
    import torchvision

    import edgeinfer
    from train.models import count_parameters

    return {
        "architecture": data.architecture,
        "dataset": data.dataset.get("kind", "unknown"),
        **extra,
        "quantization": {"mode": "none"},
        "export_date": export_date(),
        "parameters": count_parameters(network),
        "opset": opset,
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
            "edgeinfer": edgeinfer.__version__,
        },
    }
