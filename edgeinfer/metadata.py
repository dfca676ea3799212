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
                                                  # an image model (export/image_model.py) takes the decoded
                                                  # image: "layout": "HWC", "dtype": "uint8", shape [H, W, C]
      "output": "logits",                         # or "probabilities"
      "provenance": {"architecture": "cnn", "dataset": "fashion-mnist", "test_accuracy": 0.94, ...}
    }

Every field is type-checked and bounded, since a model file may come from anyone: the document is at
most ``MAX_DOCUMENT_BYTES`` of strict JSON (no NaN/Infinity), nested at most ``MAX_DEPTH`` levels, its
strings and lists bounded; labels are distinct non-empty strings without control characters; sizes
and paddings stay within ``edgeinfer.transforms.MAX_OUTPUT_PIXELS``. Anything else is one
:class:`MetadataError` line.

A model without metadata gets its preprocessing and labels from files instead (``edgeinfer predict --spec
--labels``): :func:`read_spec` and :func:`read_labels` hold them to the same rules.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeinfer._files import describe_open_error, open_regular
from edgeinfer.errors import MetadataError, first_line

SCHEMA_VERSION = 1
METADATA_KEY = "edgeinfer"
IMAGE_MODES = ("L", "RGB")
LAYOUTS = ("NCHW", "HWC")
DTYPES = ("float32", "uint8")
# Each layout's dtype and rank: a tensor batch (NCHW), or one decoded image (HWC, an image model).
_LAYOUT_FORMS = {"NCHW": ("float32", 4), "HWC": ("uint8", 3)}
OUTPUT_KINDS = ("logits", "probabilities")

MAX_DOCUMENT_BYTES = 4 * 2**20  # a metadata document or a --spec file
MAX_DEPTH = 32  # nested lists/objects in a document
MAX_ITEMS = 100_000  # entries of one list or object (ImageNet-21k has 21,841 classes)
MAX_STRING = 10_000  # characters of one string
MAX_LABEL = 1_000  # characters of one label

