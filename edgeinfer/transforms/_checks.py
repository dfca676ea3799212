"""Argument checks shared by the functional layer and the transform classes, and the output budget.

Each check raises TypeError for the wrong kind of value and ValueError for a bad one, with the value in the
message, and returns the value in the form the computation uses. The classes run them once, when built;
the functions of :mod:`edgeinfer.transforms.functional` on every call.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeinfer import _convert
from edgeinfer._resample.filters import FILTER_NAMES, FILTERS, PASS_ORDERS

# torchvision's InterpolationMode values → Pillow filter codes (functional.pil_modes_mapping): Pillow's
# filter table plus torchvision's second name for NEAREST.
INTERPOLATIONS = {**FILTERS, "nearest-exact": FILTERS["nearest"]}
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")
DTYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "float64")
UINT8_MODES = ("L", "LA", "RGB", "RGBA")
# Which torchvision kernel a Resize reproduces: Pillow's (a PIL image) or torch's (a C×H×W tensor).
BACKENDS = ("pil", "tensor")
TENSOR_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")
TENSOR_DTYPES = ("uint8", "float32", "float64")

# The budget: no transform may produce an image of more pixels than this (8192×4096; 100 MB as RGB
# uint8, 400 MB as a float32 RGB tensor). Sizes that must exceed it (CenterCrop(100000), Pad(10**7),
# Resize((10**5, 10**5))) are refused when the transform is built; sizes that depend on the image
# (Resize without a crop after it, Pad) are checked before the output is allocated. Resize followed by
# CenterCrop only computes the crop, so only the crop counts.
MAX_OUTPUT_PIXELS = 2**25


# The functions check their arguments on every call: the exact types that specs and classes hold are
# tried first, before the slower abstract base classes.


def is_int(x: Any) -> bool:
    return type(x) is int or (isinstance(x, numbers.Integral) and not isinstance(x, bool))


def is_number(x: Any) -> bool:
    return type(x) in (float, int) or (isinstance(x, numbers.Real) and not isinstance(x, bool))


def is_finite_number(x: Any) -> bool:
    return is_int(x) or (is_number(x) and math.isfinite(x))


def is_sequence(x: Any) -> bool:
    return type(x) in (list, tuple) or (isinstance(x, Sequence) and not isinstance(x, str))


def positive_int(name: str, value: Any) -> int:
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(value)


def check_budget(who: str, height: int, width: int) -> None:
    if height * width > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"{who} would make a {height}×{width} image ({height * width} pixels), over edgeinfer's "
            f"budget of {MAX_OUTPUT_PIXELS} pixels per transform output"
        )


def tensor(x: Any, who: str) -> np.ndarray:
    """``x`` if it is a non-empty C×H×W (or other) array; a PIL image gets a hint to add ToTensor."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{who} expects a tensor as a C×H×W NumPy array, got {type(x).__name__}"
            + (" (add ToTensor or PILToTensor before it)" if hasattr(x, "getbands") else "")
        )
    if x.size == 0:
        raise ValueError(f"{who} got an empty tensor of shape {x.shape}")
    return x


# --------------------------------------------------------------------------------------------------
# Per-transform arguments


def interpolation_name(value: Any) -> str:
    """A torchvision interpolation given as a string, an InterpolationMode or a Pillow int, as its name."""
    if type(value).__name__ == "InterpolationMode":  # torchvision's enum, recognised without importing it
        value = value.value
    if isinstance(value, str):
        name = value.lower()
        if name in INTERPOLATIONS:
            return name
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {value!r}")
    if is_int(value) and int(value) in FILTER_NAMES:
        return FILTER_NAMES[int(value)]
    raise ValueError(
        f"interpolation must be a name such as 'bilinear', an InterpolationMode or a Pillow filter code "
        f"0-5, got {value!r}"
    )


def resize_size(
    size: Any, max_size: Any, antialias: Any, pass_order: Any
) -> int | list[int] | tuple[int, ...] | None:
    """Resize's ``size`` (an int, a list or tuple kept as given, or None), after checking all four."""
    if size is None:
        if not is_int(max_size):
            raise ValueError(f"Resize max_size must be an int when size is None, got {max_size!r}")
    elif is_int(size):
        positive_int("Resize size", size)
    elif is_sequence(size):
        if len(size) not in (1, 2):
            raise ValueError(f"Resize size must be an int or a sequence of 1 or 2 ints, got {size!r}")
        for s in size:
            if not (is_int(s) and s > 0):  # the message is built only for a bad value
                positive_int(f"Resize size {list(size)}: each value", s)
        if max_size is not None and len(size) == 2:
            raise ValueError(f"Resize max_size applies only to an int size, got size={size!r}")
    else:
        raise TypeError(
            f"Resize size must be an int or a sequence of ints, got {size!r} ({type(size).__name__})"
        )
    if max_size is not None:
        positive_int("Resize max_size", max_size)
        requested = size if is_int(size) else (size[0] if size is not None else None)
        if requested is not None and max_size <= requested:
            raise ValueError(f"Resize max_size ({max_size}) must be greater than size ({size!r})")
    if antialias not in (True, False, None):
        raise TypeError(f"Resize antialias must be True, False or None, got {antialias!r}")
    if pass_order not in PASS_ORDERS:
        raise ValueError(f"Resize pass_order must be one of {PASS_ORDERS}, got {pass_order!r}")
    if is_int(size):
        return int(size)
    if size is None:
        return None
    return (list if isinstance(size, list) else tuple)(int(s) for s in size)


