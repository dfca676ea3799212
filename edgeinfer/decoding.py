"""Decoding: a path, bytes, PIL image or NumPy array → a uint8 array in the model's image mode.

The conversion is torchvision's loader (``datasets.folder.pil_loader``): ``Image.open(f).convert(mode)``
with mode "RGB" or "L" as the model's metadata declares. Like that loader, EXIF orientation is NOT
applied: a JPEG whose EXIF says "rotate 90°" is classified as stored, exactly as torchvision would
see it during training and evaluation (torchvision never calls ``ImageOps.exif_transpose``).
For "L" models, converting straight to L gives the same pixels as ``pil_loader`` followed by
torchvision's ``Grayscale()`` (tests/test_hard_inputs.py checks this on odd image modes).

Only the raster formats in :data:`RASTER_FORMATS` are decoded, whatever the file is called: Pillow would
otherwise hand EPS content to Ghostscript, an interpreter, and read vector and scientific formats no
classifier was trained on. Only regular files are opened (a FIFO or a device would block or never end).

Float arrays follow torchvision's ``ToPILImage`` on a float tensor: values in [0, 1] become
``uint8(x * 255)`` (truncated, as ``mul(255).byte()``), for every channel count alike; floats outside
[0, 1], NaN or infinities are refused.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import threading
from typing import Any

import numpy as np
from PIL import Image

from edgeinfer._convert import pil_pixels
from edgeinfer._files import describe_open_error, open_regular
from edgeinfer.errors import ImageError, describe

# Pillow's own limit; past 2× this, Pillow refuses on open with DecompressionBombError.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS

# The formats images are decoded from (Pillow format name → the plugin module that registers it): raster
# formats only, no EPS/PostScript (Ghostscript), WMF/EMF, PDF or scientific containers, whatever the file
# name says. Only these plugins are imported (not Image.init(), which loads all forty: slower start-up, and
# code edgeinfer never wants to run); those this Pillow lacks (AVIF before Pillow 11.3) are left out.
_RASTER_PLUGINS = {
    "PNG": "Png", "JPEG": "Jpeg", "JPEG2000": "Jpeg2K", "BMP": "Bmp", "DIB": "Bmp", "GIF": "Gif",
    "TIFF": "Tiff", "WEBP": "WebP", "AVIF": "Avif", "PPM": "Ppm", "TGA": "Tga", "ICO": "Ico", "PCX": "Pcx",
    "SGI": "Sgi", "QOI": "Qoi", "PSD": "Psd",
}  # fmt: skip
for _plugin in sorted(set(_RASTER_PLUGINS.values())):
    with contextlib.suppress(ImportError):
        importlib.import_module(f"PIL.{_plugin}ImagePlugin")
RASTER_FORMATS = tuple(f for f in _RASTER_PLUGINS if f in Image.OPEN)
# Their file extensions, which directory walks look for: Image.EXTENSION holds those of the plugins imported
# so far, limited above to the raster formats (Image.registered_extensions() would import all forty).
IMAGE_EXTENSIONS = frozenset(ext for ext, fmt in Image.EXTENSION.items() if fmt in RASTER_FORMATS)
_BOMB_LIMIT_LOCK = threading.Lock()


def load_image(image: Any, mode: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``image`` and convert it to ``mode`` ("L" or "RGB") as torchvision's loader would.

    Args:
        image: a file path (str or PathLike), encoded bytes, a PIL image, or a NumPy array
            (read as the PIL image ``Image.fromarray`` makes of it).
        mode: the PIL mode the model expects.
        max_pixels: refuse encoded images with more pixels than this, from the header alone,
            before any pixel is decoded (decompression bombs); ``None`` disables the limit. It
            replaces Pillow's own limit, also when it is larger.

    Returns:
        A uint8 array, H×W for "L" and H×W×3 for "RGB", read-only and possibly strided (a view of
        Pillow's memory, which stores RGB as 4 bytes per pixel).

    Raises:
        ImageError: the file is missing, empty, unreadable, not an image, truncated or too large.
        TypeError, ValueError: ``image`` is of an unsupported kind, dtype or shape.
    """
    if isinstance(image, np.ndarray):
        return _from_array(image, mode)
    if isinstance(image, Image.Image):
        return _convert(image, mode, "image")
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(image), mode, max_pixels, "image bytes", empty=len(image) == 0)
    if isinstance(image, (str, os.PathLike)):
        return _decode_file(os.fspath(image), mode, max_pixels)
    raise TypeError(f"image must be a path, bytes, a PIL image or a NumPy array, got {type(image).__name__}")