_FIELDS = ("schema_version", "labels", "preprocessing", "image_mode", "input", "output", "provenance")
_INPUT_FIELDS = ("name", "shape", "layout", "dtype")


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
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries to store in the ONNX file."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelMetadata:
        if not isinstance(d, Mapping):
            raise MetadataError(f"edgeinfer metadata must be a JSON object, got {type(d).__name__}")
        check_document(d, "edgeinfer metadata")
        version = d.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise MetadataError(
                f"unsupported edgeinfer metadata schema_version {version!r} "
                f"(this edgeinfer reads {SCHEMA_VERSION})"
            )
        missing = [k for k in ("labels", "preprocessing", "image_mode", "input") if k not in d]
        if missing:
            raise MetadataError(f"edgeinfer metadata lacks {', '.join(missing)}")
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise MetadataError(f"edgeinfer metadata has unknown keys: {unknown}")
        inp = d["input"]
        if not isinstance(inp, Mapping) or "name" not in inp or "shape" not in inp:
            raise MetadataError("edgeinfer metadata 'input' must be an object with 'name' and 'shape'")
        unknown = sorted(set(inp) - set(_INPUT_FIELDS))
        if unknown:
            raise MetadataError(f"edgeinfer metadata 'input' has unknown keys: {unknown}")
        for where, value, kind in (
            ("labels", d["labels"], list),
            ("preprocessing", d["preprocessing"], Mapping),
            ("input.shape", inp["shape"], list),
            ("provenance", d.get("provenance", {}), Mapping),
        ):
            if not isinstance(value, kind):
                raise MetadataError(
                    f"edgeinfer metadata '{where}' must be a JSON {'array' if kind is list else 'object'}, "
                    f"got {type(value).__name__}"
                )
        return cls(
            labels=tuple(d["labels"]),
            preprocessing=dict(d["preprocessing"]),
            image_mode=d["image_mode"],
            input=InputSpec(
                name=inp["name"],
                shape=tuple(inp["shape"]),
                layout=inp.get("layout", "NCHW"),
                dtype=inp.get("dtype", "float32"),
            ),
            output=d.get("output", "logits"),
            provenance=dict(d.get("provenance", {})),
            schema_version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        return cls.from_dict(parse_document(text, "edgeinfer metadata"))

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ModelMetadata:
        """Read the metadata from an ONNX model's ``metadata_props`` (or onnxruntime's custom map)."""
        if METADATA_KEY not in props:
            raise MetadataError(
                f"the model has no edgeinfer metadata (no {METADATA_KEY!r} entry in its metadata_props); "
                "export it with export/to_onnx.py or pass the preprocessing and labels explicitly"
            )
        return cls.from_json(props[METADATA_KEY])


def parse_document(text: str | bytes, what: str) -> Any:
    """Strict JSON (RFC 8259: no NaN or Infinity, no number that overflows a float), bounded in size
    and shape by :func:`check_document`.

    Raises:
        MetadataError: naming ``what`` and the problem, on one line.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise MetadataError(f"{what} is too large: {len(text)} characters, the limit is {MAX_DOCUMENT_BYTES}")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MetadataError(f"{what} is nested too deeply (more than {MAX_DEPTH} levels)") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError, a bad constant or number, undecodable bytes
        raise MetadataError(f"{what} is not valid JSON: {first_line(e)}") from None
    check_document(doc, what)
    return doc


def check_document(doc: Any, what: str) -> None:
    """Refuse a JSON-like value nested deeper than MAX_DEPTH, with a list or object of more than
    MAX_ITEMS entries, a string longer than MAX_STRING, a non-finite number or a non-JSON type."""
    stack = [(doc, 0, "")]
    while stack:
        value, depth, where = stack.pop()
        at = f"{what} at {where or 'top level'}"
        if depth > MAX_DEPTH:
            raise MetadataError(f"{what} is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise MetadataError(f"{at}: a string of {len(value)} characters (the limit is {MAX_STRING})")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise MetadataError(f"{at}: {value} is not a finite number")
        elif isinstance(value, (Mapping, list, tuple)):
            if len(value) > MAX_ITEMS:
                raise MetadataError(f"{at}: {len(value)} entries (the limit is {MAX_ITEMS})")
            if isinstance(value, Mapping):
                for k, v in value.items():
                    if not isinstance(k, str):
                        raise MetadataError(f"{at}: key {k!r} is not a string")
                    stack.append((v, depth + 1, f"{where}.{k}" if where else k))
            else:
                stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))
        elif value is not None and not isinstance(value, (bool, int)):
            raise MetadataError(f"{at}: {type(value).__name__} is not a JSON value")


def check_labels(labels: Any, what: str = "edgeinfer metadata 'labels'") -> tuple[str, ...]:
    """``labels`` as a tuple, if it is a list or tuple of 1 to MAX_ITEMS distinct non-empty strings of at
    most MAX_LABEL characters without control characters (they would forge or break text output)."""
    if not isinstance(labels, (list, tuple)):
        raise MetadataError(f"{what} must be a list of strings, got {type(labels).__name__}")
    if not 0 < len(labels) <= MAX_ITEMS:
        raise MetadataError(f"{what} must hold 1 to {MAX_ITEMS} labels, got {len(labels)}")
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            raise MetadataError(f"{what}[{i}] must be a non-empty string, got {_short(label)}")
        if len(label) > MAX_LABEL:
            raise MetadataError(f"{what}[{i}] has {len(label)} characters (the limit is {MAX_LABEL})")
        if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in label):
            raise MetadataError(f"{what}[{i}] holds control characters: {_short(label)}")
        if label in seen:
            raise MetadataError(f"{what}[{i}] repeats the label {_short(label)}")
        seen.add(label)
    return tuple(labels)


def read_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The transforms spec in a JSON file, checked by building it (what ``Model(preprocessing=...)`` takes).

    Raises:
        MetadataError: the file cannot be read (or is not a regular file), is larger than MAX_DOCUMENT_BYTES,
            is not strict JSON, or does not hold a valid spec.
    """
    from edgeinfer.transforms import from_spec

    spec = parse_document(_read_file(path), f"{path}: the spec")
    try:
        if not isinstance(spec, dict):
            raise TypeError(f"{path}: must hold a JSON object (a transforms spec)")
        from_spec(spec)
    except (TypeError, ValueError) as e:
        raise MetadataError(f"{path}: not a valid transforms spec: {e}") from None
    return spec


def read_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The labels in a UTF-8 text file, one per line (blank lines and a byte-order mark ignored), checked as
    :func:`check_labels` checks a model's.

    Raises:
        MetadataError: the file cannot be read (or is not a regular file), is larger than MAX_DOCUMENT_BYTES,
            is not UTF-8, holds no label or an invalid one.
    """
    try:
        text = _read_file(path).decode("utf-8-sig")  # a byte-order mark is not a label
    except UnicodeDecodeError as e:
        raise MetadataError(f"{path}: not UTF-8 text ({e})") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise MetadataError(f"{path}: no labels in this file (one per line)")
    return check_labels(labels, f"{path}: labels")


def _read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a spec or labels file: a regular file of at most MAX_DOCUMENT_BYTES."""
    try:
        with open_regular(path) as f:
            data = f.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, ValueError) as e:
        raise MetadataError(f"{path}: {describe_open_error(e)}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise MetadataError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def _validate(m: ModelMetadata) -> None:
    from edgeinfer.transforms import MAX_OUTPUT_PIXELS, from_spec

    if type(m.schema_version) is not int or m.schema_version != SCHEMA_VERSION:
        raise MetadataError(f"edgeinfer metadata schema_version must be {SCHEMA_VERSION}")
    check_labels(m.labels)
    for name, value, allowed in (
        ("image_mode", m.image_mode, IMAGE_MODES),
        ("output", m.output, OUTPUT_KINDS),
        ("input.layout", m.input.layout, LAYOUTS),
        ("input.dtype", m.input.dtype, DTYPES),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise MetadataError(f"edgeinfer metadata '{name}' must be one of {allowed}, got {_short(value)}")
    inp = m.input
    dtype, rank = _LAYOUT_FORMS[inp.layout]
    if inp.dtype != dtype:
        raise MetadataError(f"edgeinfer metadata 'input.dtype' must be {dtype!r} for layout {inp.layout!r}")
    if not isinstance(inp.name, str) or not inp.name or len(inp.name) > MAX_LABEL:
        raise MetadataError(
            f"edgeinfer metadata 'input.name' must be a non-empty string of at most {MAX_LABEL} characters"
        )
    shape = inp.shape
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != rank
        or not all(s is None or (isinstance(s, int) and not isinstance(s, bool) and s > 0) for s in shape)
        or math.prod(s or 1 for s in shape[-3:]) > MAX_OUTPUT_PIXELS
    ):
        raise MetadataError(
            f"edgeinfer metadata 'input.shape' must be {rank} positive ints or nulls ({inp.layout}) with "
            f"C×H×W within {MAX_OUTPUT_PIXELS}, "
            f"got {_short(list(shape) if isinstance(shape, tuple) else shape)}"
        )
    if not isinstance(m.provenance, dict):
        raise MetadataError(
            f"edgeinfer metadata 'provenance' must be an object, got {type(m.provenance).__name__}"
        )
    check_document(m.provenance, "edgeinfer metadata 'provenance'")
    if not isinstance(m.preprocessing, Mapping):
        raise MetadataError(
            f"edgeinfer metadata 'preprocessing' must be an object, got {type(m.preprocessing).__name__}"
        )
    check_document(m.preprocessing, "edgeinfer metadata 'preprocessing'")
    try:
        from_spec(m.preprocessing)
    except (TypeError, ValueError) as e:
        raise MetadataError(
            f"edgeinfer metadata 'preprocessing' is not a valid transforms spec: {first_line(e)}"
        ) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a float")
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
