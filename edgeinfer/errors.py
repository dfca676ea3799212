"""Exceptions raised by edgeinfer. The CLI turns each into a one-line error message."""

from __future__ import annotations


class EdgeInferError(Exception):
    """Base class: every error edgeinfer raises on bad input derives from this."""


class MetadataError(EdgeInferError, ValueError):
    """A model's edgeinfer metadata is missing, malformed or inconsistent."""


class ModelError(EdgeInferError):
    """A model file cannot be loaded or does not match what its metadata declares."""


class ImageError(EdgeInferError):
    """An image cannot be read, decoded or classified (missing, empty, truncated, not an image, too
    large, a preprocessing or model output that fails for this image): the error of one image."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def describe(e: BaseException) -> str:
    """``"TypeName: first line"`` of an exception, for wrapping a foreign error in a one-line message."""
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__
