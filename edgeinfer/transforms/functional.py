"""torchvision.transforms.functional's deterministic operations in NumPy, bit-exact with its PIL path.

Images are PIL images or NumPy arrays whose dtype and shape imply the PIL mode (uint8 ``H×W`` = L,
``H×W×2`` = LA, ``H×W×3`` = RGB, ``H×W×4`` = RGBA; int32 ``H×W`` = I, float32 ``H×W`` = F, uint16
``H×W`` = I;16); images come back as arrays. Tensors are ``C×H×W`` arrays. Every function checks its
arguments first (TypeError for the wrong kind, ValueError for a bad value, naming the value), then
computes; names and arguments are torchvision's.

This is where the math is. Pillow's resampling (the only arithmetic that is not a few NumPy lines) lives
in the package ``edgeinfer._resample``, called from :func:`resize` only, which checks the arguments it
passes on (``_resample`` trusts them); ``tests/resample_reference.py`` is the plain port of Pillow's
``Resample.c`` it is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeinfer import _convert, _resample
from edgeinfer._resample import aten
from edgeinfer.transforms import _checks

__all__ = [
    "center_crop",
    "center_crop_box",
    "center_crop_or_pad",
    "convert_image_dtype",
    "get_dimensions",
    "normalize",
    "pad",
    "pil_to_tensor",
    "keep_ratio_size",
    "resize",
    "resize_keep_ratio",
    "rgb_to_grayscale",
    "to_dtype",
    "to_pil_image",
    "to_tensor",
]


def get_dimensions(img: Any) -> list[int]:
    """``[channels, height, width]`` of an image, as torchvision's ``get_dimensions``; a PIL image is
    checked but not converted.

    Raises:
        TypeError / ValueError: not an image edgeinfer supports (the message says what to convert).
    """
    if _convert.is_pil(img):
        _convert.pil_mode(img)
        return [len(img.getbands()), img.height, img.width]
    _convert.image_mode(img)
    return [1 if img.ndim == 2 else img.shape[2], img.shape[0], img.shape[1]]


def resize(
    img: Any,
    size: int | Sequence[int] | None,
    interpolation: Any = "bilinear",
    max_size: int | None = None,
    antialias: bool | None = True,
    *,
    pass_order: str = "pillow13",
    region: tuple[int, int, int, int] | None = None,
    backend: str = "pil",
) -> np.ndarray:
    """Resize like ``torchvision.transforms.functional.resize`` on a PIL image (Pillow's resampling), or
    with ``backend="tensor"`` on a tensor (torch's kernels, ``edgeinfer._resample.aten``).

    Args:
        size: an int (the shorter side; the longer keeps the aspect ratio, truncated as torchvision
            does), ``[s]`` (the same), ``(h, w)``, or None with ``max_size`` (torchvision v2).
        interpolation: "nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos",
            torchvision's InterpolationMode, or Pillow's filter code.
        max_size: the longest the longer side may become (int size only).
        antialias: accepted for compatibility; Pillow always antialiases. The tensor backend reproduces
            only torch's antialiased bilinear / bicubic (True).
        pass_order: which Pillow's resampling pass order to reproduce: "pillow13" (Pillow >= 13 runs the
            vertical pass first for tall downscales) or "pillow12" (horizontal first, always).
        region: ``(top, left, height, width)``: compute only this window of the resized image, equal to
            resizing and then slicing, at a cost that follows the window (resize, then crop). Of a PIL
            image only the pixels the window needs are read.

    Returns:
        The resized image. When the size does not change, the image itself (as an array), unfiltered, as
        torchvision returns it (or the window of it).

    Raises:
        ValueError: the output (or the window) would be over the pixel budget, or is empty.
    """
    size = _checks.resize_size(size, max_size, antialias, pass_order)
    name = _checks.interpolation_name(interpolation)
    if _checks.backend(backend, name, antialias) == "tensor":
        return _resize_tensor(img, size, name, max_size, region)
    filter = _checks.INTERPOLATIONS[name]
    _, h, w = get_dimensions(img)
    out = _checks.resized_size(h, w, size, max_size)
    if region is not None:
        region = _checks.region(region, *out)
    if out == (h, w):
        arr = _convert.to_array(img)
        if region is None:
            return arr
        top, left, height, width = region
        return arr[top : top + height, left : left + width]
    _checks.check_budget(f"Resize(size={size}) of a {h}×{w} image", *(out if region is None else region[2:]))
    return _resample.resize(img, out, filter, pass_order=pass_order, region=region)


def keep_ratio_size(
    image_size: Sequence[int], size: int | Sequence[int], longest: float = 0.0
) -> tuple[int, int]:
    """The (height, width) that timm's ``ResizeKeepRatio`` resizes an image of ``image_size`` = (h, w) to:
    both sides divided by one ratio, ``longest`` of the way from the shorter side's ratio to its target to
    the longer side's (its ``get_params`` without the random scale and aspect), rounded half to even.

    Raises:
        ValueError: the image is so elongated that a side rounds to 0.
    """
    (target_h, target_w), longest = _checks.keep_ratio_arguments(size, longest)
    h, w = image_size
    ratio_h, ratio_w = h / target_h, w / target_w
    # timm's float operations, in its order.
    ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
    out = round(h * 1.0 / ratio), round(w * 1.0 / ratio)
    if min(out) <= 0:
        raise ValueError(
            f"ResizeKeepRatio(size={[target_h, target_w]}, longest={longest}) gives an empty "
            f"{out[0]}×{out[1]} image from {h}×{w}"
        )
    return out


def resize_keep_ratio(
    img: Any,
    size: int | Sequence[int],
    longest: float = 0.0,
    interpolation: Any = "bilinear",
    *,
    pass_order: str = "pillow13",
) -> np.ndarray:
    """Resize like timm's ``ResizeKeepRatio`` (without its random scale and aspect) on a PIL image: to
    :func:`keep_ratio_size`, with Pillow's resampling as :func:`resize`.

    Raises:
        ValueError: a side rounds to 0, or the output would be over the pixel budget.
    """
    _, h, w = get_dimensions(img)
    return resize(img, keep_ratio_size((h, w), size, longest), interpolation, pass_order=pass_order)


def _resize_tensor(
    img: Any, size: Any, interpolation: str, max_size: int | None, region: tuple[int, int, int, int] | None
) -> np.ndarray:
    """The tensor backend of :func:`resize`; a ``region`` is sliced from the whole resized tensor."""
    x = _checks.image_tensor(img, "Resize")
    h, w = x.shape[-2:]
    out = _checks.resized_size(h, w, size, max_size)
    if region is not None:
        region = _checks.region(region, *out)
    if out != (h, w):  # torchvision returns a same-size tensor as it is
        _checks.check_budget(f"Resize(size={size}) of a {h}×{w} tensor", *out)
        x = aten.resize(x, *out, interpolation)
    if region is None:
        return x
    top, left, height, width = region
    return x[..., top : top + height, left : left + width]


def center_crop_box(image_size: Sequence[int], output_size: int | Sequence[int]) -> tuple[int, int, int, int]:
    """The ``(top, left, height, width)`` window of an image of ``image_size`` = (h, w) that
    :func:`center_crop` keeps. Where the crop is larger than the image the window reaches past it (``top``
    or ``left`` <= 0), and :func:`center_crop` pads it with zeros.

    Resize followed by CenterCrop passes this window to :func:`resize` as its ``region``.
    """
    ch, cw = _checks.crop_size(output_size)
    ch, cw = int(ch), int(cw)
    h, w = image_size
    # torchvision pads (crop - size) // 2 on the top/left of a too small side, then crops at 0; otherwise
    # the anchor is Python's round() of the half difference (half-to-even).
    top = -((ch - h) // 2) if ch > h else int(round((h - ch) / 2.0))
    left = -((cw - w) // 2) if cw > w else int(round((w - cw) / 2.0))
    return top, left, ch, cw


def center_crop(img: Any, output_size: int | Sequence[int], *, backend: str = "pil") -> np.ndarray:
    """Crop the centre ``output_size`` (int or (h, w)); a crop larger than the image pads it with zeros
    (every channel, alpha too), as torchvision's ``center_crop``.

    ``backend="tensor"``: ``img`` is a ...×H×W tensor (same window, same zero padding, as torchvision
    computes it on a tensor); otherwise an image (PIL image or H×W[×C] array).
    """
    if backend == "tensor":
        x = _checks.tensor(img, "CenterCrop")
        if x.ndim < 2:
            raise ValueError(f"CenterCrop expects a tensor of shape (..., H, W), got shape {x.shape}")
        # Crop the tensor as an H×W×(...) array and turn it back.
        cropped = _center_crop_array(np.moveaxis(x, (-2, -1), (0, 1)), output_size)
        return np.moveaxis(cropped, (0, 1), (-2, -1))
    if backend != "pil":
        raise ValueError(f"CenterCrop backend must be one of {_checks.BACKENDS}, got {backend!r}")
    return _center_crop_array(_convert.to_array(img), output_size)


def _center_crop_array(arr: np.ndarray, output_size: int | Sequence[int]) -> np.ndarray:
    """:func:`center_crop` of the first two axes of ``arr``."""
    h, w = arr.shape[:2]
    top, left, ch, cw = center_crop_box((h, w), output_size)
    if top >= 0 and left >= 0 and top + ch <= h and left + cw <= w:
        return arr[top : top + ch, left : left + cw]
    return _pad_constant(arr, (-left, -top, left + cw - w, top + ch - h), 0)


def center_crop_or_pad(
    img: Any,
    output_size: int | Sequence[int],
    fill: float | Sequence[float] = 0,
    padding_mode: str = "constant",
) -> np.ndarray:
    """timm's ``center_crop_or_pad``: a side shorter than the crop is padded by :func:`pad` with ``fill``
    and ``padding_mode`` ((crop - side) // 2 before, the rest after), then the centre is cropped as
    :func:`center_crop` crops it. :func:`center_crop` is this with zeros.

    Raises:
        ValueError: the padded image would be over the pixel budget.
    """
    ch, cw = _checks.crop_size(output_size, "CenterCropOrPad")
    _checks.padding_ltrb(0, fill, padding_mode)
    arr = _convert.to_array(img)
    h, w = arr.shape[:2]
    if ch > h or cw > w:
        dh, dw = max(ch - h, 0), max(cw - w, 0)
        arr = pad(arr, (dw // 2, dh // 2, (dw + 1) // 2, (dh + 1) // 2), fill, padding_mode)
    return center_crop(arr, (ch, cw))


def pad(
    img: Any, padding: int | Sequence[int], fill: float | Sequence[float] = 0, padding_mode: str = "constant"
) -> np.ndarray:
    """Pad the borders like torchvision's ``pad`` on a PIL image.

    ``padding`` is an int, (left/right, top/bottom) or (left, top, right, bottom); negative padding crops.
    ``fill`` (a number or one per channel, int()-truncated except for F images) is used by the
    "constant" mode; "edge", "reflect" and "symmetric" follow np.pad.

    Raises:
        ValueError: the padded image would be over the pixel budget, or nothing is left of it.
    """
    ltrb = _checks.padding_ltrb(padding, fill, padding_mode)
    arr = _convert.to_array(img)
    h, w = arr.shape[:2]
    nh, nw = max(h + ltrb[1] + ltrb[3], 0), max(w + ltrb[0] + ltrb[2], 0)
    _checks.check_budget(f"Pad {list(ltrb)} of a {h}×{w} image", nh, nw)
    if padding_mode == "constant":
        return _pad_constant(arr, ltrb, _checks.fill_value(fill, arr))
    # torchvision crops negative padding away first, then calls np.pad.
    left, top, right, bottom = ltrb
    arr = arr[max(-top, 0) : h - max(-bottom, 0), max(-left, 0) : w - max(-right, 0)]
    if arr.size == 0:
        raise ValueError(f"padding {list(ltrb)} leaves nothing of a {h}×{w} image")
    widths = [(max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, widths, mode=padding_mode)


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


def rgb_to_grayscale(img: Any, num_output_channels: int = 1) -> np.ndarray:
    """Pillow's ``convert("L")`` of any supported mode (L24 weights, alpha dropped), as torchvision's
    ``rgb_to_grayscale`` on a PIL image; 3 output channels repeat it as an RGB image."""
    channels = _checks.grayscale_channels(num_output_channels)
    arr = _convert.to_array(img)
    gray = _convert.grayscale(arr, _convert.image_mode(arr))
    return np.repeat(gray[:, :, None], 3, axis=2) if channels == 3 else gray


def to_tensor(pic: Any) -> np.ndarray:
    """Image → C×H×W tensor, as torchvision's ``to_tensor``: 8-bit images become a new float32 array of
    ``x / 255`` (an IEEE float32 division); I → int32, F → float32 and I;16 → int16 keep their values."""
    arr = _convert.to_array(pic)
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.dtype != np.uint8:  # I, F or I;16 (to_array checked the array)
        if arr.dtype == np.uint16:
            # to_tensor reads I;16 as int16: values >= 32768 wrap to negative.
            return np.ascontiguousarray(chw).view(np.int16)
        return np.ascontiguousarray(chw)
    out = np.empty(chw.shape, np.float32)
    return np.divide(chw, np.float32(255), out=out, dtype=np.float32)


def pil_to_tensor(pic: Any) -> np.ndarray:
    """Image → C×H×W tensor of the same dtype (I;16 stays uint16), as torchvision's ``pil_to_tensor``."""
    arr = _convert.to_array(pic)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))


