"""DataConfig: a trained model's data config, as its checkpoint stores it (timm's ``pretrained_cfg``).

Two things, kept apart: what built the model and from which images (``architecture``, ``dataset``: training
records that the runtime never reads), and the contract the exported model will carry (``metadata``: labels,
image mode, input size, eval preprocessing), which is an ``edgeinfer.metadata.ModelMetadata``: the one schema
that edgeinfer owns and validates. The training scripts build it from their eval pipeline; the checkpoint
stores :meth:`DataConfig.to_dict` under ``"data_config"``; export turns it into the ONNX file's metadata with
:meth:`DataConfig.to_metadata`. Torch-free, so that export and the benchmarks can read it without training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeinfer.errors import MetadataError
from edgeinfer.metadata import InputSpec, ModelMetadata

INPUT_NAME = "input"
# The keys of a data config saved before it held a ModelMetadata (still read by from_dict).
_FLAT_KEYS = frozenset({"architecture", "labels", "image_mode", "input_size", "preprocessing", "dataset"})
_KEYS = frozenset({"architecture", "metadata", "dataset"})


@dataclass(frozen=True)
class DataConfig:
    """A model's data config.

    Attributes:
        architecture: what built the network (a torchvision name, ``package.module:factory``, "cnn", ...).
        metadata: the exported model's contract, without provenance: labels in output order, image mode,
            input ``(None, C, H, W)`` and the eval preprocessing as an ``edgeinfer.transforms`` spec.
        dataset: where the images come from, e.g. ``{"kind": "fashion-mnist", "root": "/usr/share/..."}`` or
            ``{"kind": "folder", "root": "/abs/dir", "split": [0.8, 0.1, 0.1], "seed": 0}``.
    """

    architecture: str
    metadata: ModelMetadata
    dataset: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise MetadataError(
                f"data config 'architecture' must be a non-empty string, got {self.architecture!r}"
            )
        if not isinstance(self.metadata, ModelMetadata):
            kind = type(self.metadata).__name__
            raise MetadataError(f"data config 'metadata' must be a ModelMetadata, got {kind}")
        if not isinstance(self.dataset, dict):
            raise MetadataError(f"data config 'dataset' must be an object, got {type(self.dataset).__name__}")

    @classmethod
    def create(
        cls,
        architecture: str,
        labels: Sequence[str],
        image_mode: str,
        input_size: Sequence[int],
        preprocessing: dict[str, Any],
        dataset: dict[str, Any] | None = None,
    ) -> DataConfig:
        """The data config of a model taking ``input_size`` (C, H, W) images, with a dynamic batch axis.

        Raises:
            MetadataError: a value the metadata schema refuses (labels, mode, size or preprocessing).
        """
        if isinstance(input_size, str) or not isinstance(input_size, Sequence) or len(input_size) != 3:
            raise MetadataError(f"data config 'input_size' must be [C, H, W], got {input_size!r}")
        metadata = ModelMetadata(
            labels=tuple(labels),
            preprocessing=preprocessing,
            image_mode=image_mode,
            input=InputSpec(name=INPUT_NAME, shape=(None, *input_size)),
        )
        return cls(architecture, metadata, {} if dataset is None else dataset)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.metadata.labels

    @property
    def image_mode(self) -> str:
        return self.metadata.image_mode

    @property
    def input_size(self) -> tuple[int, int, int]:
        """The network input (C, H, W)."""
        _, channels, height, width = self.metadata.input.shape
        return channels, height, width  # type: ignore[return-value]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.metadata.preprocessing

    @property
    def num_classes(self) -> int:
        return len(self.metadata.labels)

    def to_metadata(self, provenance: Mapping[str, Any] | None = None) -> ModelMetadata:
        """The ONNX metadata of a model exported with this config: the contract plus ``provenance``."""
        return dataclasses.replace(self.metadata, provenance=dict(provenance or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"architecture", "metadata": ModelMetadata.to_dict(), "dataset"}``."""
        return {
            "architecture": self.architecture,
            "metadata": self.metadata.to_dict(),
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataConfig:
        """Rebuild from :meth:`to_dict` output, or from the flat form older checkpoints hold
        (``architecture, labels, image_mode, input_size, preprocessing, dataset``).

        Raises:
            MetadataError: a key is missing or unknown, or a value is invalid.
        """
        if not isinstance(d, Mapping):
            raise MetadataError(f"data config must be an object, got {type(d).__name__}")
        keys = _FLAT_KEYS if "metadata" not in d else _KEYS
        missing, unknown = sorted(keys - set(d) - {"dataset"}), sorted(set(d) - keys)
        if missing or unknown:
            raise MetadataError(f"data config: missing keys {missing}, unknown keys {unknown}")
        dataset = d.get("dataset", {})
        if keys is _KEYS:
            return cls(d["architecture"], ModelMetadata.from_dict(d["metadata"]), dataset)
        labels = d["labels"]
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            raise MetadataError(f"data config 'labels' must be a list of strings, got {labels!r}")
        return cls.create(
            d["architecture"], labels, d["image_mode"], d["input_size"], d["preprocessing"], dataset
        )
