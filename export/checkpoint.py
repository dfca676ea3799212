"""Training checkpoints as export reads them: the network, and the metadata describing its ONNX file."""

from __future__ import annotations

import datetime
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinfer.errors import MetadataError, first_line
from edgeinfer.metadata import ModelMetadata
from train.config import DataConfig

if TYPE_CHECKING:
    import torch

REQUIRED_KEYS = ("state_dict", "config", "data_config")


@dataclass(frozen=True)
class Exportable:
    """A train/ checkpoint ready to export: its network (eval mode), the FP32 model's metadata, its data
    config, and the data set its images come from (the checkpoint's, or the one ``--data`` names)."""

    network: torch.nn.Module
    metadata: ModelMetadata
    config: DataConfig
    dataset: dict[str, Any]


def load_for_export(path: str | Path, opset: int, data: str | None = None) -> Exportable:
    """:func:`load_checkpoint`, :func:`build_network`, :func:`build_metadata` and the data set, in one call.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_checkpoint`, :func:`build_network` and
            ``export.inputs.data_set``.
    """
    from export.inputs import data_set

    checkpoint = load_checkpoint(path)
    network = build_network(checkpoint)
    config = data_config(checkpoint)
    return Exportable(
        network=network,
        metadata=build_metadata(checkpoint, network, file_sha256(path), opset),
        config=config,
        dataset=data_set(data, config.dataset) if data else config.dataset,
    )


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
    except pickle.UnpicklingError:  # weights_only refused what the file pickles, or it is no pickle at all
        raise ValueError(f"{path} is not a loadable checkpoint: {_refusal(path)}") from None
    except Exception as e:  # torch raises bare RuntimeError/EOFError for truncated or empty files
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


def _refusal(path: Path) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, asked of torch's public API rather than read
    from its error text (several paragraphs, whose layout changes between releases)."""
    import torch

    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except ValueError:  # it reads torch.save's zip format only
        return "it is not in torch.save's format, or pickles objects that weights_only=True refuses"
    if not unsafe:
        return "weights_only=True cannot unpickle it"
    return (
        f"it pickles {', '.join(unsafe)}, which weights_only=True refuses "
        "(a train/ checkpoint holds tensors and plain data only)"
    )


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
    misfit = _misfit(network.state_dict(), checkpoint["state_dict"])
    if misfit:
        raise ValueError(
            f"the checkpoint's weights do not fit train.models' {checkpoint['config']['arch']!r}: {misfit}"
        )
    network.load_state_dict(checkpoint["state_dict"])
    return network.eval()


def _misfit(expected: dict[str, torch.Tensor], found: dict[str, Any], shown: int = 3) -> str:
    """How the weights ``found`` differ from the network's ``expected`` ones: missing or unexpected names, or
    shapes (the first ``shown`` of each), "" when they fit."""

    def shape(value: Any) -> list[int] | None:
        return list(value.shape) if hasattr(value, "shape") else None

    def names(keys: list[str]) -> str:
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        return ", ".join(keys[:shown]) + more

    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [
        f"{k} {shape(found[k])} (the network's: {shape(expected[k])})"
        for k in expected
        if k in found and shape(found[k]) != shape(expected[k])
    ]
    found_wrong = (("missing", missing), ("unexpected", unexpected), ("shapes differ:", reshaped))
    return "; ".join(f"{what} {names(keys)}" for what, keys in found_wrong if keys)


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
