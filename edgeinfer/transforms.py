"""torchvision's deterministic preprocessing transforms in NumPy, bit-exact with torchvision's PIL path.

Images are NumPy arrays whose dtype and shape imply the PIL mode (uint8 ``H×W`` = L, ``H×W×2`` = LA,
``H×W×3`` = RGB, ``H×W×4`` = RGBA; int32 ``H×W`` = I, float32 ``H×W`` = F, uint16 ``H×W`` = I;16); a PIL
image is accepted wherever an image is expected. Tensors are ``C×H×W`` arrays. Every class keeps
torchvision's name and constructor arguments, has a ``to_spec()`` (a JSON-able dict) and a ``__repr__``
like torchvision's; :func:`from_spec` and :func:`from_torchvision` build transforms from specs and from
torchvision objects (read by attribute, torch is never imported).

:class:`Compose` plans its pipeline once: Resize followed by CenterCrop resizes only the cropped window,
Grayscale(3) keeps one channel until it must become three, ToTensor followed by Normalize is one float32
pass over the output. The results equal running the transforms one by one, bit for bit.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeinfer import _convert, _resample
from edgeinfer._resample_reference import FILTER_NAMES, FILTERS, PASS_ORDERS

__all__ = [
    "CenterCrop",
    "Compose",
    "ConvertImageDtype",
    "Grayscale",
    "Normalize",
    "PILToTensor",
    "Pad",
    "Resize",
    "ToPILImage",
    "ToTensor",
    "Transform",
    "MAX_OUTPUT_PIXELS",
    "MAX_SPEC_DEPTH",
    "from_spec",
    "from_torchvision",
]

# torchvision's InterpolationMode values → Pillow filter codes (functional.pil_modes_mapping); the reverse
# is functional._interpolation_modes_from_int.
INTERPOLATIONS = {**FILTERS, "nearest-exact": FILTERS["nearest"]}
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")
DTYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "float64")
_UINT8_MODES = ("L", "LA", "RGB", "RGBA")

# The budget: no transform may produce an image of more pixels than this (8192×4096; 100 MB as RGB
# uint8, 400 MB as a float32 RGB tensor). Sizes that must exceed it (CenterCrop(100000), Pad(10**7),
# Resize((10**5, 10**5))) are refused when the transform is built; sizes that depend on the image
# (Resize without a crop after it, Pad) are checked before the output is allocated. Resize followed by
# CenterCrop only computes the crop, so only the crop counts.
MAX_OUTPUT_PIXELS = 2**25
MAX_SPEC_DEPTH = 16  # nested Compose levels in a spec


# --------------------------------------------------------------------------------------------------
# Argument checks


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_finite_number(x: Any) -> bool:
    return _is_int(x) or (_is_number(x) and bool(np.isfinite(float(x))))


def _positive_int(name: str, value: Any) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(value)


def _check_budget(who: str, height: int, width: int) -> None:
    if height * width > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"{who} would make a {height}×{width} image ({height * width} pixels), over edgeinfer's "
            f"budget of {MAX_OUTPUT_PIXELS} pixels per transform output"
        )


def _interpolation_name(value: Any) -> str:
    """A torchvision interpolation given as a string, an InterpolationMode or a Pillow int, as its name."""
    if type(value).__name__ == "InterpolationMode":  # torchvision's enum, recognised without importing it
        value = value.value
    if isinstance(value, str):
        name = value.lower()
        if name in INTERPOLATIONS:
            return name
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {value!r}")
    if _is_int(value) and int(value) in FILTER_NAMES:
        return FILTER_NAMES[int(value)]
    raise ValueError(
        f"interpolation must be a name such as 'bilinear', an InterpolationMode or a Pillow filter code "
        f"0-5, got {value!r}"
    )


def _dtype_name(value: Any) -> str:
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


def _as_tensor(x: Any, who: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{who} expects a tensor as a C×H×W NumPy array, got {type(x).__name__}"
            + (" (add ToTensor or PILToTensor before it)" if hasattr(x, "getbands") else "")
        )
    if x.size == 0:
        raise ValueError(f"{who} got an empty tensor of shape {x.shape}")
    return x


def _jsonable(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if _is_int(x):
        return int(x)
    if _is_number(x):
        return float(x)
    return x


# --------------------------------------------------------------------------------------------------
# Image operations on arrays (the functional layer the classes call)


def _resized_size(h: int, w: int, size: int | Sequence[int] | None, max_size: int | None) -> tuple[int, int]:
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


def _center_crop_anchor(h: int, w: int, ch: int, cw: int) -> tuple[int, int]:
    # Python's round() is half-to-even, as in torchvision's center_crop.
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))


def _center_crop(arr: np.ndarray, ch: int, cw: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if cw > w or ch > h:
        # torchvision pads with 0 on every channel (alpha too) and crops what is left.
        ltrb = (
            (cw - w) // 2 if cw > w else 0,
            (ch - h) // 2 if ch > h else 0,
            (cw - w + 1) // 2 if cw > w else 0,
            (ch - h + 1) // 2 if ch > h else 0,
        )
        arr = _pad_constant(arr, ltrb, 0)
        h, w = arr.shape[:2]
        if (h, w) == (ch, cw):
            return arr
    top, left = _center_crop_anchor(h, w, ch, cw)
    return arr[top : top + ch, left : left + cw]


def _fill_value(fill: Any, arr: np.ndarray) -> Any:
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
        if mode in _UINT8_MODES:
            ints = np.clip(ints, 0, 255)  # Image.new saturates 8-bit colours
        elif mode == "I;16":
            ints = ints % 65536  # and wraps 16-bit ones
        elif min(ints) < -(2**31) or max(ints) >= 2**31:
            raise ValueError(f"fill {fill!r} does not fit an int32 (I) image")
        out = ints.astype(arr.dtype)
    return out if arr.ndim == 3 else out[0]


def _pad_constant(arr: np.ndarray, ltrb: tuple[int, int, int, int], fill: Any) -> np.ndarray:
    """``ImageOps.expand``: the image pasted on a ``fill`` canvas at (left, top); negative borders crop."""
    left, top, right, bottom = ltrb
    h, w = arr.shape[:2]
    nh, nw = h + top + bottom, w + left + right
    if nh <= 0 or nw <= 0:
        raise ValueError(f"padding {list(ltrb)} leaves nothing of a {h}×{w} image")
    out = np.empty((nh, nw) + arr.shape[2:], arr.dtype)
    out[...] = fill
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(nh, top + h), min(nw, left + w)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = arr[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def _pad(arr: np.ndarray, ltrb: tuple[int, int, int, int], fill: Any, padding_mode: str) -> np.ndarray:
    h, w = arr.shape[:2]
    nh, nw = max(h + ltrb[1] + ltrb[3], 0), max(w + ltrb[0] + ltrb[2], 0)
    _check_budget(f"Pad {list(ltrb)} of a {h}×{w} image", nh, nw)
    if padding_mode == "constant":
        return _pad_constant(arr, ltrb, _fill_value(fill, arr))
    # torchvision crops negative padding away first, then calls np.pad.
    left, top, right, bottom = ltrb
    h, w = arr.shape[:2]
    arr = arr[max(-top, 0) : h - max(-bottom, 0), max(-left, 0) : w - max(-right, 0)]
    if arr.size == 0:
        raise ValueError(f"padding {list(ltrb)} leaves nothing of a {h}×{w} image")
    widths = [(max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, widths, mode=padding_mode)


def _replicate3(arr: np.ndarray) -> np.ndarray:
    """The RGB image whose three channels equal the L image ``arr`` (Grayscale(3)'s np.dstack)."""
    return np.repeat(arr[:, :, None], 3, axis=2)


def _to_tensor_unscaled(arr: np.ndarray) -> np.ndarray:
    """ToTensor on an I, F or I;16 image: the values are kept, not scaled."""
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.dtype == np.uint16:
        # ToTensor reads I;16 as int16: values >= 32768 wrap to negative.
        return np.ascontiguousarray(chw).view(np.int16)
    return np.ascontiguousarray(chw)


# --------------------------------------------------------------------------------------------------
# Transforms


class Transform:
    """Base class: ``__call__`` validates the input and runs ``_apply`` on an array."""

    # What the transform consumes and produces: "image" (H×W[×C] array) or "tensor" (C×H×W array).
    _takes = "image"
    _gives = "image"
    _spec_fields: dict[str, Any] = {}  # name → default (_REQUIRED if none)

    def __call__(self, img: Any) -> np.ndarray:
        if self._takes == "image":
            return self._apply(_convert.to_array(img))
        return self._apply(_as_tensor(img, type(self).__name__))

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description; :func:`from_spec` rebuilds the transform from it."""
        spec = {"type": type(self).__name__}
        spec.update({name: _jsonable(getattr(self, name)) for name in self._spec_fields})
        return spec


_REQUIRED = object()


class Resize(Transform):
    """Resize to ``size`` like ``torchvision.transforms.Resize`` on a PIL image (Pillow's resampling).

    Args:
        size: an int (the shorter side; the longer keeps the aspect ratio, truncated as torchvision
            does), ``[s]`` (the same), ``(h, w)``, or None with ``max_size`` (torchvision v2).
        interpolation: "nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos",
            torchvision's InterpolationMode, or Pillow's filter code.
        max_size: the longest the longer side may become (int size only).
        antialias: accepted for compatibility; Pillow always antialiases.
        pass_order: which Pillow's resampling pass order to reproduce: "pillow13" (Pillow >= 13 runs the
            vertical pass first for tall downscales) or "pillow12" (horizontal first, always).
    """

    _spec_fields = {
        "size": _REQUIRED,
        "interpolation": "bilinear",
        "max_size": None,
        "antialias": True,
        "pass_order": "pillow13",
    }

    def __init__(
        self,
        size: int | Sequence[int] | None,
        interpolation: Any = "bilinear",
        max_size: int | None = None,
        antialias: bool | None = True,
        pass_order: str = "pillow13",
    ) -> None:
        if size is None:
            if not _is_int(max_size):
                raise ValueError(f"Resize max_size must be an int when size is None, got {max_size!r}")
        elif _is_int(size):
            _positive_int("Resize size", size)
        elif isinstance(size, Sequence) and not isinstance(size, str):
            if len(size) not in (1, 2):
                raise ValueError(f"Resize size must be an int or a sequence of 1 or 2 ints, got {size!r}")
            for s in size:
                _positive_int(f"Resize size {list(size)}: each value", s)
            if max_size is not None and len(size) == 2:
                raise ValueError(f"Resize max_size applies only to an int size, got size={size!r}")
        else:
            raise TypeError(
                f"Resize size must be an int or a sequence of ints, got {size!r} ({type(size).__name__})"
            )
        if max_size is not None:
            _positive_int("Resize max_size", max_size)
            _check_budget(f"Resize max_size={max_size}", 1, max_size)
            requested = size if _is_int(size) else (size[0] if size is not None else None)
            if requested is not None and max_size <= requested:
                raise ValueError(f"Resize max_size ({max_size}) must be greater than size ({size!r})")
        if antialias not in (True, False, None):
            raise TypeError(f"Resize antialias must be True, False or None, got {antialias!r}")
        if pass_order not in PASS_ORDERS:
            raise ValueError(f"Resize pass_order must be one of {PASS_ORDERS}, got {pass_order!r}")
        if _is_int(size):
            size = int(size)
        elif size is not None:  # kept a list or tuple, as given (torchvision's repr shows it)
            size = (list if isinstance(size, list) else tuple)(int(s) for s in size)
        if size is not None:  # the output is at least size×size, or exactly (h, w)
            smallest = (size, size) if isinstance(size, int) else (size[0], size[-1])
            _check_budget(f"Resize(size={size})", *smallest)
        self.size = size
        self.interpolation = _interpolation_name(interpolation)
        self.max_size = max_size
        self.antialias = antialias
        self.pass_order = pass_order
        self._filter = INTERPOLATIONS[self.interpolation]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to."""
        return _resized_size(height, width, self.size, self.max_size)

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        size = self.output_size(h, w)
        if size == (h, w):
            return arr  # torchvision returns the image unchanged, unfiltered
        return self._resize(arr, h, w, size)

    def _resize(self, img: Any, h: int, w: int, size: tuple[int, int]) -> np.ndarray:
        """The whole resized image (an array, or a PIL image read directly), within the pixel budget."""
        _check_budget(f"Resize(size={self.size}) of a {h}×{w} image", *size)
        return _resample.resize(img, size, self._filter, pass_order=self.pass_order)

    def __repr__(self) -> str:
        extra = f", pass_order={self.pass_order}" if self.pass_order != "pillow13" else ""
        return (
            f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation}, "
            f"max_size={self.max_size}, antialias={self.antialias}{extra})"
        )