def _decode_file(path: str, mode: str, max_pixels: int | None) -> np.ndarray:
    try:
        f = open_regular(path)
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: {describe_open_error(e)}") from None
    with f:
        return _decode(f, mode, max_pixels, path, empty=os.fstat(f.fileno()).st_size == 0)


def _decode(f: Any, mode: str, max_pixels: int | None, name: str, *, empty: bool) -> np.ndarray:
    if empty:
        raise ImageError(f"{name}: empty file")
    try:
        img = _open(f, max_pixels)  # reads the header only
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: refused, too many pixels ({e})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{name}: not an image in a format edgeinfer decodes ({', '.join(RASTER_FORMATS)})"
        ) from None
    except Exception as e:  # Pillow's plugins raise many exception types on corrupt headers
        raise ImageError(f"{name}: corrupt image header ({describe(e)})") from None
    with img:
        pixels = img.width * img.height
        if max_pixels is not None and pixels > max_pixels:
            raise ImageError(
                f"{name}: refused, {img.width}x{img.height} = {pixels} pixels exceeds the limit of "
                f"{max_pixels} (possible decompression bomb; raise max_pixels / --max-pixels to allow it)"
            )
        return _convert(img, mode, name)


def _open(f: Any, max_pixels: int | None) -> Image.Image:
    try:
        return Image.open(f, formats=RASTER_FORMATS)
    except Image.DecompressionBombError:
        if max_pixels is not None and max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
            raise
    # The caller allows more pixels than Pillow does: open again under the caller's limit (the header
    # check in _decode applies it). Pillow reads its limit from a module global, hence the lock.
    f.seek(0)
    with _BOMB_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(f, formats=RASTER_FORMATS)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _convert(img: Image.Image, mode: str, name: str) -> np.ndarray:
    try:
        img.load()  # decodes the pixels
        converted = img if img.mode == mode else img.convert(mode)  # convert(same mode) would copy
    except Exception as e:  # truncated or corrupt data surfaces as OSError, SyntaxError, ValueError, ...
        raise ImageError(f"{name}: cannot decode image ({describe(e)})") from None
    return pil_pixels(converted)


def _from_array(a: np.ndarray, mode: str) -> np.ndarray:
    if a.dtype.kind == "f":
        a = _float_to_uint8(a)
    if a.dtype == np.uint8 and a.ndim >= 2 and a.size and a.shape[2:] == {"L": (), "RGB": (3,)}[mode]:
        return np.ascontiguousarray(a)  # already what convert(mode) would give
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"image array must be H×W or H×W×C and non-empty, got shape {a.shape}")
    try:
        img = Image.fromarray(np.ascontiguousarray(a))
    except TypeError:
        raise TypeError(
            f"cannot read an image array of dtype {a.dtype} and shape {a.shape} "
            "(use uint8 H×W, H×W×3 or H×W×4)"
        ) from None
    return np.asarray(img.convert(mode))


def _float_to_uint8(a: np.ndarray) -> np.ndarray:
    """torchvision's ToPILImage on a float tensor: ``x.mul(255).byte()`` (truncation), x in [0, 1]."""
    rule = "float image arrays must hold values in [0, 1] (scaled by 255 like torchvision's ToPILImage)"
    if not np.isfinite(a).all():
        raise ValueError(f"{rule}; this {a.dtype} array holds NaN or infinity")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError(f"{rule}; this {a.dtype} array holds values from {a.min():g} to {a.max():g}")
    return (a * a.dtype.type(255)).astype(np.uint8)