def backend(value: Any, interpolation: str, antialias: Any) -> str:
    """Resize's ``backend``, checked against what the tensor kernels reproduce."""
    if value not in BACKENDS:
        raise ValueError(f"Resize backend must be one of {BACKENDS}, got {value!r}")
    if value == "tensor":
        if interpolation not in TENSOR_INTERPOLATIONS:
            raise ValueError(
                f"Resize backend 'tensor' supports interpolation {TENSOR_INTERPOLATIONS}, "
                f"got {interpolation!r}"
            )
        if interpolation in ("bilinear", "bicubic") and antialias is not True:
            raise ValueError(
                "Resize backend 'tensor' reproduces torch's antialiased kernels only, "
                f"got antialias={antialias!r}"
            )
    return value


def image_tensor(x: Any, who: str) -> np.ndarray:
    """A ...×H×W tensor of a dtype the tensor kernels take (uint8, float32, float64)."""
    x = tensor(x, who)
    if x.ndim < 2:
        raise ValueError(f"{who} expects a tensor of shape (..., H, W), got shape {x.shape}")
    if x.dtype.name not in TENSOR_DTYPES:
        raise TypeError(f"{who} expects a tensor of dtype {TENSOR_DTYPES}, got {x.dtype}")
    return x


def resized_size(h: int, w: int, size: int | Sequence[int] | None, max_size: int | None) -> tuple[int, int]:
    """torchvision's ``_compute_resized_output_size`` (int division truncates, as there)."""
    short, long = (w, h) if w <= h else (h, w)
    if size is None:
        new_short, new_long = int(max_size * short / long), max_size
    elif isinstance(size, int) or len(size) == 1:
        requested = size if isinstance(size, int) else size[0]
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    else:
        return int(size[0]), int(size[1])
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if new_w <= 0 or new_h <= 0:
        raise ValueError(
            f"Resize(size={size}, max_size={max_size}) gives an empty {new_h}×{new_w} image from {h}×{w}"
        )
    return new_h, new_w


