"""DataConfig: what a model expects of its images, declared once per model (timm's ``pretrained_cfg``).

The training script builds it from its evaluation pipeline; the checkpoint stores ``to_dict()`` under the key
``"data_config"``; export turns it into the ONNX file's metadata with :meth:`DataConfig.to_metadata`. Nothing
downstream assumes a size, a mode or a set of classes: they are read from here. Torch-free, like the rest of
``edgeinfer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeinfer.errors import MetadataError
from edgeinfer.metadata import InputSpec, ModelMetadata

INPUT_NAME = "input"


@dataclass(frozen=True)
class DataConfig:
    """A model's data contract.

    Attributes:
        architecture: what built the network (a torchvision name, ``package.module:factory``, "cnn", ...).
        labels: class names in output order (for folder data sets: the sorted sub-folder names).
        image_mode: "L" or "RGB": what decoded images are converted to before ``preprocessing``.
        input_size: the network input (C, H, W).
        preprocessing: the evaluation pipeline as an ``edgeinfer.transforms`` spec
            (``from_torchvision(compose).to_spec()``).
        dataset: where the images come from, e.g. ``{"kind": "fashion-mnist", "root": "/usr/share/..."}`` or
            ``{"kind": "folder", "root": "/abs/dir", "split": [0.8, 0.1, 0.1], "seed": 0}``.
    """

    architecture: str
    labels: tuple[str, ...]
    image_mode: str
    input_size: tuple[int, int, int]
    preprocessing: dict[str, Any]
    dataset: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise MetadataError(
                f"data config 'architecture' must be a non-empty string, got {self.architecture!r}"
            )
        if not isinstance(self.dataset, dict):
            raise MetadataError(f"data config 'dataset' must be an object, got {type(self.dataset).__name__}")
        self.to_metadata()  # the metadata schema validates labels, mode, size and preprocessing

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_metadata(
        self, provenance: Mapping[str, Any] | None = None, input_name: str = INPUT_NAME
    ) -> ModelMetadata:
        """The ONNX metadata of a model exported with this config (dynamic batch axis)."""
        return ModelMetadata(
            labels=tuple(self.labels),
            preprocessing=self.preprocessing,
            image_mode=self.image_mode,
            input=InputSpec(name=input_name, shape=(None, *self.input_size)),
            output="logits",
            provenance=dict(provenance or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "labels": list(self.labels),
            "image_mode": self.image_mode,
            "input_size": list(self.input_size),
            "preprocessing": self.preprocessing,
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataConfig:
        """Rebuild from :meth:`to_dict` output (as stored in a checkpoint).

        Raises:
            MetadataError: a key is missing or unknown, or a value is invalid.
        """
        if not isinstance(d, Mapping):
            raise MetadataError(f"data config must be an object, got {type(d).__name__}")
        keys = {"architecture", "labels", "image_mode", "input_size", "preprocessing", "dataset"}
        missing, unknown = sorted(keys - set(d) - {"dataset"}), sorted(set(d) - keys)
        if missing or unknown:
            raise MetadataError(f"data config: missing keys {missing}, unknown keys {unknown}")
        labels, size = d["labels"], d["input_size"]
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            raise MetadataError(f"data config 'labels' must be a list of strings, got {labels!r}")
        if not isinstance(size, (list, tuple)) or len(size) != 3:
            raise MetadataError(f"data config 'input_size' must be [C, H, W], got {size!r}")
        return cls(
            architecture=d["architecture"],
            labels=tuple(labels),
            image_mode=d["image_mode"],
            input_size=(size[0], size[1], size[2]),
            preprocessing=d["preprocessing"],
            dataset=d.get("dataset", {}),
        )
