"""Transforms as specs: JSON-able dicts, as stored in a model's metadata, and back.

A spec is ``{"type": class name, argument: value, ...}`` with the constructor's arguments, read from the
transform's public attributes of the same names; a Compose holds the list of its transforms' specs.
:func:`from_spec` accepts only the classes of :mod:`edgeinfer.transforms.transforms`, their arguments and
:data:`MAX_SPEC_DEPTH` nested Composes; the classes check the values, including the pixel budget
(``MAX_OUTPUT_PIXELS``) of sizes that must exceed it whatever the image.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from edgeinfer.transforms import transforms as classes

__all__ = ["MAX_SPEC_DEPTH", "from_spec", "to_spec"]

MAX_SPEC_DEPTH = 16  # nested Compose levels in a spec

# Every transform class, by name.
CLASSES: dict[str, type[classes.Transform]] = {
    name: cls
    for name, cls in vars(classes).items()
    if isinstance(cls, type) and issubclass(cls, classes.Transform) and cls is not classes.Transform
}

_REQUIRED = inspect.Parameter.empty


def to_spec(transform: classes.Transform) -> dict[str, Any]:
    """The spec of ``transform``: ``transform.to_spec()``."""
    return transform.to_spec()


def from_spec(spec: Mapping[str, Any]) -> classes.Transform:
    """Rebuild a transform from its spec (as stored in a model's metadata).

    Raises:
        TypeError / ValueError: naming the bad key, its value, and where in the spec it is.
    """
    return _from_spec(spec, "spec", 0)


def _from_spec(spec: Any, where: str, depth: int) -> classes.Transform:
    if depth > MAX_SPEC_DEPTH:
        raise ValueError(f"{where}: Compose nested more than {MAX_SPEC_DEPTH} levels deep")
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where} must be a dict with a 'type' key, got {type(spec).__name__}: {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in CLASSES:
        raise ValueError(f"{where}['type'] must be one of {sorted(CLASSES)}, got {kind!r}")
    cls = CLASSES[kind]
    fields = classes.arguments(cls)
    unknown = sorted(set(spec) - set(fields) - {"type"})
    if unknown:
        raise ValueError(f"{where} ({kind}) has unknown key(s) {unknown}; allowed: {sorted(fields)}")
    missing = [k for k, default in fields.items() if default is _REQUIRED and k not in spec]
    if missing:
        raise ValueError(f"{where} ({kind}) lacks required key(s) {missing}")
    kwargs = {k: spec[k] for k in fields if k in spec}
    if cls is classes.Compose:
        items = kwargs["transforms"]
        if not isinstance(items, list):
            raise TypeError(f"{where}['transforms'] must be a list, got {type(items).__name__}")
        return classes.Compose(
            [_from_spec(s, f"{where}['transforms'][{i}]", depth + 1) for i, s in enumerate(items)]
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where} ({kind}): {e}") from None