def convert_image_dtype(image: np.ndarray, dtype: Any = "float32") -> np.ndarray:
    """Convert a tensor's dtype and rescale, as torchvision's ``convert_image_dtype``.

    ``dtype`` is a NumPy dtype, a name or a torch dtype's name. Integer → float divides by the integer
    maximum; float → integer multiplies by (maximum + 1 - 0.001) and truncates.

    Raises:
        ValueError: float32 → int32/int64 and float64 → int64, which torch refuses as unsafe.
    """
    dst = np.dtype(_checks.dtype_name(dtype))
    x = _checks.tensor(image, "ConvertImageDtype")
    src = x.dtype
    if src == dst:
        return x
    if src.kind == "f":
        if dst.kind == "f":
            return x.astype(dst)
        if (src == np.float32 and dst in (np.int32, np.int64)) or (src == np.float64 and dst == np.int64):
            raise ValueError(f"the cast from {src} to {dst} cannot be performed safely")
        # torch multiplies by the Python float in the tensor's own precision, then truncates.
        return (x * src.type(float(np.iinfo(dst).max) + 1.0 - 1e-3)).astype(dst)
    if src.kind not in "iu":
        raise TypeError(f"ConvertImageDtype expects an integer or float tensor, got dtype {src}")
    input_max = float(np.iinfo(src).max)
    if dst.kind == "f":
        return np.divide(x, dst.type(input_max), dtype=dst)
    output_max = float(np.iinfo(dst).max)
    if input_max > output_max:
        return np.floor_divide(x, int((input_max + 1) // (output_max + 1))).astype(dst)
    return x.astype(dst) * dst.type(int((output_max + 1) // (input_max + 1)))


def to_dtype(image: np.ndarray, dtype: Any = "float32", scale: bool = False) -> np.ndarray:
    """Convert a tensor's dtype as torchvision v2's ``to_dtype``: without ``scale`` a plain cast; with it,
    integer → float multiplies by ``1 / max`` in the float type (v2's ``x.to(dtype).mul_(1 / max)``, which
    differs from v1's ``x / max`` on 126 of the 256 uint8 values); the other conversions are
    :func:`convert_image_dtype`'s.
    """
    dst = np.dtype(_checks.dtype_name(dtype))
    x = _checks.tensor(image, "ToDtype")
    if not isinstance(scale, bool):
        raise TypeError(f"ToDtype scale must be a bool, got {scale!r}")
    if x.dtype == dst:
        return x
    if not scale:
        return x.astype(dst)
    if x.dtype.kind in "iu" and dst.kind == "f":
        out = x.astype(dst)
        return np.multiply(out, dst.type(1.0 / float(np.iinfo(x.dtype).max)), out=out)
    return convert_image_dtype(x, dst)


def normalize(
    tensor: np.ndarray,
    mean: Sequence[float] | np.ndarray,
    std: Sequence[float] | np.ndarray,
    inplace: bool = False,
) -> np.ndarray:
    """``(tensor - mean) / std`` per channel in the tensor's float dtype (subtract, then true divide), as
    torchvision's ``normalize``; ``inplace`` writes into ``tensor`` when it is writable.

    As in torchvision, mean and std (sequences of numbers, or 1-D float arrays) are converted to the
    tensor's dtype, and a std that becomes zero there is refused (the
    :class:`~edgeinfer.transforms.Normalize` class also refuses non-finite values).

    Raises:
        TypeError: not a float tensor, or mean/std not sequences of numbers. ValueError: fewer than 3
            dimensions, a zero std, or mean/std values that are neither one nor one per channel.
    """
    x = _checks.tensor(tensor, "Normalize")
    if x.dtype.kind != "f":
        raise TypeError(f"Normalize expects a float tensor, got dtype {x.dtype} (add ToTensor before it)")
    if x.ndim < 3:
        raise ValueError(f"Normalize expects a tensor of shape (..., C, H, W), got shape {x.shape}")
    mean_, std_ = _checks.per_channel("mean", mean, x.dtype), _checks.per_channel("std", std, x.dtype)
    values = max(len(mean_), len(std_))
    if values not in (1, x.shape[-3]) or len(mean_) not in (1, values) or len(std_) not in (1, values):
        raise ValueError(
            f"Normalize has {values} mean/std values (mean={list(mean)}, std={list(std)}) "
            f"but the tensor has {x.shape[-3]} channels"
        )
    if not std_.all():
        raise ValueError(f"Normalize std evaluates to zero in {x.dtype}: std={list(std)}")
    if not isinstance(inplace, bool):
        raise TypeError(f"Normalize inplace must be a bool, got {inplace!r}")
    mean_, std_ = mean_.reshape(-1, 1, 1), std_.reshape(-1, 1, 1)
    if inplace and x.flags.writeable:
        np.subtract(x, mean_, out=x)
        return np.divide(x, std_, out=x)
    out = np.subtract(x, mean_)
    return np.divide(out, std_, out=out)


_ONE_CHANNEL_MODES = {
    np.dtype(np.uint8): "L",
    np.dtype(np.int16): "I;16",
    np.dtype(np.int32): "I",
    np.dtype(np.float32): "F",
}


def to_pil_image(pic: np.ndarray, mode: str | None = None, *, channels_last: bool = False) -> np.ndarray:
    """C×H×W (or H×W) tensor → image array, as torchvision's ``to_pil_image`` on a tensor.

    ``channels_last=True`` reads ``pic`` as torchvision reads an ndarray (H×W×C or H×W): a decoded image
    given to a pipeline that starts with ToPILImage.

    Floats (unless ``mode="F"``) become ``(x * 255).astype(uint8)``: truncated, not clamped. The mode is
    inferred as torchvision does: 1 channel by dtype (uint8 L, int16 I;16, int32 I, float32 F only with
    mode="F"), 2 channels LA, 3 RGB, 4 RGBA.

    Raises:
        ValueError: a mode that does not fit the channels, or that edgeinfer has no array for (CMYK,
            RGBX, YCbCr, HSV). TypeError: a dtype torchvision refuses.
    """
    mode = _checks.pil_image_mode(mode)
    x = _checks.tensor(pic, "ToPILImage")
    if x.ndim not in (2, 3):
        layout = "an H×W×C or H×W image array" if channels_last else "a C×H×W or H×W tensor"
        raise ValueError(f"ToPILImage expects {layout}, got shape {x.shape}")
    img = x[:, :, None] if x.ndim == 2 else (x if channels_last else x.transpose(1, 2, 0))
    channels = img.shape[2]
    if channels > 4:
        raise ValueError(f"ToPILImage expects at most 4 channels, got shape {x.shape}")
    if img.dtype.kind == "f" and mode != "F":
        img = (img * 255).astype(np.uint8)
    if channels == 1:
        img = img[:, :, 0]
        expected = _ONE_CHANNEL_MODES.get(img.dtype)
        if mode is not None and mode != expected:
            raise ValueError(
                f"ToPILImage mode {mode!r} does not fit a {img.dtype} tensor (expected {expected})"
            )
        if expected is None:
            raise TypeError(f"ToPILImage does not support tensors of dtype {x.dtype}")
        if expected == "I;16":
            img = img.view(np.uint16)  # Image.frombuffer reinterprets the int16 bytes as I;16
        return np.ascontiguousarray(img)
    wanted = {2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    allowed = {2: ("LA",), 3: ("RGB", "YCbCr", "HSV"), 4: ("RGBA", "CMYK", "RGBX")}[channels]
    if mode is not None and mode not in allowed:
        raise ValueError(f"ToPILImage: only modes {list(allowed)} fit {channels} channels, got {mode!r}")
    if mode not in (None, wanted):
        raise ValueError(f"ToPILImage mode {mode!r} is not supported by edgeinfer (use {wanted!r})")
    if img.dtype != np.uint8:
        raise TypeError(f"ToPILImage does not support {channels}-channel tensors of dtype {x.dtype}")
    return np.ascontiguousarray(img)
