"""Exceptions raised by edgeinfer. The CLI turns each into a one-line error message."""

from __future__ import annotations


class EdgeInferError(Exception):
    """Base class: every error edgeinfer raises on bad input derives from this."""


class MetadataError(EdgeInferError, ValueError):
    """A model's edgeinfer metadata is missing, malformed or inconsistent."""


class ModelError(EdgeInferError):
    """A model file cannot be loaded or does not match what its metadata declares."""


class ImageError(EdgeInferError):
    """An image cannot be read or decoded (missing, empty, truncated, not an image, too large)."""
