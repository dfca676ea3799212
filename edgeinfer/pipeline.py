"""The one image path: decode → convert to the model's image mode → its preprocessing → a checked tensor.

``Model.preprocess``, export's calibration reader, export's verification and its accuracy report all call
:func:`preprocess`, so the tensor a model is calibrated, verified and measured on is the tensor it gets at
run time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from edgeinfer.decoding import DEFAULT_MAX_PIXELS, load_image
from edgeinfer.errors import ImageError
from edgeinfer.metadata import ModelMetadata
from edgeinfer.transforms import Transform, from_spec

DYNAMIC_SIDE = 224  # the image side assumed for a dynamic input height or width (self-test, bench)


def preprocess(
    image: Any,
    metadata: ModelMetadata,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    transform: Transform | None = None,
) -> np.ndarray:
    """Decode ``image`` (path, bytes, PIL image or array), convert it to ``metadata.image_mode`` like
    torchvision's loader, and apply the model's preprocessing: a float32 C×H×W array.

    Args:
        transform: ``from_spec(metadata.preprocessing)``, when the caller already built it.

    Raises:
        ImageError: the image cannot be decoded, or its tensor does not fit the model's input
            (possible when the preprocessing does not fix the size, e.g. ToTensor alone).
    """
    decoded = load_image(image, metadata.image_mode, max_pixels=max_pixels)
    transform = transform or from_spec(metadata.preprocessing)
    name = image_name(image)
    try:
        tensor = transform(decoded)
    except (TypeError, ValueError) as e:
        # A spec that does not fix the size can fail on some images only (e.g. Pad before a crop).
        raise ImageError(f"{name}: preprocessing failed: {e}") from None
    expected = metadata.input.shape[1:]
    if not shape_fits(tensor.shape, expected):
        raise ImageError(
            f"{name}: preprocessing gives a tensor of shape {shape_str(tensor.shape)}, "
            f"the model needs {shape_str(expected)}"
        )
    return tensor


def preprocess_batch(
    images: Iterable[Any], metadata: ModelMetadata, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """:func:`preprocess` over ``images``, stacked into a float32 N×C×H×W batch."""
    transform = from_spec(metadata.preprocessing)
    tensors = [preprocess(image, metadata, max_pixels=max_pixels, transform=transform) for image in images]
    return np.stack(tensors).astype(np.float32, copy=False)


def image_name(image: Any) -> str:
    """How an error names an image: its path, or its type."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"{type(image).__name__} image"


def shape_fits(shape: Sequence[int | None], declared: Sequence[int | None]) -> bool:
    """Same rank, and equal wherever both sides give a size (None is a dynamic axis)."""
    return len(shape) == len(declared) and all(
        a is None or b is None or a == b for a, b in zip(shape, declared, strict=True)
    )


def shape_str(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
