"""Images as NumPy arrays: PIL image → array, mode of an array, and Pillow's mode conversions.

An image is an array whose dtype and shape imply its PIL mode: uint8 ``H×W`` = L, ``H×W×2`` = LA,
``H×W×3`` = RGB, ``H×W×4`` = RGBA; int32 ``H×W`` = I, float32 ``H×W`` = F, uint16 ``H×W`` = I;16.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_CHANNEL_MODES = {2: "LA", 3: "RGB", 4: "RGBA"}
_SINGLE_BAND_MODES = {
    np.dtype(np.uint8): "L",
    np.dtype(np.int32): "I",
    np.dtype(np.float32): "F",
    np.dtype(np.uint16): "I;16",
}
_PIL_MODES = ("L", "LA", "RGB", "RGBA", "I", "F", "I;16")
_PIL_MODE_HINTS = {
    "1": "convert('L')",
    "P": "convert('RGB') (or convert('RGBA') to keep transparency)",
    "PA": "convert('RGBA')",
    "CMYK": "convert('RGB')",
    "YCbCr": "convert('RGB')",
    "LAB": "convert('RGB')",
    "HSV": "convert('RGB')",
    "RGBX": "convert('RGB')",
    "RGBa": "convert('RGBA')",
    "La": "convert('LA')",
}

# Pillow's L24 weights (Convert.c): L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
_L24 = (19595, 38470, 7471)


def image_mode(arr: np.ndarray) -> str:
    """The PIL mode an image array stands for; raises TypeError/ValueError for anything else."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected an image as a numpy.ndarray or PIL image, got {type(arr).__name__}")
    if arr.size == 0:
        raise ValueError(f"empty image: shape {arr.shape}")
    if arr.ndim == 2:
        mode = _SINGLE_BAND_MODES.get(arr.dtype)
        if mode is None:
            raise TypeError(
                "an H×W image must be uint8 (L), int32 (I), float32 (F) or uint16 (I;16), "
                f"got dtype {arr.dtype}"
            )
        return mode
    if arr.ndim == 3:
        if arr.dtype != np.uint8:
            raise TypeError(f"an H×W×C image must be uint8, got dtype {arr.dtype} (shape {arr.shape})")
        mode = _CHANNEL_MODES.get(arr.shape[2])
        if mode is None:
            hint = " (use img[..., 0] for a single-channel image)" if arr.shape[2] == 1 else ""
            raise ValueError(
                f"an H×W×C image must have 2 (LA), 3 (RGB) or 4 (RGBA) channels, got shape {arr.shape}{hint}"
            )
        return mode
    raise ValueError(f"an image must be H×W or H×W×C, got an array of shape {arr.shape}")


def to_array(img: Any) -> np.ndarray:
    """A PIL image or image array as an image array (a validated array is returned as is)."""
    if isinstance(img, np.ndarray):
        image_mode(img)
        return img
    mode = getattr(img, "mode", None)
    if mode is None or not hasattr(img, "getbands"):
        raise TypeError(f"expected an image as a numpy.ndarray or PIL image, got {type(img).__name__}")
    if mode not in _PIL_MODES:
        hint = _PIL_MODE_HINTS.get(mode, "convert('I')" if mode.startswith("I;16") else "convert('RGB')")
        raise ValueError(f"PIL image mode {mode!r} is not supported; convert it first, e.g. img.{hint}")
    if img.width == 0 or img.height == 0:
        raise ValueError(f"empty image: size {img.size}")
    arr = np.asarray(img)
    if mode == "I;16":
        arr = arr.astype(np.uint16, copy=False)
    return arr


def grayscale(arr: np.ndarray, mode: str) -> np.ndarray:
    """Pillow's ``convert("L")`` for every supported mode (alpha is dropped, not composited)."""
    if mode == "L":
        return arr
    if mode == "LA":
        return arr[:, :, 0]
    if mode in ("RGB", "RGBA"):
        # uint32 holds 255*65536 + 0x8000 without overflow; the three products are exact.
        r, g, b = (arr[:, :, i].astype(np.uint32) for i in range(3))
        acc = r * _L24[0]
        acc += g * _L24[1]
        acc += b * _L24[2]
        acc += 0x8000
        acc >>= 16
        return acc.astype(np.uint8)
    if mode == "I":
        return np.clip(arr, 0, 255).astype(np.uint8)
    if mode == "I;16":
        return np.minimum(arr, 255).astype(np.uint8)
    # F → L (f2l): values <= 0 give 0, >= 255 give 255, the rest are truncated; NaN gives 0.
    out = np.zeros(arr.shape, np.uint8)
    inside = arr > 0
    out[inside] = np.minimum(arr[inside], 255).astype(np.uint8)
    return out
