"""Who computes a resize: NumPy, Pillow, or both at once on two threads, by an estimate of each way's time.

A PIL image (what a decoded file is) can be resized by Pillow itself, which runs exactly the arithmetic
ported here: ``resize`` hands it over where Pillow is provably exact (same pass order) and cheaper
(full-frame downscales; NumPy wins on windows, upscales, L, RGBA and long filters). With two threads
allowed, Pillow computes each half of the rows or columns on its own thread, through boxes that reproduce
the full resize's coefficients (``_pillow_split``); or Pillow computes the top rows while NumPy computes the
rest of the window (``_mixed_split``); or NumPy computes a window as two halves (``_halves``): whichever
``choose_way`` estimates fastest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgeinfer import _convert
from edgeinfer._resample import threads
from edgeinfer._resample.coefficients import axis_scale, fixed_table
from edgeinfer._resample.filters import (
    BICUBIC,
    BILINEAR,
    BOX,
    HAMMING,
    LANCZOS,
    NEAREST,
    installed_pass_order,
    vertical_first,
)
from edgeinfer._resample.numpy_resize import resize_window
from edgeinfer._resample.pixels import window

if TYPE_CHECKING:
    from PIL import Image

ENGINES = ("auto", "numpy")

SPLIT_PIXELS = 1 << 19  # source pixels before a resize is split in two over threads
# NumPy halves share the horizontal plan: above this width it may not fit the plan cache and would be built
# twice at once (a 3,000,000-pixel-wide output took 1.3 GB instead of 0.7 GB).
SPLIT_WIDTH = 1 << 15
# Fewer rows than this are not cut in two halves: each half repeats the source rows its filter shares
# across the cut, and the hand-off to a worker thread costs more than a few rows of output save.
_HALVES_MIN_ROWS = 32
_CHECKED_OUTPUTS = 1 << 13  # outputs whose coefficients are checked one by one before Pillow computes them
# Pillow gets box edges as C floats: above 2**24 pixels along an axis, edge / k and N / n round apart.
_FLOAT32_EXACT_INTEGERS = 1 << 24

# NumPy's cost over Pillow's per pixel of a full-frame downscale, by filter and by mode (geometric means
# over photo sizes from 640x480 to 4032x3024, measured on x86_64 with OpenBLAS): Pillow's loops cost in
# proportion to the taps, the banded products far less; a single L plane is converted cheaply. LA is
# taken to cost as RGBA (both premultiplied). When the vertical pass comes first (tall downscales), NumPy
# widens every source row before any is reduced: 1.6 times its usual cost.
_NUMPY_OVER_PILLOW = {BOX: 1.9, BILINEAR: 1.3, HAMMING: 1.25, BICUBIC: 0.85, LANCZOS: 0.65}
_MODE_FACTOR = {"L": 0.55, "LA": 0.8, "RGB": 1.0, "RGBA": 0.8}
_VERTICAL_FIRST_FACTOR = 1.6
# How much faster NumPy computes a window as two halves on two cores than on one (measured 1.0-1.7x, about
# 1.3x typically, on 12 MP and 1080p windows): its conversions are bound by memory bandwidth, which the two
# cores share.
_HALVES_SPEEDUP = 1.3
# NEAREST reads one source pixel per output pixel either way; the cost model, in Pillow's pixels: Pillow
# gathers the whole frame, NumPy the kept window at 4 Pillow pixels each plus 2**16 for its fixed costs.
_NEAREST_NUMPY_PER_PIXEL = 4
_NEAREST_NUMPY_FIXED = 1 << 16


@dataclass(frozen=True)
class Split:
    """A cut of a resize along ``axis`` (0: rows, 1: columns): outputs [0, k) come from source [0, edge)
    through a Pillow box whose coefficients are the full resize's, on a worker thread; outputs [k, n) from
    source [edge, N), on the calling thread."""

    axis: int
    k: int
    edge: int


By = Literal["numpy", "numpy halves", "pillow", "pillow halves", "pillow and numpy"]


@dataclass(frozen=True)
class Way:
    """Who computes a resize: ``by`` is one of

    * ``"numpy"``: NumPy, the kept window only, on this thread;
    * ``"numpy halves"``: NumPy, the window's upper half on a worker thread and its lower half here;
    * ``"pillow"``: ``Image.resize`` of the whole frame, on this thread;
    * ``"pillow halves"``: Pillow on both sides of ``split``, one on a worker thread;
    * ``"pillow and numpy"``: Pillow the rows before ``split`` (whole width) on a worker thread, NumPy the
      window's other rows here.
    """

    by: By
    split: Split | None = None


def resize(
    img: np.ndarray | Image.Image,
    size: tuple[int, int],
    filter: int,
    *,
    pass_order: str = "pillow13",
    region: tuple[int, int, int, int] | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """Resize ``img`` to ``size`` = (height, width) exactly as Pillow's ``Image.resize`` does.

    The arguments are trusted: ``edgeinfer.transforms.functional.resize`` checks them
    (``transforms/_checks.py``) and is the one caller outside tests and tools.

    Args:
        img: uint8 HxW (L), HxWx2 (LA), HxWx3 (RGB), HxWx4 (RGBA); float32 HxW (F) or int32 HxW (I);
            or a PIL image of these modes, of which only the pixels the result needs are read.
        size: output (height, width), both >= 1.
        filter: Pillow's filter code: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING.
        pass_order: "pillow13" (Pillow 13 runs the vertical pass first for tall downscales) or
            "pillow12" (horizontal pass always first, Pillow <= 12).
        region: optional (top, left, height, width) window of the output, inside it; only that window is
            computed, bit-identical to resizing fully and slicing.
        engine: "auto" lets a PIL image be resized by Pillow itself where that is provably the same
            arithmetic and cheaper (see ``choose_way``); "numpy" always computes here.

    Work may be split over threads: see :func:`~edgeinfer._resample.threads.parallel`.

    Returns:
        A new array of the input's dtype and channel count, shaped like the output (or the region); when
        Pillow computed it, a read-only view of Pillow's new image (as ``to_array`` gives for PIL images).

    Raises:
        TypeError / ValueError: ``img`` is not an image of a supported kind (``_convert``'s message).
        ValueError: a 16-bit (I;16) image, or an unknown ``engine``.
    """
    if _convert.is_pil(img):
        mode, (in_w, in_h) = _convert.pil_mode(img), img.size
    else:
        mode, (in_h, in_w) = _convert.image_mode(img), img.shape[:2]
    if mode == "I;16":
        raise ValueError("resizing 16-bit (I;16) images is not supported; convert them to 'I' (int32) first")
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'auto' or 'numpy', got {engine!r}")
    out_h, out_w = size
    region = (0, 0, out_h, out_w) if region is None else region
    top, left, reg_h, reg_w = region
    if _convert.is_pil(img):
        img.load()  # decoded here, once: a split's two threads would otherwise both decode the file

    if (in_h, in_w) == (out_h, out_w):  # Image.resize returns a copy
        return np.array(window(img, top, top + reg_h, left, left + reg_w))
    way = choose_way(img, filter, pass_order, (out_h, out_w), region, engine)
    if way.by == "pillow":
        resized = img.resize((out_w, out_h), filter)
        return _convert.pil_pixels(resized, (left, top, left + reg_w, top + reg_h))  # Pillow's new image
    if way.by in ("pillow halves", "pillow and numpy"):
        return _shared(img, mode, filter, pass_order, (out_h, out_w), region, way)
    if way.by == "numpy halves":
        return _halves(img, mode, (out_h, out_w), filter, pass_order, region)
    return resize_window(img, mode, (out_h, out_w), filter, pass_order, region)


def choose_way(
    img: np.ndarray | Image.Image,
    filter: int,
    pass_order: str,
    size: tuple[int, int],
    region: tuple[int, int, int, int],
    engine: str = "auto",
) -> Way:
    """Who computes this resize (``size`` differs from the image's): the way of least estimated time.

    NumPy computes arrays, and whatever ``engine="numpy"`` asks for; with two threads allowed, a window of
    a large image in two halves. A PIL image may go to ``img.resize`` (Pillow, the call torchvision makes)
    where that is faster. Same result: Pillow runs the arithmetic ported here; only its pass order depends on
    its version, so a two-pass resize is handed over only when the installed Pillow orders the passes as
    ``pass_order`` asks. Faster: Pillow resizes the whole frame, NumPy only the kept window. Each way's time
    is estimated in Pillow's cost per output pixel: NumPy's cost per pixel times the kept window (on one
    thread, or in two halves), Pillow's whole frame (or half of it on each thread), or Pillow's top rows on
    one thread while NumPy computes the rest of the window on the other. Upscales of small images are
    cheaper here.
    """
    in_w, in_h = img.size if _convert.is_pil(img) else img.shape[1::-1]
    (out_h, out_w), (_, _, reg_h, reg_w) = size, region
    halves = (
        filter != NEAREST
        and threads.allowed() > 1
        and reg_h >= _HALVES_MIN_ROWS
        and reg_w <= SPLIT_WIDTH
        and in_h * in_w >= SPLIT_PIXELS
    )
    numpy = Way("numpy halves" if halves else "numpy")
    if engine == "numpy" or not _convert.is_pil(img):
        return numpy
    whole, kept = out_h * out_w, reg_h * reg_w
    if filter == NEAREST:
        by_numpy = _NEAREST_NUMPY_PER_PIXEL * kept + _NEAREST_NUMPY_FIXED
        return Way("pillow") if whole <= by_numpy else numpy
    if img.mode not in _MODE_FACTOR or in_h * in_w <= whole:
        return numpy
    if in_h != out_h and in_w != out_w:
        ours = vertical_first(pass_order, in_h, in_w, out_h, out_w)
        if ours != vertical_first(installed_pass_order(), in_h, in_w, out_h, out_w):
            return numpy
    cost = _numpy_cost(img, filter, size)
    options = [(cost * kept / (_HALVES_SPEEDUP if halves else 1), numpy), (whole, Way("pillow"))]
    split = _pillow_split(img, filter, size, region)
    if split is not None:
        options.append((whole / 2, Way("pillow halves", split)))
    mixed = _mixed_split(img, filter, size, region, cost)
    if mixed is not None:
        top = region[0]
        both = max(mixed.k * out_w, cost * (top + reg_h - mixed.k) * reg_w)  # the slower side's time
        options.append((both, Way("pillow and numpy", mixed)))
    return min(options, key=lambda option: option[0])[1]  # the first of equals: NumPy, then Pillow alone


def _numpy_cost(img, filter: int, size: tuple[int, int]) -> float:
    """NumPy's cost over Pillow's per output pixel of resizing ``img`` to ``size`` (a downscale)."""
    (in_w, in_h), (out_h, out_w) = img.size, size
    cost = _NUMPY_OVER_PILLOW[filter] * _MODE_FACTOR[img.mode]
    two_pass = in_h != out_h and in_w != out_w
    if two_pass and vertical_first(installed_pass_order(), in_h, in_w, out_h, out_w):
        cost *= _VERTICAL_FIRST_FACTOR
    return cost


def _pillow_split(img, filter: int, size: tuple[int, int], region) -> Split | None:
    """With threads to spare, a way for Pillow to compute the resize in two halves, on two threads: Pillow
    computing outputs [0, k) along the axis from source [0, edge), and outputs [k, n) from source
    [edge, N); None when there is none.

    ``img.resize`` with the box [0, edge) computes Pillow's coefficients with ``in0 = 0`` and
    ``scale = edge / k``: when that equals N / n exactly, every centre ``(i + 0.5) * scale`` and so every
    coefficient is the full resize's (an FMA would add 0, so this holds on every CPU), and the pass order
    must be the same. k is a multiple of n / gcd(N, n). From the box [edge, N), ``in0 = edge`` shifts every
    centre by a rounding: ``outputs_from`` checks that the coefficients come out the same all the same.
    """
    (in_w, in_h), (top, left, reg_h, reg_w) = img.size, region
    if not _may_split(img, filter):
        return None
    axes = ((in_h, size[0], top, top + reg_h), (in_w, size[1], left, left + reg_w))
    for axis, (in_size, out_size, lo, hi) in enumerate(axes):
        if in_size == out_size:  # a box would add an identity pass along this axis
            continue
        step = out_size // math.gcd(in_size, out_size)
        mid = round(out_size / (2 * step))
        # The five multiples of ``step`` nearest the middle, nearest first.
        for k in (mid * step, (mid - 1) * step, (mid + 1) * step, (mid - 2) * step, (mid + 2) * step):
            edge = k * in_size // out_size
            if (
                lo < k < hi
                and out_size - k <= _CHECKED_OUTPUTS
                and _same_order(img, size, axis, k)
                and _same_order(img, size, axis, out_size - k)
                and outputs_from(in_size, out_size, filter, k, edge)
            ):
                return Split(axis, k, edge)
    return None


def _mixed_split(img, filter: int, size: tuple[int, int], region, cost: float) -> Split | None:
    """With threads to spare: a row split for Pillow to compute the top rows [0, k) of the whole width from
    source rows [0, edge) (exactly, as in ``_pillow_split``) while NumPy computes the window's other rows; k
    balances Pillow's k whole rows against NumPy's ``cost`` per kept pixel. None when there is none."""
    in_h, (top, _, reg_h, reg_w), (out_h, out_w) = img.height, region, size
    if not _may_split(img, filter) or in_h == out_h:
        return None
    step = out_h // math.gcd(in_h, out_h)
    k = round(cost * reg_w * (top + reg_h) / (out_w + cost * reg_w) / step) * step
    if not top < k < top + reg_h or not _same_order(img, size, 0, k):
        return None
    return Split(0, k, k * in_h // out_h)


def _may_split(img, filter: int) -> bool:
    """Whether a resize of ``img`` may be shared over threads with Pillow at all. Not LA/RGBA: Pillow
    premultiplies the whole image before resizing any box of it. Not above 2**24 pixels along an axis:
    Pillow gets box edges as C floats, and edge / k and N / n would round apart."""
    in_w, in_h = img.size
    return (
        filter != NEAREST
        and img.mode not in ("LA", "RGBA")
        and threads.allowed() > 1
        and in_h * in_w >= SPLIT_PIXELS
        and max(in_h, in_w) <= _FLOAT32_EXACT_INTEGERS
    )


def _same_order(img, size: tuple[int, int], axis: int, outputs: int) -> bool:
    """Whether Pillow orders the passes of ``outputs`` rows (axis 0) or columns (axis 1) of a box as it does
    the full resize: its rule weighs the whole image's size against the box's outputs
    (``vertical_first``)."""
    (in_w, in_h), (out_h, out_w) = img.size, size
    if in_w == out_w or in_h == out_h:  # one pass
        return True
    order = installed_pass_order()
    part = (outputs, out_w) if axis == 0 else (out_h, outputs)
    return vertical_first(order, in_h, in_w, *part) == vertical_first(order, in_h, in_w, out_h, out_w)


@lru_cache(maxsize=256)
def outputs_from(in_size: int, out_size: int, filter: int, k: int, edge: int) -> bool:
    """Whether Pillow, given the box edges (edge, in_size) for outputs [k, out_size) of an axis, computes
    the full resize's coefficient tables for them.

    Resample.c computes each centre as ``in0 + (i + 0.5) * scale`` (the scale is the full resize's when
    edge / k = N / n); the full resize computes ``(k + i + 0.5) * scale``. The two can differ in the last
    bit, and a compiler may or may not fuse the multiply-add, so the tables are compared for both roundings.
    """
    scale = axis_scale(in_size, out_size)
    i = np.arange(out_size - k)
    num, den = scale.as_integer_ratio()  # den is a power of two: Python's int division rounds exactly once
    fused = np.array([(2 * den * edge + (2 * j + 1) * num) / (2 * den) for j in range(out_size - k)])
    want = fixed_table(in_size, scale, filter, (i + (k + 0.5)) * scale)
    for centre in (edge + (i + 0.5) * scale, fused):
        got = fixed_table(in_size, scale, filter, centre)
        if not all(np.array_equal(a, b) for a, b in zip(want, got, strict=True)):
            return False
    return True


def _shared(img, mode: str, filter: int, pass_order: str, size, region, way: Way) -> np.ndarray:
    """Outputs [0, k) along the split's axis from Pillow on a worker thread, the rest from Pillow or NumPy
    on this one."""
    (out_h, out_w), (top, left, reg_h, reg_w) = size, region
    axis, k, edge = way.split.axis, way.split.k, way.split.edge
    in_w, in_h = img.size
    if axis == 0:
        first = threads.pool(1).submit(img.resize, (out_w, k), filter, (0, 0, in_w, edge))
        if way.by == "pillow halves":
            rest = img.resize((out_w, out_h - k), filter, (0, edge, in_w, in_h))
            second = _convert.pil_pixels(rest, (left, 0, left + reg_w, top + reg_h - k))
        else:
            with threads.parallel(1):
                rest_region = (k, left, top + reg_h - k, reg_w)
                second = resize_window(img, mode, size, filter, pass_order, rest_region)
        box = (left, top, left + reg_w, k)
    else:
        first = threads.pool(1).submit(img.resize, (k, out_h), filter, (0, 0, edge, in_h))
        rest = img.resize((out_w - k, out_h), filter, (edge, 0, in_w, in_h))
        second = _convert.pil_pixels(rest, (0, top, left + reg_w - k, top + reg_h))
        box = (left, top, k, top + reg_h)
    first = _convert.pil_pixels(first.result(), box)
    return np.concatenate([first, second], axis=axis)


def _halves(img, mode: str, size, filter: int, pass_order: str, region) -> np.ndarray:
    """The window's upper half on a worker thread and its lower half here, each exactly as a window of
    its own; each half repeats only the few source rows the filter shares across the cut."""
    top, left, reg_h, reg_w = region
    mid = top + reg_h // 2
    upper = threads.pool(1).submit(
        resize_window, img, mode, size, filter, pass_order, (top, left, mid - top, reg_w)
    )
    with threads.parallel(1):
        lower = resize_window(img, mode, size, filter, pass_order, (mid, left, top + reg_h - mid, reg_w))
    return np.concatenate([upper.result(), lower])