class CenterCrop(Transform):
    """Crop the centre ``size`` (int or (h, w)); a crop larger than the image pads it with zeros first."""

    _spec_fields = {"size": _REQUIRED}

    def __init__(self, size: int | Sequence[int]) -> None:
        if _is_int(size):
            size = (size, size)
        elif not isinstance(size, Sequence) or isinstance(size, str):
            raise TypeError(f"CenterCrop size must be an int or (h, w), got {size!r}")
        elif len(size) == 1:
            size = (size[0], size[0])
        elif len(size) != 2:
            raise ValueError(f"CenterCrop size must be an int or (h, w), got {size!r}")
        for s in size:
            _positive_int(f"CenterCrop size {list(size)}: each value", s)
        _check_budget(f"CenterCrop(size={list(size)})", int(size[0]), int(size[1]))
        self.size = size  # kept as given, like torchvision's _setup_size (its repr shows it)
        self._hw = (int(size[0]), int(size[1]))

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        return _center_crop(arr, *self._hw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class Pad(Transform):
    """Pad the borders: ``padding`` is an int, (left/right, top/bottom) or (left, top, right, bottom).

    Negative padding crops, as in torchvision. ``fill`` (number or per-channel tuple, int()-truncated
    except for F images) is used by the "constant" mode; "edge", "reflect" and "symmetric" follow np.pad.
    """

    _spec_fields = {"padding": _REQUIRED, "fill": 0, "padding_mode": "constant"}

    def __init__(
        self, padding: int | Sequence[int], fill: float | Sequence[float] = 0, padding_mode: str = "constant"
    ) -> None:
        if _is_int(padding):
            ltrb = (padding,) * 4
        elif isinstance(padding, Sequence) and not isinstance(padding, str):
            if len(padding) not in (1, 2, 4):
                raise ValueError(
                    f"Pad padding must be an int or a 1, 2 or 4 element sequence, got {padding!r}"
                )
            if not all(_is_int(p) for p in padding):
                raise TypeError(f"Pad padding must hold ints, got {padding!r}")
            if len(padding) == 1:
                ltrb = (padding[0],) * 4
            elif len(padding) == 2:
                ltrb = (padding[0], padding[1], padding[0], padding[1])
            else:
                ltrb = tuple(padding)
        else:
            raise TypeError(f"Pad padding must be an int or a sequence of ints, got {padding!r}")
        if isinstance(fill, Sequence) and not isinstance(fill, str):
            if not fill or not all(_is_number(f) for f in fill):
                raise TypeError(f"Pad fill must be a number or a non-empty sequence of numbers, got {fill!r}")
        elif not _is_number(fill):
            raise TypeError(f"Pad fill must be a number or a sequence of numbers, got {fill!r}")
        if not all(_is_finite_number(f) for f in (fill if isinstance(fill, Sequence) else [fill])):
            raise ValueError(f"Pad fill must be finite, got {fill!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Pad padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        left, top, right, bottom = (max(int(p), 0) for p in ltrb)  # what a 1×1 image would grow to
        _check_budget(f"Pad(padding={padding!r})", 1 + top + bottom, 1 + left + right)
        if min(int(p) for p in ltrb) < -MAX_OUTPUT_PIXELS:
            raise ValueError(f"Pad padding must be >= {-MAX_OUTPUT_PIXELS}, got {padding!r}")
        self.padding = padding
        self.fill = fill
        self.padding_mode = padding_mode
        self._ltrb = tuple(int(p) for p in ltrb)

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        return _pad(arr, self._ltrb, self.fill, self.padding_mode)

    def _uniform_fill(self) -> bool:
        """Whether every channel gets the same fill (so a replicated gray image can be padded as one)."""
        if self.padding_mode != "constant" or _is_number(self.fill):
            return True
        return len(self.fill) == 1 or (len(self.fill) == 3 and len({int(f) for f in self.fill}) == 1)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class Grayscale(Transform):
    """Pillow's ``convert("L")`` (L24 weights, alpha ignored); 3 output channels repeat it as RGB."""

    _spec_fields = {"num_output_channels": 1}

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3) or not _is_int(num_output_channels):
            raise ValueError(f"Grayscale num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = int(num_output_channels)

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        gray = _convert.grayscale(arr, _convert.image_mode(arr))
        return _replicate3(gray) if self.num_output_channels == 3 else gray

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_output_channels={self.num_output_channels})"


class ToTensor(Transform):
    """Image → C×H×W tensor: 8-bit images become float32 / 255; I → int32, F → float32, I;16 → int16."""

    _gives = "tensor"

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        return _TO_TENSOR(arr)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PILToTensor(Transform):
    """Image → C×H×W tensor of the same dtype (I;16 stays uint16)."""

    _gives = "tensor"

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _max_value(dtype: np.dtype) -> int:
    return int(np.iinfo(dtype).max)


class ConvertImageDtype(Transform):
    """Convert a tensor's dtype and rescale like ``torchvision.transforms.ConvertImageDtype``.

    uint8 → float divides by 255; float → uint8 multiplies by 255.999 and truncates.
    """

    _takes = "tensor"
    _gives = "tensor"
    _spec_fields = {"dtype": _REQUIRED}

    def __init__(self, dtype: Any) -> None:
        self.dtype = _dtype_name(dtype)
        self._dtype = np.dtype(self.dtype)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        src, dst = x.dtype, self._dtype
        if src == dst:
            return x
        if src.kind == "f":
            if dst.kind == "f":
                return x.astype(dst)
            if (src == np.float32 and dst in (np.int32, np.int64)) or (src == np.float64 and dst == np.int64):
                raise ValueError(f"the cast from {src} to {dst} cannot be performed safely")
            # torch multiplies by the Python float in the tensor's own precision, then truncates.
            return (x * src.type(float(_max_value(dst)) + 1.0 - 1e-3)).astype(dst)
        if src.kind not in "iu":
            raise TypeError(f"ConvertImageDtype expects an integer or float tensor, got dtype {src}")
        input_max = float(_max_value(src))
        if dst.kind == "f":
            return np.divide(x, dst.type(input_max), dtype=dst)
        output_max = float(_max_value(dst))
        if input_max > output_max:
            return np.floor_divide(x, int((input_max + 1) // (output_max + 1))).astype(dst)
        return x.astype(dst) * dst.type(int((output_max + 1) // (input_max + 1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype})"


class Normalize(Transform):
    """``(tensor - mean) / std`` per channel, in the tensor's float dtype (subtract, then true divide)."""

    _takes = "tensor"
    _gives = "tensor"
    _spec_fields = {"mean": _REQUIRED, "std": _REQUIRED, "inplace": False}

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        for name, v in (("mean", mean), ("std", std)):
            if (
                not isinstance(v, Sequence)
                or isinstance(v, str)
                or not v
                or not all(_is_number(x) for x in v)
            ):
                raise TypeError(f"Normalize {name} must be a non-empty sequence of numbers, got {v!r}")
        if len(mean) != len(std) and min(len(mean), len(std)) > 1:
            raise ValueError(f"Normalize mean and std lengths differ: mean={list(mean)}, std={list(std)}")
        if not isinstance(inplace, bool):
            raise TypeError(f"Normalize inplace must be a bool, got {inplace!r}")
        for name, v in (("mean", mean), ("std", std)):
            if not all(_is_finite_number(x) and abs(x) <= float(np.finfo(np.float32).max) for x in v):
                raise ValueError(f"Normalize {name} must be finite float32 numbers, got {list(v)}")
        if np.any(np.asarray(std, np.float32) == 0):
            raise ValueError(f"Normalize std evaluates to zero in float32: std={list(std)}")
        self.mean = list(mean)
        self.std = list(std)
        self.inplace = inplace
        self._channels = max(len(self.mean), len(self.std))

    def _check_channels(self, channels: int) -> None:
        if self._channels not in (1, channels):
            raise ValueError(
                f"Normalize has {self._channels} mean/std values (mean={self.mean}, std={self.std}) "
                f"but the tensor has {channels} channels"
            )

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize expects a float tensor, got dtype {x.dtype} (add ToTensor before it)")
        if x.ndim < 3:
            raise ValueError(f"Normalize expects a tensor of shape (..., C, H, W), got shape {x.shape}")
        self._check_channels(x.shape[-3])
        mean = np.asarray(self.mean, x.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, x.dtype).reshape(-1, 1, 1)
        if self.inplace and x.flags.writeable:
            np.subtract(x, mean, out=x)
            return np.divide(x, std, out=x)
        out = np.subtract(x, mean)
        return np.divide(out, std, out=out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class ToPILImage(Transform):
    """C×H×W (or H×W) tensor → image array, like ``torchvision.transforms.ToPILImage`` on a tensor.

    As the first step of a Compose it receives the decoded image, an H×W[×C] array, and reads it as
    torchvision's ToPILImage reads an ndarray (channels last): e.g. a pipeline declared for ImageFolder-style
    array loaders, ``[ToPILImage(), Resize(...), ...]``.

    Floats (unless ``mode="F"``) become ``(x * 255).astype(uint8)``: truncated, not clamped. The mode
    is inferred as torchvision does: 1 channel by dtype (uint8 L, int16 I;16, int32 I, float32 F only
    with mode="F"), 2 channels LA, 3 RGB, 4 RGBA. Modes edgeinfer has no array for (CMYK, RGBX, YCbCr,
    HSV) raise ValueError.
    """

    _takes = "tensor"
    _spec_fields = {"mode": None}

    def __init__(self, mode: str | None = None) -> None:
        if mode is not None and not isinstance(mode, str):
            raise TypeError(f"ToPILImage mode must be a string or None, got {mode!r}")
        self.mode = mode

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if x.ndim not in (2, 3):
            raise ValueError(f"ToPILImage expects a C×H×W or H×W tensor, got shape {x.shape}")
        return self._from_channels_last(x[:, :, None] if x.ndim == 2 else x.transpose(1, 2, 0), x)

    def _apply_image(self, x: np.ndarray) -> np.ndarray:
        """torchvision's ndarray input: H×W or H×W×C, channels last."""
        if x.ndim not in (2, 3):
            raise ValueError(f"ToPILImage expects an H×W×C or H×W image array, got shape {x.shape}")
        return self._from_channels_last(x[:, :, None] if x.ndim == 2 else x, x)

    def _from_channels_last(self, pic: np.ndarray, x: np.ndarray) -> np.ndarray:
        mode = self.mode
        channels = pic.shape[2]
        if channels > 4:
            raise ValueError(f"ToPILImage expects at most 4 channels, got shape {x.shape}")
        if pic.dtype.kind == "f" and mode != "F":
            pic = (pic * 255).astype(np.uint8)
        if channels == 1:
            pic = pic[:, :, 0]
            expected = {
                np.dtype(np.uint8): "L",
                np.dtype(np.int16): "I;16",
                np.dtype(np.int32): "I",
                np.dtype(np.float32): "F",
            }.get(pic.dtype)
            if mode is not None and mode != expected:
                raise ValueError(
                    f"ToPILImage mode {mode!r} does not fit a {pic.dtype} tensor (expected {expected})"
                )
            if expected is None:
                raise TypeError(f"ToPILImage does not support tensors of dtype {x.dtype}")
            if expected == "I;16":
                pic = pic.view(np.uint16)  # Image.frombuffer reinterprets the int16 bytes as I;16
            return np.ascontiguousarray(pic)
        wanted = {2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        allowed = {2: ("LA",), 3: ("RGB", "YCbCr", "HSV"), 4: ("RGBA", "CMYK", "RGBX")}[channels]
        if mode is not None and mode not in allowed:
            raise ValueError(f"ToPILImage: only modes {list(allowed)} fit {channels} channels, got {mode!r}")
        if mode not in (None, wanted):
            raise ValueError(f"ToPILImage mode {mode!r} is not supported by edgeinfer (use {wanted!r})")
        if pic.dtype != np.uint8:
            raise TypeError(f"ToPILImage does not support {channels}-channel tensors of dtype {x.dtype}")
        return np.ascontiguousarray(pic)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'' if self.mode is None else f'mode={self.mode}'})"


class Compose(Transform):
    """Run transforms in order. The pipeline is planned once, at construction (see the module docs)."""

    _spec_fields = {"transforms": _REQUIRED}

    def __init__(self, transforms: Sequence[Transform]) -> None:
        if not isinstance(transforms, Sequence) or isinstance(transforms, str):
            raise TypeError(f"Compose expects a sequence of transforms, got {type(transforms).__name__}")
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(
                    f"Compose transforms[{i}] is {type(t).__name__}, not an edgeinfer transform "
                    "(use edgeinfer.transforms.from_torchvision to convert torchvision objects)"
                )
        self.transforms = list(transforms)
        flat = _flatten(self.transforms)
        _check_kinds(flat)
        self._takes = flat[0]._takes if flat else "any"
        self._gives = flat[-1]._gives if flat else "any"
        self._steps = _plan(flat)

    def __call__(self, img: Any) -> np.ndarray:
        if not self._steps:
            return img
        if getattr(self._steps[0], "reads_pil", False) and _convert.is_pil(img):
            _convert.pil_mode(img)  # validated, not converted: the first step reads what it needs
            return self._apply(img)
        return super().__call__(img)

    def _apply(self, x: Any) -> np.ndarray:
        for step in self._steps:
            x = step(x)
        return x

    def to_spec(self) -> dict[str, Any]:
        return {"type": "Compose", "transforms": [t.to_spec() for t in self.transforms]}

    def __repr__(self) -> str:
        return "Compose(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


# --------------------------------------------------------------------------------------------------
# Planning a Compose


def _flatten(transforms: Sequence[Transform]) -> list[Transform]:
    flat: list[Transform] = []
    for t in transforms:
        flat.extend(_flatten(t.transforms) if isinstance(t, Compose) else [t])
    return flat


def _check_kinds(flat: Sequence[Transform]) -> None:
    kind = None
    for i, t in enumerate(flat):
        if kind == "tensor" and t._takes == "image":
            raise ValueError(
                f"Compose: {type(t).__name__} (step {i}) comes after the image became a tensor; torchvision "
                "would run it on the tensor (its tensor path, not Pillow's), which edgeinfer does not "
                "reproduce — move it before ToTensor/PILToTensor"
            )
        if kind == "image" and t._takes == "tensor":
            raise ValueError(f"Compose: {type(t).__name__} (step {i}) needs a tensor; add ToTensor before it")
        kind = t._gives


def _plan(flat: Sequence[Transform]) -> list[Callable[[np.ndarray], np.ndarray]]:
    """Steps equivalent to running ``flat`` one by one, with the fusions described in the module docs.

    While ``gray3`` is set the image is an RGB image whose channels are equal, held as its one L
    channel: Resize, CenterCrop and Pad compute the same numbers on every channel of such an image.
    """
    steps: list[Callable[[np.ndarray], np.ndarray]] = []
    gray3 = False
    i = 0
    while i < len(flat):
        t = flat[i]
        nxt = flat[i + 1] if i + 1 < len(flat) else None
        if gray3 and not isinstance(t, (Resize, CenterCrop, Pad, Grayscale, ToTensor)):
            steps.append(_replicate3)
            gray3 = False
        if isinstance(t, Grayscale):
            if not gray3:
                steps.append(_gray_step)
            gray3 = t.num_output_channels == 3
        elif isinstance(t, Resize):
            crop = nxt if isinstance(nxt, CenterCrop) else None
            steps.append(_ResizeCrop(t, crop))
            i += 1 if crop else 0
        elif isinstance(t, Pad) and gray3:
            if t._uniform_fill():
                fill = t.fill if _is_number(t.fill) else t.fill[0]
                steps.append(lambda a, t=t, fill=fill: _pad(a, t._ltrb, fill, t.padding_mode))
            else:
                steps.extend([_replicate3, t._apply])
                gray3 = False
        elif isinstance(t, ToPILImage) and i == 0:  # fed the decoded image array, not a tensor
            steps.append(t._apply_image)
        elif isinstance(t, ToTensor):
            norm = nxt if isinstance(nxt, Normalize) else None
            steps.append(_ToTensorNormalize(norm, 3 if gray3 else None))
            gray3 = False
            if norm:
                i += 1
        else:
            steps.append(t._apply)
        i += 1
    if gray3:
        steps.append(_replicate3)
    return steps


def _gray_step(arr: np.ndarray) -> np.ndarray:
    return _convert.grayscale(arr, _convert.image_mode(arr))


class _ResizeCrop:
    """Resize, then CenterCrop if given, resizing only the cropped window when the crop fits inside.

    As the first step of a Compose it takes a PIL image as it is: only the pixels the resize reads are
    converted to an array.
    """

    reads_pil = True

    def __init__(self, resize: Resize, crop: CenterCrop | None) -> None:
        self.resize, self.crop = resize, crop

    def __call__(self, img: Any) -> np.ndarray:
        h, w = (img.height, img.width) if _convert.is_pil(img) else img.shape[:2]
        size = self.resize.output_size(h, w)
        if size == (h, w):
            arr = _convert.to_array(img)  # torchvision returns the image unchanged, unfiltered
            return arr if self.crop is None else _center_crop(arr, *self.crop._hw)
        if self.crop is None:
            return self.resize._resize(img, h, w, size)
        ch, cw = self.crop._hw
        if ch > size[0] or cw > size[1]:
            return _center_crop(self.resize._apply(_convert.to_array(img)), ch, cw)
        top, left = _center_crop_anchor(size[0], size[1], ch, cw)
        return _resample.resize(
            img, size, self.resize._filter, pass_order=self.resize.pass_order, region=(top, left, ch, cw)
        )


class _ToTensorNormalize:
    """ToTensor, and the Normalize after it if any, on an image, optionally a replicated gray one.

    The float32 operations are torchvision's (divide by 255, subtract the mean, divide by the std), done
    in place in the output array, so the values are bit-identical to running the two transforms.
    """

    def __init__(self, normalize: Normalize | None, replicate: int | None) -> None:
        self.normalize, self.replicate = normalize, replicate
        if normalize:
            self.mean, self.std = (
                np.asarray(v, np.float32).reshape(-1, 1, 1) for v in (normalize.mean, normalize.std)
            )

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        mode = _convert.image_mode(arr)
        if mode not in _UINT8_MODES:
            tensor = _to_tensor_unscaled(arr)
            return self.normalize._apply(tensor) if self.normalize else tensor
        channels = self.replicate or (1 if arr.ndim == 2 else arr.shape[2])
        out = np.empty((channels,) + arr.shape[:2], np.float32)
        if self.replicate:
            # One gray plane, scaled once; every channel starts from the same values.
            scaled = np.divide(arr, np.float32(255), dtype=np.float32)
            if not self.normalize:
                out[...] = scaled
                return out
        else:
            # torchvision's ToTensor: float32(x).div(255), an IEEE float32 division.
            scaled = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            np.divide(scaled, np.float32(255), out=out, dtype=np.float32)
            if not self.normalize:
                return out
            scaled = out
        self.normalize._check_channels(channels)
        np.subtract(scaled, self.mean, out=out)
        return np.divide(out, self.std, out=out)


_TO_TENSOR = _ToTensorNormalize(None, None)


# --------------------------------------------------------------------------------------------------
# Specs and torchvision objects

_CLASSES: dict[str, type[Transform]] = {
    cls.__name__: cls
    for cls in (
        Compose,
        Resize,
        CenterCrop,
        Pad,
        Grayscale,
        ToTensor,
        PILToTensor,
        ConvertImageDtype,
        Normalize,
        ToPILImage,
    )
}


def from_spec(spec: Mapping[str, Any]) -> Transform:
    """Rebuild a transform from its ``to_spec()`` dict (as stored in a model's metadata).

    Raises:
        TypeError / ValueError: naming the bad key, its value, and where in the spec it is.
    """
    return _from_spec(spec, "spec", 0)


def _from_spec(spec: Any, where: str, depth: int) -> Transform:
    if depth > MAX_SPEC_DEPTH:
        raise ValueError(f"{where}: Compose nested more than {MAX_SPEC_DEPTH} levels deep")
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where} must be a dict with a 'type' key, got {type(spec).__name__}: {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _CLASSES:
        raise ValueError(f"{where}['type'] must be one of {sorted(_CLASSES)}, got {kind!r}")
    cls = _CLASSES[kind]
    unknown = sorted(set(spec) - set(cls._spec_fields) - {"type"})
    if unknown:
        raise ValueError(
            f"{where} ({kind}) has unknown key(s) {unknown}; allowed: {sorted(cls._spec_fields)}"
        )
    missing = [k for k, default in cls._spec_fields.items() if default is _REQUIRED and k not in spec]
    if missing:
        raise ValueError(f"{where} ({kind}) lacks required key(s) {missing}")
    kwargs = {k: spec[k] for k in cls._spec_fields if k in spec}
    if cls is Compose:
        items = kwargs["transforms"]
        if not isinstance(items, list):
            raise TypeError(f"{where}['transforms'] must be a list, got {type(items).__name__}")
        kwargs["transforms"] = [
            _from_spec(s, f"{where}['transforms'][{i}]", depth + 1) for i, s in enumerate(items)
        ]
        return Compose(**kwargs)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where} ({kind}): {e}") from None


_SUPPORTED = ", ".join(sorted(_CLASSES))


def from_torchvision(obj: Any) -> Transform:
    """The edgeinfer equivalent of a torchvision v1 or v2 transform or Compose, read from its attributes.

    Resize records the installed Pillow's pass order ("pillow13" for Pillow >= 13, else "pillow12"),
    since that is what the torchvision pipeline computes on this machine.

    Raises:
        ValueError: for a transform edgeinfer does not support (named in the message).
        TypeError: for an object that is not a torchvision transform.
    """
    cls = type(obj)
    name = cls.__name__
    if not cls.__module__.startswith("torchvision.transforms"):
        raise TypeError(f"expected a torchvision transform, got {name} from module {cls.__module__!r}")
    if name == "Compose":
        return Compose([from_torchvision(t) for t in obj.transforms])
    if name == "Resize":
        return Resize(
            obj.size, obj.interpolation, obj.max_size, obj.antialias, pass_order=_installed_pass_order()
        )
    if name == "CenterCrop":
        return CenterCrop(obj.size)
    if name == "Pad":
        if isinstance(obj.fill, Mapping):
            raise ValueError(
                f"Pad with a per-type fill dict ({obj.fill!r}) is not supported; use one fill value"
            )
        return Pad(obj.padding, obj.fill, obj.padding_mode)
    if name == "Grayscale":
        return Grayscale(obj.num_output_channels)
    if name == "ToTensor":
        return ToTensor()
    if name in ("PILToTensor", "ToImage"):
        # v2's ToImage on a PIL image is pil_to_tensor: the same values.
        return PILToTensor()
    if name == "ConvertImageDtype":
        if cls.__module__.startswith("torchvision.transforms.v2") and obj.dtype.is_floating_point:
            # v2's to_dtype scales integers by x * (1 / max), v1 by x / max: 1 ulp apart for about half
            # of the uint8 values.
            raise ValueError(
                f"torchvision.transforms.v2.ConvertImageDtype({obj.dtype}) is not supported: v2 multiplies "
                "by 1/max where v1 divides by max, the floats differ; use v1's ConvertImageDtype or ToTensor"
            )
        return ConvertImageDtype(str(obj.dtype))
    if name == "Normalize":
        return Normalize(list(obj.mean), list(obj.std), obj.inplace)
    if name == "ToPILImage":
        return ToPILImage(obj.mode)
    raise ValueError(
        f"{name} is not supported (edgeinfer supports only deterministic transforms: {_SUPPORTED})"
    )


def _installed_pass_order() -> str:
    import PIL

    return "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"
