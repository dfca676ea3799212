"""The metadata schema that makes an exported model self-describing.

One JSON document, stored in the ONNX file's ``metadata_props`` under the key ``"edgeinfer"``.
``export/`` writes it with :meth:`ModelMetadata.to_props`; the runtime reads it back from
onnxruntime's ``custom_metadata_map`` with :meth:`ModelMetadata.from_props`. Both sides use this
module, so the schema has exactly one owner.

Schema version 1::

    {
      "schema_version": 1,
      "labels": ["T-shirt/top", ...],             # one per output class, in output order
      "preprocessing": {...},                     # edgeinfer.transforms spec (Compose.to_spec())
      "image_mode": "L",                          # PIL mode images are converted to before preprocessing
      "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "shape": [null, 1, 28, 28]},
      "output": "logits",                         # or "probabilities"
      "provenance": {"architecture": "cnn", "dataset": "fashion-mnist", "test_accuracy": 0.94, ...}
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeinfer.errors import MetadataError

SCHEMA_VERSION = 1
METADATA_KEY = "edgeinfer"
IMAGE_MODES = ("L", "RGB")
LAYOUTS = ("NCHW",)
DTYPES = ("float32",)
OUTPUT_KINDS = ("logits", "probabilities")


@dataclass(frozen=True)
class InputSpec:
    """The model input: its ONNX name, layout, dtype and shape (``None`` for dynamic axes)."""

    name: str
    shape: tuple[int | None, ...]
    layout: str = "NCHW"
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to use an exported model: labels, preprocessing, input layout, provenance."""

    labels: tuple[str, ...]
    preprocessing: dict[str, Any]
    image_mode: str
    input: InputSpec
    output: str = "logits"
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["input"]["shape"] = list(self.input.shape)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries to store in the ONNX file."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelMetadata:
        if not isinstance(d, Mapping):
            raise MetadataError(f"edgeinfer metadata must be a JSON object, got {type(d).__name__}")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MetadataError(
                f"unsupported edgeinfer metadata schema_version {version!r} "
                f"(this edgeinfer reads {SCHEMA_VERSION})"
            )
        missing = [k for k in ("labels", "preprocessing", "image_mode", "input") if k not in d]
        if missing:
            raise MetadataError(f"edgeinfer metadata lacks {', '.join(missing)}")
        inp = d["input"]
        if not isinstance(inp, Mapping) or "name" not in inp or "shape" not in inp:
            raise MetadataError("edgeinfer metadata 'input' must be an object with 'name' and 'shape'")
        unknown = set(inp) - {"name", "shape", "layout", "dtype"}
        if unknown:
            raise MetadataError(f"edgeinfer metadata 'input' has unknown keys: {sorted(unknown)}")
        try:
            input_spec = InputSpec(
                name=inp["name"],
                shape=tuple(inp["shape"]),
                layout=inp.get("layout", "NCHW"),
                dtype=inp.get("dtype", "float32"),
            )
            return cls(
                labels=tuple(d["labels"]),
                preprocessing=d["preprocessing"],
                image_mode=d["image_mode"],
                input=input_spec,
                output=d.get("output", "logits"),
                provenance=dict(d.get("provenance", {})),
                schema_version=version,
            )
        except TypeError as e:
            raise MetadataError(f"malformed edgeinfer metadata: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise MetadataError(f"edgeinfer metadata is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ModelMetadata:
        """Read the metadata from an ONNX model's ``metadata_props`` (or onnxruntime's custom map)."""
        if METADATA_KEY not in props:
            raise MetadataError(
                f"the model has no edgeinfer metadata (no {METADATA_KEY!r} entry in its metadata_props); "
                "export it with export/to_onnx.py or pass the preprocessing and labels explicitly"
            )
        return cls.from_json(props[METADATA_KEY])


def _validate(m: ModelMetadata) -> None:
    from edgeinfer.transforms import from_spec

    if not m.labels or not all(isinstance(lab, str) and lab for lab in m.labels):
        raise MetadataError("edgeinfer metadata 'labels' must be a non-empty list of non-empty strings")
    if m.image_mode not in IMAGE_MODES:
        raise MetadataError(
            f"edgeinfer metadata 'image_mode' must be one of {IMAGE_MODES}, got {m.image_mode!r}"
        )
    if m.output not in OUTPUT_KINDS:
        raise MetadataError(f"edgeinfer metadata 'output' must be one of {OUTPUT_KINDS}, got {m.output!r}")
    inp = m.input
    if not isinstance(inp.name, str) or not inp.name:
        raise MetadataError("edgeinfer metadata 'input.name' must be a non-empty string")
    if inp.layout not in LAYOUTS:
        raise MetadataError(f"edgeinfer metadata 'input.layout' must be one of {LAYOUTS}, got {inp.layout!r}")
    if inp.dtype not in DTYPES:
        raise MetadataError(f"edgeinfer metadata 'input.dtype' must be one of {DTYPES}, got {inp.dtype!r}")
    if len(inp.shape) != 4 or not all(s is None or (isinstance(s, int) and s > 0) for s in inp.shape):
        raise MetadataError(
            f"edgeinfer metadata 'input.shape' must be 4 positive ints or nulls, got {list(inp.shape)}"
        )
    if not isinstance(m.provenance, dict) or not all(isinstance(k, str) for k in m.provenance):
        raise MetadataError("edgeinfer metadata 'provenance' must be an object with string keys")
    try:
        from_spec(m.preprocessing)
    except (TypeError, ValueError) as e:
        raise MetadataError(
            f"edgeinfer metadata 'preprocessing' is not a valid transforms spec: {e}"
        ) from None