def region(value: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """A (top, left, height, width) window inside a ``height``×``width`` image."""
    if not is_sequence(value) or len(value) != 4:
        raise TypeError(f"region must be (top, left, height, width) ints, got {value!r}")
    top, left, h, w = value
    if not (is_int(top) and is_int(left) and is_int(h) and is_int(w)):
        raise TypeError(f"region must be (top, left, height, width) ints, got {value!r}")
    top, left, h, w = int(top), int(left), int(h), int(w)
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > height or left + w > width:
        raise ValueError(f"region {tuple(value)!r} is not a non-empty window of the {height}×{width} image")
    return top, left, h, w


def crop_size(size: Any, who: str = "CenterCrop") -> int | Sequence[int]:
    """CenterCrop's ``size`` as torchvision's ``_setup_size`` keeps it: a pair (an int is repeated)."""
    if is_int(size):
        size = (size, size)
    elif not is_sequence(size):
        raise TypeError(f"{who} size must be an int or (h, w), got {size!r}")
    elif len(size) == 1:
        size = (size[0], size[0])
    elif len(size) != 2:
        raise ValueError(f"{who} size must be an int or (h, w), got {size!r}")
    for s in size:
        if not (is_int(s) and s > 0):
            positive_int(f"{who} size {list(size)}: each value", s)
    return size


def keep_ratio_arguments(size: Any, longest: Any) -> tuple[tuple[int, int], float]:
    """ResizeKeepRatio's target ``(h, w)`` (an int is repeated, as timm does) and ``longest`` as a float
    in [0, 1] (0 fits the shorter side to its target, 1 the longer; between, a blend of the two ratios)."""
    if is_int(size):
        size = (size, size)
    elif not is_sequence(size) or len(size) != 2:
        raise TypeError(f"ResizeKeepRatio size must be an int or (h, w), got {size!r}")
    for s in size:
        if not (is_int(s) and s > 0):
            positive_int(f"ResizeKeepRatio size {list(size)}: each value", s)
    if not (is_number(longest) and 0 <= longest <= 1):
        raise ValueError(f"ResizeKeepRatio longest must be a number from 0 to 1, got {longest!r}")
    return (int(size[0]), int(size[1])), float(longest)


def padding_ltrb(padding: Any, fill: Any, padding_mode: Any) -> tuple[int, int, int, int]:
    """Pad's borders as (left, top, right, bottom), after checking ``fill`` and ``padding_mode`` too."""
    if is_int(padding):
        ltrb = (padding,) * 4
    elif is_sequence(padding):
        if len(padding) not in (1, 2, 4):
            raise ValueError(f"Pad padding must be an int or a 1, 2 or 4 element sequence, got {padding!r}")
        if not all(is_int(p) for p in padding):
            raise TypeError(f"Pad padding must hold ints, got {padding!r}")
        if len(padding) == 1:
            ltrb = (padding[0],) * 4
        elif len(padding) == 2:
            ltrb = (padding[0], padding[1], padding[0], padding[1])
        else:
            ltrb = tuple(padding)
    else:
        raise TypeError(f"Pad padding must be an int or a sequence of ints, got {padding!r}")
    if is_sequence(fill):
        if not fill or not all(is_number(f) for f in fill):
            raise TypeError(f"Pad fill must be a number or a non-empty sequence of numbers, got {fill!r}")
    elif not is_number(fill):
        raise TypeError(f"Pad fill must be a number or a sequence of numbers, got {fill!r}")
    if not all(is_finite_number(f) for f in (fill if is_sequence(fill) else [fill])):
        raise ValueError(f"Pad fill must be finite, got {fill!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"Pad padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return tuple(int(p) for p in ltrb)


def fill_value(fill: Any, arr: np.ndarray) -> Any:
    """torchvision's ``_parse_fill`` (int() truncation outside F) plus how Pillow stores the colour."""
    mode = _convert.image_mode(arr)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    values = list(fill) if isinstance(fill, (list, tuple)) else [fill]
    if len(values) == 1:
        values *= channels
    elif len(values) != channels:
        raise ValueError(
            f"the number of elements in 'fill' does not match the number of channels of the image "
            f"({len(values)} != {channels}): fill={fill!r}"
        )
    if mode == "F":
        out = np.array(values, np.float32)
    else:
        ints = np.array([int(v) for v in values], dtype=object)
        if mode in UINT8_MODES:
            ints = np.clip(ints, 0, 255)  # Image.new saturates 8-bit colours
        elif mode == "I;16":
            ints = ints % 65536  # and wraps 16-bit ones
        elif min(ints) < -(2**31) or max(ints) >= 2**31:
            raise ValueError(f"fill {fill!r} does not fit an int32 (I) image")
        out = ints.astype(arr.dtype)
    return out if arr.ndim == 3 else out[0]


def grayscale_channels(num_output_channels: Any) -> int:
    if num_output_channels not in (1, 3) or not is_int(num_output_channels):
        raise ValueError(f"Grayscale num_output_channels must be 1 or 3, got {num_output_channels!r}")
    return int(num_output_channels)


def dtype_name(value: Any) -> str:
    """A dtype given as a NumPy dtype, a name ('float32') or a torch dtype's string ('torch.float32')."""
    if isinstance(value, str):
        name = value.removeprefix("torch.")
    elif type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        name = str(value).removeprefix("torch.")
    else:
        try:
            name = np.dtype(value).name
        except TypeError:
            raise TypeError(
                f"dtype must be a NumPy dtype or a name such as 'float32', got {value!r}"
            ) from None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {value!r}")
    return name


def per_channel(name: str, values: Any, dtype: np.dtype) -> np.ndarray:
    """Normalize's ``mean`` or ``std`` (numbers, or a 1-D float array) as a 1-D array of ``dtype``, what
    torchvision's normalize makes of them."""
    if isinstance(values, np.ndarray):
        if values.ndim == 1 and values.size and values.dtype.kind == "f":
            return values.astype(dtype, copy=False)
    elif is_sequence(values) and values and all(is_number(v) for v in values):
        return np.asarray(values, dtype)
    raise TypeError(f"Normalize {name} must be a non-empty sequence of numbers, got {values!r}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def normalize_arguments(mean: Any, std: Any, inplace: Any) -> None:
    for name, v in (("mean", mean), ("std", std)):
        if not is_sequence(v) or not v or not all(is_number(x) for x in v):
            raise TypeError(f"Normalize {name} must be a non-empty sequence of numbers, got {v!r}")
    if len(mean) != len(std) and min(len(mean), len(std)) > 1:
        raise ValueError(f"Normalize mean and std lengths differ: mean={list(mean)}, std={list(std)}")
    if not isinstance(inplace, bool):
        raise TypeError(f"Normalize inplace must be a bool, got {inplace!r}")
    for name, v in (("mean", mean), ("std", std)):
        if not all(is_finite_number(x) and abs(x) <= _FLOAT32_MAX for x in v):
            raise ValueError(f"Normalize {name} must be finite float32 numbers, got {list(v)}")
    if any(np.float32(s) == 0 for s in std):
        raise ValueError(f"Normalize std evaluates to zero in float32: std={list(std)}")


def pil_image_mode(mode: Any) -> str | None:
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"ToPILImage mode must be a string or None, got {mode!r}")
    return mode
