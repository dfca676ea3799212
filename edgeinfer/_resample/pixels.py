"""The pixels a resize reads: a window of an array or of a PIL image, and Pillow's 4-byte pixel layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeinfer import _convert

if TYPE_CHECKING:
    from PIL import Image

# NumPy 2 moved byte_bounds to numpy.lib.array_utils; the runtime supports NumPy >= 1.24.
_byte_bounds = getattr(getattr(np.lib, "array_utils", None), "byte_bounds", None) or np.byte_bounds


def window(img: np.ndarray | Image.Image, row_lo: int, row_hi: int, col_lo: int, col_hi: int) -> np.ndarray:
    """The pixels a resize reads, as an array; of a PIL image only these are converted."""
    if isinstance(img, np.ndarray):
        return img[row_lo:row_hi, col_lo:col_hi]
    return _convert.pil_pixels(img, (col_lo, row_lo, col_hi, row_hi))


def pixel_words(img: np.ndarray) -> np.ndarray | None:
    """An RGB(A) image whose pixels are 4 bytes apart (Pillow's storage, as ``pil_pixels`` exposes it) as
    an (H, W) uint32 view of whole pixels, or None for other layouts."""
    if img.ndim != 3 or img.shape[2] < 3 or img.strides[1:] != (4, 1) or img.strides[0] % 4:
        return None
    base = img
    while isinstance(base.base, np.ndarray):
        base = base.base
    words = np.lib.stride_tricks.as_strided(img, img.shape[:2] + (4,), img.strides, writeable=False)
    low, high = _byte_bounds(base)
    words_low, words_high = _byte_bounds(words)
    if words_low < low or words_high > high:  # the fourth byte of the last pixel is not there
        return None
    return words.view(np.uint32)[:, :, 0]
