"""Images as NumPy arrays: PIL image → array, mode of an array, and Pillow's mode conversions.

An image is an array whose dtype and shape imply its PIL mode: uint8 ``H×W`` = L, ``H×W×2`` = LA,
``H×W×3`` = RGB, ``H×W×4`` = RGBA; int32 ``H×W`` = I, float32 ``H×W`` = F, uint16 ``H×W`` = I;16.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
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


def is_pil(img: Any) -> bool:
    """Whether ``img`` looks like a PIL image (recognised without importing Pillow)."""
    return hasattr(img, "getbands") and hasattr(img, "mode")


def pil_mode(img: Any) -> str:
    """The mode of a PIL image edgeinfer can take; raises TypeError/ValueError for anything else."""
    if not is_pil(img):
        raise TypeError(f"expected an image as a numpy.ndarray or PIL image, got {type(img).__name__}")
    mode = img.mode
    if mode not in _PIL_MODES:
        hint = _PIL_MODE_HINTS.get(mode, "convert('I')" if mode.startswith("I;16") else "convert('RGB')")
        raise ValueError(f"PIL image mode {mode!r} is not supported; convert it first, e.g. img.{hint}")
    if img.width == 0 or img.height == 0:
        raise ValueError(f"empty image: size {img.size}")
    return mode


def to_array(img: Any) -> np.ndarray:
    """A PIL image or image array as an image array (a validated array is returned as is)."""
    if isinstance(img, np.ndarray):
        image_mode(img)
        return img
    mode = pil_mode(img)
    if mode == "I;16":
        return np.asarray(img).astype(np.uint16, copy=False)
    return pil_pixels(img)


class _ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ArrowArray (a stable ABI), as Pillow >= 11.2 exports an image."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
# Pillow's storage per mode: (bytes per pixel, NumPy type, the channels an image array keeps).
_STORAGE = {
    "L": (1, "|u1", None),
    "LA": (4, "|u1", slice(None, None, 3)),  # L in byte 0, A in byte 3
    "RGB": (4, "|u1", slice(0, 3)),  # the fourth byte is padding
    "RGBA": (4, "|u1", None),
    "I": (4, "<i4", None),
    "F": (4, "<f4", None),
}
_BAND_BYTES = 1 << 23  # rows copied per Pillow crop when an image is not one block of memory


class _Exported:
    """Holds an exported image's Arrow capsule (which keeps Pillow's memory alive) for NumPy."""

    def __init__(self, capsule: Any, interface: dict) -> None:
        self.capsule = capsule
        self.__array_interface__ = interface


def pil_pixels(img: Any, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A read-only view of a PIL image's pixels (of the window ``box`` = (left, top, right, bottom) if
    given), as ``np.asarray(img.crop(box))`` but without its copies.

    ``np.asarray`` goes through ``tobytes``, which packs and joins the pixels in chunks, then copies them
    again. Pillow stores an image of up to 16 MB as one block that its Arrow export shares without a
    copy; a larger image (or a window) is copied here through crops of a few MB (one C copy each,
    exported the same way), still much faster. RGB and LA are strided views of Pillow's 4 bytes per pixel.
    """
    if not hasattr(img, "__arrow_c_array__"):  # Pillow < 11.2
        return np.asarray(img if box is None else img.crop(box))
    bands = list(_stored_bands(img, box))
    if len(bands) == 1:
        pixels = bands[0][1]
    else:
        pixels = np.empty((sum(len(band) for _, band in bands),) + bands[0][1].shape[1:], bands[0][1].dtype)
        for y, band in bands:
            pixels[y : y + len(band)] = band
    channels = _STORAGE[img.mode][2]
    return pixels if channels is None else pixels[:, :, channels]


def pil_bands(img: Any, box: tuple[int, int, int, int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The pixels of ``pil_pixels(img, box)`` as consecutive bands of rows, (first row, read-only pixels),
    each made only when asked for: a reader that goes band by band never holds a copy of the whole."""
    if not hasattr(img, "__arrow_c_array__"):  # Pillow < 11.2
        yield 0, pil_pixels(img, box)
        return
    channels = _STORAGE[img.mode][2]
    for y, band in _stored_bands(img, box):
        yield y, band if channels is None else band[:, :, channels]


def _stored_bands(img: Any, box: tuple[int, int, int, int] | None) -> Iterator[tuple[int, np.ndarray]]:
    """Bands of the window as Pillow stores its pixels: one view of the whole when the image is one block
    of memory, else crops of about _BAND_BYTES."""
    nbytes, typestr, _ = _STORAGE[img.mode]
    left, top, right, bottom = box or (0, 0, img.width, img.height)
    whole = _stored_view(img)
    if whole is not None:
        yield 0, whole[top:bottom, left:right]
        return
    rows = max(1, _BAND_BYTES // ((right - left) * nbytes))
    for y in range(top, bottom, rows):
        yield y - top, _exported(img.crop((left, y, right, min(bottom, y + rows))), typestr)


def pil_rows(img: Any, rows: list[int], left: int, right: int) -> np.ndarray:
    """Rows ``rows`` of a PIL image, columns [left, right), stacked (one small crop per row)."""
    if not hasattr(img, "__arrow_c_array__"):  # Pillow < 11.2
        return np.concatenate([np.asarray(img.crop((left, row, right, row + 1))) for row in rows])
    _, typestr, channels = _STORAGE[img.mode]
    pixels = np.empty(_stored_shape(img.mode, len(rows), right - left), typestr)
    for i, row in enumerate(rows):
        pixels[i] = _exported(img.crop((left, row, right, row + 1)), typestr)[0]
    return pixels if channels is None else pixels[:, :, channels]


def pil_view(img: Any) -> np.ndarray | None:
    """All of a PIL image's pixels without a copy when Pillow holds them in one block, else None."""
    pixels = _stored_view(img)
    channels = _STORAGE[img.mode][2]
    return pixels if pixels is None or channels is None else pixels[:, :, channels]


def _stored_view(img: Any) -> np.ndarray | None:
    img.load()
    if not hasattr(img, "__arrow_c_array__"):  # Pillow < 11.2 exports nothing
        return None
    try:
        return _exported(img, _STORAGE[img.mode][1])
    except ValueError:  # "Image rows are not contiguous in memory"
        return None


def _stored_shape(mode: str, height: int, width: int) -> tuple[int, ...]:
    """(H, W, 4) for modes stored as 4 bytes per pixel, (H, W) for L, I and F."""
    return (height, width, 4) if mode in ("LA", "RGB", "RGBA") else (height, width)


def _exported(img: Any, typestr: str) -> np.ndarray:
    _, capsule = img.__arrow_c_array__()
    array = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
    if array.n_children:  # multi-byte pixels are a fixed-size list of bytes
        array = array.children[0].contents
    shape = _stored_shape(img.mode, img.height, img.width)
    interface = {"version": 3, "shape": shape, "typestr": typestr, "data": (array.buffers[1], True)}
    return np.asarray(_Exported(capsule, interface))


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
