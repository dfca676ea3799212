"""Pillow's ``Image.resize`` re-implemented in NumPy, bit-exact.

Reproduces ``PIL.Image.Image.resize((w, h), filter)`` (no box, no reducing_gap: what torchvision calls) for
the modes L, LA, RGB, RGBA (uint8), F (float32) and I (int32): Pillow's coefficient tables, the 22-bit fixed
point arithmetic of 8-bit images, the rounded intermediate image between the two passes, the order of the
passes, alpha premultiplication and the incremental index arithmetic of NEAREST.

Speed (8-bit modes) comes from
* coefficient tables computed once per geometry (cached) and applied as banded matrix products: equal
  blocks of outputs, one strided view and one batched BLAS call per strip of the image;
* float32 products whose rounding is provably Pillow's: an error bound per output says which results lie
  too close to a rounding edge, and only those are recomputed exactly in float64 (see ``_doubt_margins``);
* computing only the requested output ``region`` (Resize + CenterCrop), and reusing work buffers;
* cost bounded by the kept region plus the input: coefficient tables only for kept outputs, NEAREST
  indices without walking the whole axis, filters of thousands of taps as direct exact float64 products,
  plans cached up to a byte budget.

A PIL image (what a decoded file is) can also be resized by Pillow itself, which runs exactly this
arithmetic: ``resize`` hands it over where Pillow is provably exact (same pass order) and cheaper
(``_pillow_plan``: full-frame downscales; NumPy wins on windows, upscales, L, RGBA and long filters). With
two threads allowed, Pillow computes each half of the rows or columns on its own thread, through boxes
that reproduce the full resize's coefficients (``_pillow_split``); or Pillow computes the top rows while
NumPy computes the rest of the window (``_mixed_split``); or NumPy computes a window as two halves
(``_halves``): whichever is estimated fastest.

``_resample_reference`` is the loop-for-loop port of Pillow's C code that these paths are tested against;
it owns the constants both share (filter codes and supports, fixed point precision, the pass order).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

from edgeinfer import _convert
from edgeinfer._resample_reference import (
    BICUBIC,
    BILINEAR,
    BOX,
    FILTER_NAMES,
    HAMMING,
    HAMMING_A,
    HAMMING_B,
    LANCZOS,
    NEAREST,
    PASS_ORDERS,
    PRECISION_BITS,
    SUPPORTS,
    installed_pass_order,
    vertical_first,
)

# Cost of the banded products in ns, measured (OpenBLAS's small-matrix kernel, AVX-512, 1 thread): a block
# over M rows and ``span`` source pixels costs 0.46 us plus 0.29 ns per row and pixel for every 16 outputs
# of the block (they are computed together; one output is a matrix-vector product, 0.4 of that); a group
# of blocks adds a call from Python, and each product call (a strip of rows) its conversions and rounding.
# Blocks are sized to balance these against the multiplied zeros.
_BLOCK_NS = 460
_GROUP_NS = 5000
_CALL_NS = 20000
_PIXEL_NS = 0.29
_F32_EPS = 2.0**-24  # unit roundoff of float32
# OpenBLAS runs a gemm with m*n*k up to this on the calling thread. Waking its worker threads costs more
# than these banded products gain, and on a busy machine a sleeping worker can stall a call for a whole
# scheduler time slice, so every product is kept below it.
_SINGLE_THREAD_MNK = 65536 * 4
_STRIP_BYTES = 1 << 22  # float32 strip buffers: big enough for few calls, small enough to reuse
_DIRECT_TAPS = 1024  # filters at least this long take the direct float64 path
_SCRATCH_KEPT = 8 << 20  # largest work buffer (in bytes) kept between calls
_TABLE_CHUNK = 1 << 20  # coefficients computed per step of a table
_PLAN_CACHE_BYTES = 32 << 20  # pass plans kept for reuse, in bytes of their arrays
_PARALLEL_WORK = 1 << 20  # pixels a pass must read before it is split over threads
_SPLIT_PIXELS = 1 << 19  # source pixels before a resize is split in two over threads
_CHECKED_OUTPUTS = 1 << 13  # outputs whose coefficients are checked one by one before Pillow computes them
# NumPy halves share the horizontal plan: above this width it may not fit the plan cache and would be built
# twice at once (a 3,000,000-pixel-wide output took 1.3 GB instead of 0.7 GB).
_SPLIT_WIDTH = 1 << 15


def resize(
    img: np.ndarray,
    size: tuple[int, int],
    filter: int,
    *,
    pass_order: str = "pillow13",
    region: tuple[int, int, int, int] | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """Resize ``img`` to ``size`` = (height, width) exactly as Pillow's ``Image.resize`` does.

    Args:
        img: uint8 HxW (L), HxWx2 (LA), HxWx3 (RGB), HxWx4 (RGBA); float32 HxW (F) or int32 HxW (I);
            or a PIL image of these modes, of which only the pixels the result needs are read.
        size: output (height, width), both >= 1.
        filter: Pillow's filter code: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING.
        pass_order: "pillow13" (Pillow 13 runs the vertical pass first for tall downscales) or
            "pillow12" (horizontal pass always first, Pillow <= 12).
        region: optional (top, left, height, width) window of the output; only that window is computed,
            bit-identical to resizing fully and slicing.
        engine: "auto" lets a PIL image be resized by Pillow itself where that is provably the same
            arithmetic and cheaper (see ``_pillow_plan``); "numpy" always computes here.

    Work may be split over threads: see :func:`parallel`.

    Returns:
        A new array of the input's dtype and channel count, shaped like the output (or the region); when
        Pillow computed it, a read-only view of Pillow's new image (as ``to_array`` gives for PIL images).

    Raises:
        TypeError: ``img`` is not an array of a supported dtype, or an argument has the wrong type.
        ValueError: wrong shape or channel count, empty image, bad size, filter, pass order or region.
    """
    if _convert.is_pil(img):
        mode, (in_w, in_h) = _convert.pil_mode(img), img.size
    else:
        mode, (in_h, in_w) = _convert.image_mode(img), img.shape[:2]
    if mode == "I;16":
        raise ValueError("resizing 16-bit (I;16) images is not supported; convert them to 'I' (int32) first")
    out_h, out_w = _check_size(size)
    filter = _check_filter(filter)
    if pass_order not in PASS_ORDERS:
        raise ValueError(f"pass_order must be one of {PASS_ORDERS}, got {pass_order!r}")
    if engine not in ("auto", "numpy"):
        raise ValueError(f"engine must be 'auto' or 'numpy', got {engine!r}")
    top, left, reg_h, reg_w = _check_region(region, out_h, out_w)
    if _convert.is_pil(img):
        img.load()  # decoded here, once: a split's two threads would otherwise both decode the file

    if (in_h, in_w) == (out_h, out_w):  # Image.resize returns a copy
        return np.array(_window(img, top, top + reg_h, left, left + reg_w))
    halves = (
        _PARALLELISM.threads > 1 and reg_h >= 32 and reg_w <= _SPLIT_WIDTH and in_h * in_w >= _SPLIT_PIXELS
    )
    by_pillow = None
    if engine == "auto" and _convert.is_pil(img):
        by_pillow = _pillow_plan(img, filter, pass_order, (out_h, out_w), (top, left, reg_h, reg_w), halves)
    if by_pillow == ():
        resized = img.resize((out_w, out_h), filter)
        return _convert.pil_pixels(resized, (left, top, left + reg_w, top + reg_h))  # Pillow's new image
    if by_pillow is not None:
        return _shared(img, filter, pass_order, (out_h, out_w), (top, left, reg_h, reg_w), by_pillow)
    if filter == NEAREST:
        return _resize_nearest(img, out_h, out_w, top, left, reg_h, reg_w)
    if halves:
        return _halves(img, (out_h, out_w), filter, pass_order, (top, left, reg_h, reg_w))

    need_h, need_v = out_w != in_w, out_h != in_h
    v_first = need_h and need_v and vertical_first(pass_order, in_h, in_w, out_h, out_w)
    channels = {"LA": 2, "RGB": 3, "RGBA": 4}.get(mode, 1)
    # How many independent rows (columns) each product of the horizontal (vertical) pass works on.
    h_breadth = channels * min(in_h, _STRIP_BYTES // (4 * in_w * channels))
    # Alpha modes run the vertical pass channel by channel.
    v_breadth = (
        (reg_w if mode in ("LA", "RGBA") else reg_w * channels) if need_h and not v_first else in_w * channels
    )
    if need_v:
        row_lo, row_hi, v_plan = _plan(mode, in_h, out_h, filter, top, top + reg_h, _bucket(v_breadth))
    else:
        row_lo, row_hi, v_plan = top, top + reg_h, None
    if need_h:
        col_lo, col_hi, h_plan = _plan(mode, in_w, out_w, filter, left, left + reg_w, _bucket(h_breadth))
    else:
        col_lo, col_hi, h_plan = left, left + reg_w, None

    if mode in ("F", "I"):
        return _resample_32bit(_window(img, row_lo, row_hi, col_lo, col_hi), mode, h_plan, v_plan, v_first)
    if h_plan is not None and not v_first and _convert.is_pil(img):  # read band by band, never all at once
        box = (col_lo, row_lo, col_hi, row_hi)
        shape = (row_hi - row_lo, col_hi - col_lo) + ((channels,) if mode != "L" else ())
        return _resample_8bit(_convert.pil_bands(img, box), shape, mode, h_plan, v_plan, v_first)
    window = _window(img, row_lo, row_hi, col_lo, col_hi)
    return _resample_8bit([(0, window)], window.shape, mode, h_plan, v_plan, v_first)


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


def _numpy_cost(img, filter: int, size: tuple[int, int]) -> float:
    """NumPy's cost over Pillow's per output pixel of resizing ``img`` to ``size`` (a downscale)."""
    (in_w, in_h), (out_h, out_w) = img.size, size
    cost = _NUMPY_OVER_PILLOW[filter] * _MODE_FACTOR[img.mode]
    two_pass = in_h != out_h and in_w != out_w
    if two_pass and vertical_first(installed_pass_order(), in_h, in_w, out_h, out_w):
        cost *= _VERTICAL_FIRST_FACTOR
    return cost


def _pillow_plan(
    img, filter: int, pass_order: str, size: tuple[int, int], region, halves: bool
) -> tuple | None:
    """How ``img.resize`` (Pillow, the call torchvision makes) gives this result faster than NumPy: ``()``
    alone, or a split over two threads (``_pillow_split``, ``_mixed_split``); None when NumPy is faster.

    Same result: Pillow runs the arithmetic ported here; only its pass order depends on its version, so a
    two-pass resize is handed over only when the installed Pillow orders the passes as ``pass_order`` asks.
    Faster: Pillow resizes the whole frame, NumPy only the kept window. NEAREST reads one source pixel per
    output pixel either way. Each way's time is estimated in Pillow's cost per output pixel: NumPy's cost
    per pixel times the kept window (on one thread, or in two halves: ``halves``), Pillow's whole frame
    (or half of it on each thread), or Pillow's top rows on one thread while NumPy computes the rest of
    the window on the other. Upscales of small images are cheaper here.
    """
    (in_w, in_h), (out_h, out_w) = img.size, size
    whole, kept = out_h * out_w, region[2] * region[3]
    if filter == NEAREST:
        return () if whole <= 4 * kept + (1 << 16) else None
    if img.mode not in _MODE_FACTOR or in_h * in_w <= whole:
        return None
    if in_h != out_h and in_w != out_w:
        ours = vertical_first(pass_order, in_h, in_w, out_h, out_w)
        if ours != vertical_first(installed_pass_order(), in_h, in_w, out_h, out_w):
            return None
    cost = _numpy_cost(img, filter, size)
    options = [(cost * kept / (_HALVES_SPEEDUP if halves else 1), None), (whole, ())]
    split = _pillow_split(img, filter, size, region)
    if split is not None:
        options.append((whole / 2, split))
    mixed = _mixed_split(img, filter, size, region, cost)
    if mixed is not None:
        options.append(mixed)
    return min(options, key=lambda option: option[0])[1]  # the first of equals: NumPy, then Pillow alone


def _pillow_split(img, filter: int, size: tuple[int, int], region) -> tuple[int, int, int, bool] | None:
    """With threads to spare, a way for Pillow to compute the resize in two halves, on two threads: (axis,
    k, edge, True), Pillow computing outputs [0, k) along ``axis`` (0: rows, 1: columns) from source
    [0, edge), and outputs [k, n) from source [edge, N); None when there is none.

    ``img.resize`` with the box [0, edge) computes Pillow's coefficients with ``in0 = 0`` and
    ``scale = edge / k``: when that equals N / n exactly, every centre ``(i + 0.5) * scale`` and so every
    coefficient is the full resize's (an FMA would add 0, so this holds on every CPU), and the pass order
    must be the same. k is a multiple of n / gcd(N, n). From the box [edge, N), ``in0 = edge`` shifts every
    centre by a rounding: ``_outputs_from`` checks that the coefficients come out the same all the same.
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
        for k in (mid * step, (mid - 1) * step, (mid + 1) * step, (mid - 2) * step, (mid + 2) * step):
            edge = k * in_size // out_size
            if (
                lo < k < hi
                and out_size - k <= _CHECKED_OUTPUTS
                and _same_order(img, size, axis, k)
                and _same_order(img, size, axis, out_size - k)
                and _outputs_from(in_size, out_size, filter, k, edge)
            ):
                return axis, k, edge, True
    return None


def _mixed_split(img, filter: int, size: tuple[int, int], region, cost: float) -> tuple[float, tuple] | None:
    """With threads to spare: (estimated time, (0, k, edge, False)), Pillow computing the top rows [0, k)
    of the whole width from source rows [0, edge) (exactly, as in ``_pillow_split``) while NumPy computes
    the window's other rows; k balances Pillow's k whole rows against NumPy's ``cost`` per kept pixel."""
    in_h, (top, _, reg_h, reg_w), (out_h, out_w) = img.height, region, size
    if not _may_split(img, filter) or in_h == out_h:
        return None
    step = out_h // math.gcd(in_h, out_h)
    k = round(cost * reg_w * (top + reg_h) / (out_w + cost * reg_w) / step) * step
    if not top < k < top + reg_h or not _same_order(img, size, 0, k):
        return None
    return max(k * out_w, cost * (top + reg_h - k) * reg_w), (0, k, k * in_h // out_h, False)


def _may_split(img, filter: int) -> bool:
    """Whether a resize of ``img`` may be shared over threads with Pillow at all. Not LA/RGBA: Pillow
    premultiplies the whole image before resizing any box of it. Not above 2**24 pixels along an axis:
    Pillow gets box edges as C floats, and edge / k and N / n would round apart."""
    in_w, in_h = img.size
    return (
        filter != NEAREST
        and img.mode not in ("LA", "RGBA")
        and _PARALLELISM.threads > 1
        and in_h * in_w >= _SPLIT_PIXELS
        and max(in_h, in_w) <= 1 << 24
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
def _outputs_from(in_size: int, out_size: int, filter: int, k: int, edge: int) -> bool:
    """Whether Pillow, given the box edges (edge, in_size) for outputs [k, out_size) of an axis, computes
    the full resize's coefficient tables for them.

    Resample.c computes each centre as ``in0 + (i + 0.5) * scale`` (the scale is the full resize's when
    edge / k = N / n); the full resize computes ``(k + i + 0.5) * scale``. The two can differ in the last
    bit, and a compiler may or may not fuse the multiply-add, so the tables are compared for both roundings.
    """
    scale = _axis_scale(in_size, out_size)
    i = np.arange(out_size - k)
    num, den = scale.as_integer_ratio()  # den is a power of two: Python's int division rounds exactly once
    fused = np.array([(2 * den * edge + (2 * j + 1) * num) / (2 * den) for j in range(out_size - k)])
    want = _fixed_table(in_size, scale, filter, (i + (k + 0.5)) * scale)
    for centre in (edge + (i + 0.5) * scale, fused):
        got = _fixed_table(in_size, scale, filter, centre)
        if not all(np.array_equal(a, b) for a, b in zip(want, got, strict=True)):
            return False
    return True


def _fixed_table(in_size: int, scale: float, filter: int, centre: np.ndarray) -> tuple[np.ndarray, ...]:
    """First source index, tap count and 22-bit fixed point weights of outputs centred at ``centre``."""
    first, count, weights = _coefficients_at(in_size, scale, filter, centre)
    return first, count, _fixed_point(weights)


def _shared(img, filter: int, pass_order: str, size, region, split) -> np.ndarray:
    """Outputs [0, k) along the split's axis from Pillow on a worker thread, the rest from Pillow or NumPy
    on this one."""
    (out_h, out_w), (top, left, reg_h, reg_w), (axis, k, edge, both) = size, region, split
    in_w, in_h = img.size
    if axis == 0:
        first = _pool(1).submit(img.resize, (out_w, k), filter, (0, 0, in_w, edge))
        if both:
            rest = img.resize((out_w, out_h - k), filter, (0, edge, in_w, in_h))
            second = _convert.pil_pixels(rest, (left, 0, left + reg_w, top + reg_h - k))
        else:
            with parallel(1):
                region = (k, left, top + reg_h - k, reg_w)
                second = resize(img, size, filter, pass_order=pass_order, region=region, engine="numpy")
        window = (left, top, left + reg_w, k)
    else:
        first = _pool(1).submit(img.resize, (k, out_h), filter, (0, 0, edge, in_h))
        rest = img.resize((out_w - k, out_h), filter, (edge, 0, in_w, in_h))
        second = _convert.pil_pixels(rest, (0, top, left + reg_w - k, top + reg_h))
        window = (left, top, k, top + reg_h)
    first = _convert.pil_pixels(first.result(), window)
    return np.concatenate([first, second], axis=axis)


def _halves(img, size, filter: int, pass_order: str, region) -> np.ndarray:
    """The window's upper half on a worker thread and its lower half here, each exactly as a window of
    its own; each half repeats only the few source rows the filter shares across the cut."""
    top, left, reg_h, reg_w = region
    mid = top + reg_h // 2
    upper = _pool(1).submit(
        resize, img, size, filter, pass_order=pass_order, region=(top, left, mid - top, reg_w), engine="numpy"
    )
    with parallel(1):
        lower = resize(
            img,
            size,
            filter,
            pass_order=pass_order,
            region=(mid, left, top + reg_h - mid, reg_w),
            engine="numpy",
        )
    return np.concatenate([upper.result(), lower])


def _window(img, row_lo: int, row_hi: int, col_lo: int, col_hi: int) -> np.ndarray:
    """The pixels a resize reads, as an array; of a PIL image only these are converted."""
    if isinstance(img, np.ndarray):
        return img[row_lo:row_hi, col_lo:col_hi]
    return _convert.pil_pixels(img, (col_lo, row_lo, col_hi, row_hi))


def _bucket(breadth: int) -> int:
    """Round up to a power of two (at most 4096), so that plans are shared between similar images."""
    return 1 << min(12, max(0, breadth - 1).bit_length())


# ---------------------------------------------------------------------------------------------- arguments


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {value!r}")
    return int(value)


def _check_size(size: object) -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"size must be a (height, width) pair, got {size!r}")
    out_h, out_w = (_check_int(v, "size") for v in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {tuple(size)!r}")
    return out_h, out_w


def _check_filter(filter: object) -> int:
    code = _check_int(filter, "filter")
    if code not in FILTER_NAMES:
        raise ValueError(f"filter must be one of {FILTER_NAMES} (Pillow codes), got {filter!r}")
    return code


def _check_region(region: object, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    if region is None:
        return 0, 0, out_h, out_w
    if not isinstance(region, (tuple, list)) or len(region) != 4:
        raise TypeError(f"region must be (top, left, height, width), got {region!r}")
    top, left, height, width = (_check_int(v, "region") for v in region)
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > out_h or left + width > out_w:
        raise ValueError(f"region {tuple(region)!r} is not a non-empty window of the {out_h}x{out_w} output")
    return top, left, height, width


# --------------------------------------------------------------------------------------------- NEAREST


def _nearest_indices(in_size: int, out_size: int, lo: int, hi: int) -> np.ndarray:
    """Source index of outputs [lo, hi), as Geometry.c's ImagingScaleAffine computes it.

    The C loop starts at ``scale / 2`` and adds ``scale`` once per output in double; (int) truncates.
    Within one binade [2**(e-1), 2**e) the rounded sum x + scale moves x by the same multiple of the
    binade's ulp every time (a tie rounds to an even significand, after which the step is fixed too), so
    after two additions inside a binade the rest of the binade is an exact arithmetic progression. That
    reproduces the sequential sums with a few dozen Python additions, whatever ``lo`` is.
    """
    step = _axis_scale(in_size, out_size)
    x, k = step * 0.5, 0
    positions = np.empty(hi - lo)
    while k < hi:
        top = 2.0 ** math.frexp(x)[1]
        second = (x + step) + step
        following = second + step
        # Steps that stay below the binade's top by more than an ulp cannot round up into the next one.
        room = top - top * 2.0**-52 - step
        if x >= top / 2 and following < room and following > second:
            increment = following - second
            run = min(int((room - second) // increment), hi - (k + 2))
            if run > 0:
                run_lo, run_hi = max(lo, k + 2), k + 2 + run
                if run_hi > run_lo:
                    offsets = np.arange(run_lo - k - 2, run_hi - k - 2, dtype=np.float64)
                    positions[run_lo - lo : run_hi - lo] = second + offsets * increment
                if lo <= k:
                    positions[k - lo] = x
                if lo <= k + 1:
                    positions[k + 1 - lo] = x + step
                k, x = k + 2 + run, second + run * increment
                continue
        if k >= lo:
            positions[k - lo] = x
        k, x = k + 1, x + step
    return positions.astype(np.int64)


def _resize_nearest(
    img: np.ndarray, out_h: int, out_w: int, top: int, left: int, reg_h: int, reg_w: int
) -> np.ndarray:
    in_h, in_w = (img.height, img.width) if _convert.is_pil(img) else img.shape[:2]
    rows = _nearest_indices(in_h, out_h, top, top + reg_h)
    cols = _nearest_indices(in_w, out_w, left, left + reg_w)
    row_ok, col_ok = rows < in_h, cols < in_w
    rows, cols = np.where(row_ok, rows, 0), np.where(col_ok, cols, 0)
    pixels = _convert.pil_view(img) if _convert.is_pil(img) else img
    if pixels is not None:
        img = pixels
    else:  # a big PIL image: copy only the rows picked, and only the columns spanned
        kept, first, last = np.unique(rows), int(cols.min()), int(cols.max()) + 1
        img = _convert.pil_rows(img, kept.tolist(), first, last)
        rows, cols = np.searchsorted(kept, rows), cols - cols.min()
    words = _pixel_words(img)
    if words is not None:  # one 4-byte word per pixel: the fastest gather
        picked = words[rows[:, None], cols].view(np.uint8).reshape(reg_h, reg_w, 4)
        out = picked[:, :, : img.shape[2]]  # a view of whole pixels, as Pillow's own storage
    else:
        # Gather whole rows, then (column, channel) bytes of the flattened rows: faster than pixel gathers.
        channels = img.shape[2] if img.ndim == 3 else 1
        bytes_at = (cols[:, None] * channels + np.arange(channels)).ravel()
        picked = np.take(img, rows, axis=0).reshape(reg_h, -1)[:, bytes_at]
        out = picked.reshape((reg_h, reg_w) + img.shape[2:])
    if not (row_ok.all() and col_ok.all()):
        out[~row_ok] = 0
        out[:, ~col_ok] = 0
    return out


# NumPy 2 moved byte_bounds to numpy.lib.array_utils; the runtime supports NumPy >= 1.24.
_byte_bounds = getattr(getattr(np.lib, "array_utils", None), "byte_bounds", None) or np.byte_bounds


def _pixel_words(img: np.ndarray) -> np.ndarray | None:
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


# -------------------------------------------------------------------------------------------- coefficients


def _cached_in_bytes(max_bytes: int) -> Callable:
    """An LRU cache for a function of hashable arguments whose results hold NumPy arrays, bounded by the
    bytes of those arrays (a few plans for very wide images would otherwise hold hundreds of MB).
    Results larger than ``max_bytes`` are not kept."""

    def decorate(function: Callable) -> Callable:
        kept: OrderedDict = OrderedDict()
        sizes: dict = {}
        lock = threading.Lock()

        def cached(*args):
            with lock:
                if args in kept:
                    kept.move_to_end(args)
                    return kept[args]
            value = function(*args)
            size = _array_bytes(value)
            with lock:
                if size <= max_bytes and args not in kept:
                    kept[args], sizes[args] = value, size
                    while sum(sizes.values()) > max_bytes:
                        oldest, _ = kept.popitem(last=False)
                        del sizes[oldest]
            return value

        cached.cache_clear = lambda: (kept.clear(), sizes.clear())
        cached.cached_bytes = lambda: sum(sizes.values())
        return cached

    return decorate


def _array_bytes(value: object) -> int:
    """Bytes of the NumPy arrays in ``value``, its items and its attributes (one level deep)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_array_bytes(v) for v in value)
    if hasattr(value, "__dict__"):
        return sum(v.nbytes for v in vars(value).values() if isinstance(v, np.ndarray))
    return 0


def _kernel(filter: int, x: np.ndarray) -> np.ndarray:
    """Resample.c's filter functions, evaluated in double with the same operation order."""
    if filter == BOX:
        return np.where((x > -0.5) & (x <= 0.5), 1.0, 0.0)
    ax = np.abs(x)
    if filter == BILINEAR:
        return np.where(ax < 1.0, 1.0 - ax, 0.0)
    if filter == BICUBIC:  # a = -0.5
        near = ((1.5 * ax - 2.5) * ax) * ax + 1.0
        far = (((ax - 5.0) * ax + 8.0) * ax - 4.0) * -0.5
        return np.where(ax < 1.0, near, np.where(ax < 2.0, far, 0.0))
    if filter == HAMMING:
        window = HAMMING_A + HAMMING_B * _libm(math.cos, ax * math.pi)
        return np.where(ax >= 1.0, 0.0, np.where(ax == 0.0, 1.0, _sinc(ax) * window))
    return np.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3), 0.0)  # LANCZOS


def _sinc(x: np.ndarray) -> np.ndarray:
    """sin(pi x) / (pi x), 1 at 0, as Resample.c's sinc_filter."""
    angle = x * math.pi
    zero = angle == 0.0
    return np.where(zero, 1.0, _libm(math.sin, angle) / np.where(zero, 1.0, angle))


def _libm(function: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """The C library's sin/cos (``math``'s), which Pillow calls: NumPy's own when it agrees with them on a
    probe (it calls libm unless built with SIMD versions, which may differ in the last bit)."""
    if _numpy_is_libm():
        return getattr(np, function.__name__)(x)
    return np.frompyfunc(function, 1, 1)(x).astype(np.float64)


@lru_cache(maxsize=1)
def _numpy_is_libm() -> bool:
    probe = np.random.default_rng(0).uniform(-4 * math.pi, 4 * math.pi, 4096)
    return all(
        np.array_equal(getattr(np, f.__name__)(probe), [f(v) for v in probe.tolist()])
        for f in (math.sin, math.cos)
    )


def _axis_scale(in_size: int, out_size: int) -> float:
    """Source pixels per output pixel: _imaging.c passes the box edges as C floats, Resample.c divides in
    double (``(double)(float)(in1 - in0) / outSize``); the float32 rounding matters above 2**24 pixels."""
    return float(np.float32(in_size)) / out_size


def _coefficients(in_size: int, out_size: int, filter: int, lo: int, hi: int) -> tuple[np.ndarray, ...]:
    """Resample.c precompute_coeffs for outputs [lo, hi) only: first source index, tap count and
    normalised double weights per output. Each output's table depends on its own index alone, so the
    cost follows the kept outputs, not the size of the whole resized axis."""
    scale = _axis_scale(in_size, out_size)
    return _coefficients_at(in_size, scale, filter, (np.arange(lo, hi) + 0.5) * scale)


def _coefficients_at(in_size: int, scale: float, filter: int, center: np.ndarray) -> tuple[np.ndarray, ...]:
    """precompute_coeffs for outputs centred at ``center`` (source coordinates, double)."""
    filterscale = max(scale, 1.0)
    support = SUPPORTS[filter] * filterscale
    # (int) casts truncate toward zero; the clamps follow.
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    last = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
    count = last - first
    taps = np.arange(int(count.max()))
    weights = np.empty((len(center), len(taps)))
    rows = max(1, _TABLE_CHUNK // len(taps))  # bounds the temporaries of very long filters
    for r0 in range(0, len(center), rows):
        part = slice(r0, r0 + rows)
        x = ((first[part, None] + taps).astype(np.float64) - center[part, None] + 0.5) * (1.0 / filterscale)
        values = np.where(taps < count[part, None], _kernel(filter, x), 0.0)
        # cumsum adds in order, as the C loop (numpy's pairwise sum could differ in the last bit).
        total = np.cumsum(values, axis=1)[:, -1]
        nonzero = total != 0.0
        values[nonzero] /= total[nonzero, None]
        weights[part] = values
    return first, count, weights


def _fixed_point(weights: np.ndarray) -> np.ndarray:
    """normalize_coeffs_8bpc, in place: round half away from zero to 22 fractional bits (float64 integers).

    copysign turns -0.0 into -0.5, which truncates to 0 as +0.5 does."""
    weights *= float(1 << PRECISION_BITS)
    weights += np.copysign(0.5, weights)
    return np.trunc(weights, out=weights)


@_cached_in_bytes(_PLAN_CACHE_BYTES)
def _plan(
    mode: str, in_size: int, out_size: int, filter: int, lo: int, hi: int, breadth: int
) -> tuple[int, int, object]:
    """What one pass needs to produce outputs [lo, hi): the source span [src_lo, src_hi) and the weights.

    F and I get per-output tap indices and double weights (applied tap by tap); 8-bit modes get a _Pass8,
    whose blocks suit products over ``breadth`` independent rows or columns.
    """
    first, count, weights = _coefficients(in_size, out_size, filter, lo, hi)
    src_lo, src_hi = int(first.min()), int((first + count).max())
    if mode in ("F", "I"):
        taps = np.arange(weights.shape[1])
        index = np.minimum(first[:, None] + taps, src_hi - 1) - src_lo
        return src_lo, src_hi, (index, weights, taps < count[:, None])
    scale = _axis_scale(in_size, out_size)
    return src_lo, src_hi, _Pass8(first - src_lo, count, _fixed_point(weights), scale, breadth)


class _Pass8:
    """One 8-bit pass as a batch of equal band blocks, with the bound that makes float32 rounding provable.

    Outputs are grouped in ``nblocks`` blocks of ``block`` outputs; block i reads ``span`` source pixels
    starting at ``start + i * stride`` of the source axis padded with ``pad_before`` / ``pad_after`` zeros.
    The equal stride lets one strided view and one batched matmul call compute every block.

    The products run in float32; ``_doubt_margins`` says which results need an exact second look (none
    when every tap weighs the same: ``unit``).
    """

    def __init__(self, first, count, fixed, scale: float, breadth: int) -> None:
        self.size, ntaps = fixed.shape
        self.fixed = fixed
        source = int((first + count).max())
        # Filters of thousands of taps (extreme downscales) take one exact float64 product per output:
        # blocks would multiply mostly zeros, and the float32 error bound would say nothing.
        self.direct = ntaps >= _DIRECT_TAPS
        if self.direct:
            block, stride, span, group, starts = 1, 1, 1, 1, (0,)
        else:
            block, stride, span, group, starts = _choose_blocks(first, first + count, scale, breadth)
        self.block, self.stride, self.span, self.group = block, stride, span, group
        self.nblocks = -(-self.size // block)
        self.padded_size = self.nblocks * block
        self.pad_before = max(0, -min(starts))
        self.starts = [start + self.pad_before for start in starts]  # of each group, in the padded axis
        block_starts = np.repeat(self.starts, group)[: self.nblocks] + stride * (
            np.arange(self.nblocks) % group
        )
        self.length = max(self.pad_before + source, int(block_starts.max()) + span)
        self.pad_after = self.length - self.pad_before - source
        self.clips = bool(fixed.min() < 0) or _largest_sum(fixed) + 0.5 >= 256.0
        if self.direct:
            self.first, self.count = first + self.pad_before, count
            return

        outputs = np.arange(self.size)
        taps = np.arange(ntaps)
        used = taps < count[:, None]
        column = first[:, None] + self.pad_before - block_starts[outputs // block][:, None] + taps
        # Stored (nblocks, span, block) and used transposed: with the weights in that layout OpenBLAS takes
        # its small-matrix kernel, which skips packing the source operand (2-3x faster on these shapes).
        stack = np.zeros((self.nblocks, span, block), np.float32)
        where = (
            np.broadcast_to((outputs // block)[:, None], used.shape)[used],
            column[used],
            np.broadcast_to((outputs % block)[:, None], used.shape)[used],
        )
        # When every tap weighs the same (BOX at an integer scale, where float32 rounding would put whole
        # classes of sums within the error bound of a tie), the products add up pixels, exact integers, and
        # _round_into applies the weight in float64.
        weights = fixed[used]
        self.unit = float(weights[0]) * 2.0**-PRECISION_BITS if weights.min() == weights.max() > 0 else None
        stack[where] = 1.0 if self.unit else (weights * 2.0**-PRECISION_BITS).astype(np.float32)
        self.stack = stack.transpose(0, 2, 1)
        # Source positions of every tap in the padded axis, for the exact recomputation.
        self.index = np.minimum(first[:, None] + taps, source - 1) + self.pad_before
        # One margin (the largest) for the rows float32 rounds, 0 for those it computes exactly; the rows of
        # the smaller class, ``minor``, are rounded apart (per-row constants would make every pass a
        # broadcast, which NumPy runs several times slower).
        margins = _doubt_margins(fixed)
        exact_rows = margins == 0
        self.margin, self.minor_margin, self.minor = float(margins.max()), 0.0, None
        if exact_rows.any() and not exact_rows.all():
            self.minor = np.flatnonzero(exact_rows if 2 * exact_rows.sum() <= self.size else ~exact_rows)
            if not exact_rows[self.minor[0]]:
                self.margin, self.minor_margin = self.minor_margin, self.margin
            self.is_minor = np.zeros(self.padded_size, bool)
            self.is_minor[self.minor] = True
        self.always_exact = self.unit is not None or (self.margin == 0 and self.minor is None)

    def products(self, src: np.ndarray, axis: int) -> np.ndarray:
        """Direct plans: the exact accumulations (before rounding), outputs along ``axis`` of ``src``.

        Pixels times 22-bit weights are integers below 2**31, so float64 sums are exact in any order.
        """
        moved = np.moveaxis(src, axis, 0)
        acc = np.empty((self.padded_size,) + moved.shape[1:])
        for i, (lo, n) in enumerate(zip(self.first.tolist(), self.count.tolist(), strict=True)):
            acc[i] = np.tensordot(self.fixed[i, :n], moved[lo : lo + n].astype(np.float64), axes=1)
        return acc

    def pad(self, values: np.ndarray, axis: int) -> None:
        """Zero the padding of ``values`` along ``axis`` (the source occupies the middle)."""
        index = [slice(None)] * values.ndim
        index[axis] = slice(0, self.pad_before)
        values[tuple(index)] = 0
        index[axis] = slice(self.length - self.pad_after, self.length)
        values[tuple(index)] = 0

    def groups_of(self, values: np.ndarray, axis: int) -> Iterator[tuple[slice, np.ndarray]]:
        """Per group of blocks: its slice of the blocks, and a read-only view of ``values`` (padded source
        along ``axis``) with the block index in front and each block's ``span`` source pixels along
        ``axis``."""
        step = values.strides[axis]
        shape = list(values.shape)
        shape[axis] = self.span
        strides = (self.stride * step, *values.strides)
        for g, start in enumerate(self.starts):
            blocks = slice(g * self.group, min(self.nblocks, (g + 1) * self.group))
            origin = [slice(None)] * values.ndim
            origin[axis] = slice(start, None)
            count = blocks.stop - blocks.start
            yield (
                blocks,
                np.lib.stride_tricks.as_strided(
                    values[tuple(origin)], (count, *shape), strides, writeable=False
                ),
            )


def _largest_sum(fixed: np.ndarray) -> float:
    """The largest value a pass can produce before clipping: 255 times the largest sum of |weights|.

    Without negative weights and with row sums of at most 2**22 (+ rounding slack) no output leaves
    [0, 255], so the saturation of clip8 can be skipped."""
    return 255.0 * float(np.abs(fixed).sum(axis=1).max()) * 2.0**-PRECISION_BITS


def _doubt_margins(fixed: np.ndarray) -> np.ndarray:
    """Per output: how close to a rounding edge a float32 result may lie before ``_round_into`` has it
    recomputed exactly; 0 where float32 computes it exactly.

    The fixed point weights scaled by 2**-22 are exact in float32 (integers below 2**24 times a power of
    two). When a row's weights share a power-of-two factor large enough that every partial sum (and
    acc + 1/2) fits in 24 bits, float32 computes that row exactly: margin 0 (such rows, e.g. the halves of
    a 2x BOX, hit exact .5 ties all the time). Otherwise products and sums are rounded, by at most
    gamma(taps + 1) * 255 * sum|w| in any summation order, with or without FMA: 0 * p and s + 0 are
    exact, so each nonzero product meets at most ``taps`` roundings however BLAS blocks the band.
    Adding 1/2 - margin rounds by half an ulp; the margin is twice all of that.
    """
    ntaps = fixed.shape[1]
    magnitude = np.abs(fixed)
    total = magnitude.sum(axis=1)
    largest = 255.0 * total * 2.0**-PRECISION_BITS
    ints = magnitude.astype(np.int64)
    lowest_bit = np.where(ints > 0, ints & -ints, 1 << 40).min(axis=1)
    exact = (255.0 * total / lowest_bit < 2.0**24) & (
        largest + 0.5 < lowest_bit * 2.0 ** (24 - PRECISION_BITS)
    )
    gamma = (ntaps + 1) * _F32_EPS / (1 - (ntaps + 1) * _F32_EPS)
    # 2**-20 covers the float32 rounding of the two constants of _floor_half.
    bound = 2 * gamma * largest + (largest + 1) * 2.0**-23 + 2.0**-20
    return np.where(exact, 0.0, bound)


def _choose_blocks(first: np.ndarray, last: np.ndarray, scale: float, breadth: int) -> tuple:
    """(block, stride, span, group, starts) minimising calls and multiplied zeros for ``breadth``
    rows/columns.

    Block i covers outputs [i*block, (i+1)*block) and reads ``span`` source pixels from
    ``starts[i // group] + (i % group) * stride``: blocks advance by the whole ``stride`` within a group of
    ``group`` blocks (one strided view, one batched product) and each group starts afresh, so that the
    fraction of ``block * scale`` dropped from the stride does not pile up over all the blocks and widen
    every block's span. Candidates are ranked with an estimated span; the best few are measured exactly.
    """
    size = len(first)
    taps = int((last - first).max())
    # Blocks read at most 8 times the taps of an output, so the weights stored stay within 8 times the
    # coefficient table, whatever the cost model says of images one pixel wide.
    blocks = np.arange(1, min(size, 512, int(7 * taps / scale) + 1) + 1)
    nblocks = -(-size // blocks)
    drift = blocks * scale - np.floor(blocks * scale)
    best = None
    for groups in (1, None):  # the best blocks of one group, and of groups without drift
        per_group = nblocks if groups else 1
        estimate = (blocks - 1) * scale + taps + per_group * drift
        cost = _product_cost(breadth, nblocks, -(-nblocks // per_group), blocks, estimate)
        for block in blocks[np.argsort(cost)[:4]].tolist():
            best = min(best or (math.inf,), _measured_blocks(first, last, scale, breadth, block))
    return best[1:]


def _measured_blocks(first: np.ndarray, last: np.ndarray, scale: float, breadth: int, block: int) -> tuple:
    """(cost, block, stride, span, group, starts) of the best group size for ``block``."""
    size = len(first)
    count = -(-size // block)
    fill = count * block - size
    lo = np.concatenate([first, np.full(fill, first[-1])]).reshape(count, block).min(axis=1)
    hi = np.concatenate([last, np.full(fill, last[-1])]).reshape(count, block).max(axis=1)
    stride = int(block * scale)
    # The weights stored take 4 * span bytes per output: groups whose drift would more than double the
    # span a block needs are not taken (one-pixel-wide images favour few groups, whatever the zeros).
    needed = int((hi - lo).max())
    best: tuple = (math.inf,)
    group = count
    while True:
        local = stride * (np.arange(count) % group)
        ngroups = -(-count // group)
        padded = np.full(ngroups * group, np.iinfo(np.int64).max)
        padded[:count] = lo - local
        starts = padded.reshape(ngroups, group).min(axis=1)
        span = int((hi - local - np.repeat(starts, group)[:count]).max())
        cost = _product_cost(breadth, count, ngroups, block, span) if span <= 2 * needed else math.inf
        best = min(best, (cost, block, stride, span, group, tuple(starts.tolist())))
        if group == 1:
            return best
        group = max(1, group // 2)


def _product_cost(breadth: int, nblocks, ngroups, block, span):
    """Estimated ns of a pass's products over ``breadth`` rows (or arrays of candidates): each product is
    kept below _SINGLE_THREAD_MNK, so a wide band takes several calls."""
    calls = np.ceil(breadth / np.clip(_SINGLE_THREAD_MNK // (span * block), 1, breadth))
    width = np.where(block == 1, 0.4, np.ceil(block / 16))
    overhead = calls * (_CALL_NS + ngroups * _GROUP_NS + nblocks * _BLOCK_NS)
    return overhead + _PIXEL_NS * breadth * nblocks * span * width


# ----------------------------------------------------------------------------------------- 8-bit modes


def _premultiply(values: np.ndarray, axis: int) -> None:
    """Convert.c rgbA2rgba / lA2la in place on float32: colour = MULDIV255(colour, alpha) = round(c*a/255).

    c * a / 255 is never a tie (255 is odd) and lies at least 1/510 from one, far beyond the float32
    rounding of c * a * (1/255), so rint() gives Pillow's integer. The alpha channel is last along ``axis``.
    """
    channels = np.moveaxis(values, axis, 0)
    colour, alpha = channels[:-1], channels[-1:]
    np.multiply(colour, alpha, out=colour)
    np.multiply(colour, np.float32(1 / 255), out=colour)
    np.rint(colour, out=colour)


def _unpremultiply(values: np.ndarray, axis: int) -> None:
    """Convert.c rgba2rgbA / la2lA in place on float32 holding bytes: colour = min(255, 255 * c // alpha),
    untouched when alpha is 0 or 255.

    255 * c / alpha in float32 is exact when it is an integer and otherwise at least 1/alpha from one,
    so floor() of it is the integer division; for alpha 255 it gives c back, so only alpha 0 is masked.
    """
    channels = np.moveaxis(values, axis, 0)
    colour, alpha = channels[:-1], channels[-1:]
    restored = np.multiply(colour, np.float32(255), out=_SCRATCH.take("unpremultiplied", colour.shape))
    np.divide(restored, np.maximum(alpha, 1), out=restored)
    np.floor(restored, out=restored)
    np.minimum(restored, 255, out=restored)
    np.copyto(colour, restored, where=alpha != 0)


def _round_into(acc: np.ndarray, out: np.ndarray, plan: _Pass8, exact) -> None:
    """out = clip8 of a float32 pass result: floor(acc + 1/2) saturated to [0, 255], provably Pillow's.

    ``acc`` (contiguous) and ``out`` (any view, float32 or uint8) hold the same number of elements with the
    outputs along their first axis; ``acc`` is overwritten. Outputs whose fraction lies within the error
    bound of a rounding edge are replaced by ``exact(positions)`` (flat indices into ``acc``).
    """
    values = acc.reshape(out.shape)
    # Strided ufunc loops run at half speed: a strided output is written by one copy at the end.
    direct = out.dtype == np.float32 and out.flags.c_contiguous
    rounded = out if direct else _SCRATCH.take("rounded", values.shape)
    if plan.unit is not None:  # exact sums of pixels: (sum * weight + 2**21) >> 22 is exact in float64
        values = np.multiply(values, np.float64(plan.unit), out=_SCRATCH.take("sums", out.shape, np.float64))
        doubtful = _floor_half(values, rounded, 0.0, plan.clips)
    else:
        minor = values[plan.minor] if plan.minor is not None else None  # a copy, before values change
        doubtful = _floor_half(values, rounded, plan.margin, plan.clips)
        if minor is not None:
            row = values[0].size
            minor_rounded = _SCRATCH.take("minor rounded", minor.shape)
            local = _floor_half(minor, minor_rounded, plan.minor_margin, plan.clips)
            rounded[plan.minor] = minor_rounded
            if local is not None:
                doubtful = plan.minor[local // row] * row + local % row
            elif doubtful is not None:  # minor rows are exact: whatever the check said of them
                doubtful = doubtful[~plan.is_minor[doubtful // row]]
    if doubtful is not None and len(doubtful):
        fixed = exact(doubtful)
        if plan.clips:
            np.clip(fixed, 0.0, 255.0, out=fixed)
        rounded.reshape(-1)[doubtful] = fixed
    if rounded is not out:
        np.copyto(out, rounded, casting="unsafe")


def _floor_half(values: np.ndarray, rounded: np.ndarray, margin: float, clips: bool) -> np.ndarray | None:
    """rounded = clip(floor(values + 1/2), 0, 255) where that is provably the exact value's; returns the
    flat indices of the others (None when ``margin`` is 0: ``values`` are exact). ``values`` is overwritten.

    u = values + 1/2 - margin: floor(u) is floor(values + 1/2) unless the fraction of values + 1/2 lies
    within the margin of 0 or 1, which is exactly when the fraction of u exceeds 1 - 2 * margin.
    """
    np.add(values, np.float32(0.5 - margin), out=values)
    if clips:  # floor(clip(u, 1/4, 255 + 1/4)) = clip(floor(u), 0, 255); saturated outputs are never doubtful
        np.clip(values, 0.25, 255.25, out=values)
    np.floor(values, out=rounded)
    if margin == 0:
        return None
    np.subtract(values, rounded, out=values)
    return np.flatnonzero(values > np.float32(1 - 2 * margin))


def _exact_8bit(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The int32 accumulation and >> 22 of Resample.c, in float64 (exact), before clipping."""
    return _shift_8bit(np.einsum("ij,ij->i", values.astype(np.float64), weights))


def _shift_8bit(acc: np.ndarray) -> np.ndarray:
    """(acc + 2**21) >> 22 on exact float64 accumulations."""
    return np.floor((acc + 2.0 ** (PRECISION_BITS - 1)) * 2.0**-PRECISION_BITS)


def _direct_pass(src: np.ndarray, plan: _Pass8, axis: int, out: np.ndarray) -> None:
    """A direct plan's pass: ``src`` holds the source along ``axis`` -> ``out`` (padded_size, ...)."""
    rounded = _shift_8bit(plan.products(src, axis))
    np.clip(rounded, 0.0, 255.0, out=rounded)
    np.copyto(out, rounded.reshape(out.shape), casting="unsafe")


class _Scratch(threading.local):
    """Per-thread work buffers (float32 unless asked), reused from call to call.

    Freshly allocated arrays of a few hundred KB cost more than the arithmetic done in them here: glibc
    returns freed memory at the top of the heap to the system, so every call would page-fault it back in.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        size = math.prod(shape)
        if size * np.dtype(dtype).itemsize > _SCRATCH_KEPT:  # the work dwarfs the page faults: not kept
            return np.empty(shape, dtype)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)


_SCRATCH = _Scratch()

# OpenBLAS 0.3.31's small-matrix kernel (which the weights' layout selects) returned wrong sums about once in
# 600 calls when two threads ran it at once: the banded products take turns, everything around them does not.
_BLAS_LOCK = threading.Lock()


def _banded_matmul(weights: np.ndarray, source: np.ndarray, out: np.ndarray) -> None:
    with _BLAS_LOCK:
        np.matmul(weights, source, out=out)


class _Parallelism(threading.local):
    threads = 1


_PARALLELISM = _Parallelism()
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


@contextmanager
def parallel(threads: int) -> Iterator[None]:
    """Let resizes on this thread split their work over ``threads`` threads (NumPy and BLAS release the
    GIL); only images with enough work to pay for the hand-off are split."""
    previous, _PARALLELISM.threads = _PARALLELISM.threads, max(1, int(threads))
    try:
        yield
    finally:
        _PARALLELISM.threads = previous


def _in_parallel(starts: range, body: Callable[[int], None], work: int) -> None:
    """``body(start)`` for every start, split into contiguous groups over the threads ``parallel`` allows
    when ``work`` (pixels read) is large enough."""
    threads = min(_PARALLELISM.threads, len(starts))
    if threads <= 1 or work < _PARALLEL_WORK:
        for start in starts:
            body(start)
        return

    def group(i: int) -> None:
        for start in starts[len(starts) * i // threads : len(starts) * (i + 1) // threads]:
            body(start)

    futures = [_pool(threads - 1).submit(group, i) for i in range(1, threads)]
    group(0)
    for future in futures:
        future.result()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL or _POOL[0]._max_workers < workers:
            _POOL[:] = [ThreadPoolExecutor(workers, thread_name_prefix="edgeinfer-resample")]
        return _POOL[0]


def _pass_along_rows(src: np.ndarray, plan: _Pass8, out: np.ndarray) -> None:
    """Resample along the last axis: ``src`` (M, plan.length) padded float32 -> ``out`` (padded_size, M).

    One batched product over the strided block view; the result comes out transposed (outputs first),
    which is the layout the other pass wants. The caller keeps M * span * block single-threaded.
    """
    if plan.direct:
        _direct_pass(src, plan, 1, out)
        return
    acc = _SCRATCH.take("acc", (plan.nblocks, plan.block, src.shape[0]))
    for blocks, view in plan.groups_of(src, 1):
        _banded_matmul(plan.stack[blocks], view.transpose(0, 2, 1), out=acc[blocks])

    def exact(doubtful):
        row, col = np.divmod(doubtful, src.shape[0])
        taps = np.take(src.reshape(-1), col[:, None] * src.shape[1] + plan.index[row])
        return _exact_8bit(taps, plan.fixed[row])

    _round_into(acc, out, plan, exact)


def _pass_along_columns(src: np.ndarray, plan: _Pass8, out: np.ndarray) -> None:
    """Resample along the first axis: ``src`` (R, W, C) interleaved pixels -> ``out`` (padded_size, W*C).

    Used when the vertical pass comes first. Strips of whole pixels are widened and padded in a small
    reused buffer, which also keeps each product single-threaded.
    """
    if plan.direct:
        _direct_pass(src, plan, 0, out)
        return
    total, channels = src.shape[1:]
    per_call = min(_SINGLE_THREAD_MNK // (plan.span * plan.block), _STRIP_BYTES // (4 * plan.length))
    step = max(1, per_call // channels)

    def strip(p0: int) -> None:
        pixels = min(step, total - p0)
        c0, width = p0 * channels, pixels * channels
        strip = _SCRATCH.take("strip", (plan.length, width))
        plan.pad(strip, 0)
        inner = strip[plan.pad_before : plan.length - plan.pad_after]
        np.copyto(inner.reshape(src.shape[0], pixels, channels), src[:, p0 : p0 + pixels])
        acc = _SCRATCH.take("acc", (plan.nblocks, plan.block, width))
        for blocks, view in plan.groups_of(strip, 0):
            _banded_matmul(plan.stack[blocks], view, out=acc[blocks])

        def exact(doubtful):
            row, col = np.divmod(doubtful, width)
            taps = np.take(strip.reshape(-1), plan.index[row] * width + col[:, None])
            return _exact_8bit(taps, plan.fixed[row])

        _round_into(acc, out[:, c0 : c0 + width], plan, exact)

    _in_parallel(range(0, total, step), strip, total * channels * plan.length)


def _whole_pixels(src: np.ndarray) -> np.ndarray:
    """``src`` (R, W, 3) bytes as (R, W, 4) when its pixels are four bytes apart in a larger array (how
    Pillow stores RGB) that holds the fourth byte of each; else ``src``."""
    words = _pixel_words(src) if src.shape[2] == 3 and src.dtype == np.uint8 else None
    return src if words is None else words.view(np.uint8).reshape(src.shape[:2] + (4,))


def _horizontal_8bit(src: np.ndarray, plan: _Pass8, out: np.ndarray, premultiply: bool) -> None:
    """(R, W, C) -> ``out`` (padded_size, C, R), the image transposed (``out`` may be any view).

    A strip of rows at a time is made planar, (C*rows, W) plus padding, in a reused buffer that stays in
    cache (alpha is premultiplied there, where each channel is contiguous), and resampled along its rows.
    """
    height, width, channels = src.shape
    per_call = _SINGLE_THREAD_MNK // (channels * plan.span * plan.block)
    rows = min(height, max(1, min(per_call, _STRIP_BYTES // (4 * plan.length * channels))))

    def strip(r0: int) -> None:
        n = min(rows, height - r0)
        planes = _SCRATCH.take("planes", (channels, n, plan.length))
        plan.pad(planes, 2)
        inner = planes[:, :, plan.pad_before : plan.pad_before + width]
        if channels == 1 or src.dtype != np.uint8:
            np.copyto(inner, src[r0 : r0 + n].transpose(2, 0, 1))
        else:  # de-interleaving bytes, then widening contiguous planes, beats doing both in one copy
            planar = _SCRATCH.take("planar bytes", (channels, n, width), np.uint8)
            np.copyto(planar, src[r0 : r0 + n].transpose(2, 0, 1))
            np.copyto(inner, planar)
        if premultiply:
            _premultiply(inner, 0)
        _pass_along_rows(planes.reshape(channels * n, plan.length), plan, out[:, :, r0 : r0 + n])

    _in_parallel(range(0, height, rows), strip, height * channels * plan.length)


def _vertical_8bit(src: np.ndarray, plan: _Pass8, out: np.ndarray) -> None:
    """Rows of the transposed image, (M, plan.length) padded float32 -> ``out`` (padded_size, M)."""
    step = max(1, _SINGLE_THREAD_MNK // (plan.span * plan.block))

    def strip(m0: int) -> None:
        _pass_along_rows(src[m0 : m0 + step], plan, out[:, m0 : m0 + step])

    _in_parallel(range(0, src.shape[0], step), strip, src.shape[0] * plan.length)


def _resample_8bit(
    bands, shape: tuple[int, ...], mode: str, h_plan, v_plan, vertical_first: bool
) -> np.ndarray:
    """The two passes on a uint8 window of ``shape`` (R, W[, C]), given as bands of rows (first row, array);
    intermediates are float32 holding exact integers. The horizontal pass reads the bands one by one,
    so a PIL image is never copied whole; the vertical pass needs a single band.

    Layouts are chosen so that no step iterates over the few channels of an interleaved pixel, which
    NumPy does slowly: LA/RGBA keep each channel contiguous (channel-major) until the end.
    """
    alpha = mode in ("LA", "RGBA")
    ndim = len(shape)
    height, width, channels = shape if ndim == 3 else shape + (1,)
    if v_plan is not None and (vertical_first or h_plan is None):
        ((_, window),) = bands
        values = window if ndim == 3 else window[:, :, None]
        if alpha:  # rare (tall LA/RGBA images): premultiply the interleaved window
            values = values.astype(np.float32)
            _premultiply(values, 2)
        # Pillow's 3-channel pixels take 4 bytes: resampling all 4 lets the pass widen contiguous rows, which
        # is several times faster than skipping every fourth byte; the fourth channel is dropped after.
        src = _whole_pixels(values)
        shape = (v_plan.padded_size, width, src.shape[2])
        last = h_plan is None and not alpha  # then the pass writes the uint8 result directly
        out = np.empty(shape, np.uint8) if last else _SCRATCH.take("vertical out", shape)
        _pass_along_columns(src, v_plan, out.reshape(v_plan.padded_size, -1))
        values, height, v_plan = out[: v_plan.size, :, :channels], v_plan.size, None
        if h_plan is None:
            if alpha:
                _unpremultiply(values, 2)
            return _as_image(values if src is values else values.copy(), ndim)
        premultiply = False
        bands = [(0, values)]
    else:
        premultiply = alpha

    # The horizontal result is the image transposed, (w, C, rows), or (C, w, rows) for alpha modes; with a
    # vertical pass to come, it goes straight into the zero-padded rows that pass reads.
    rows = v_plan.length if v_plan is not None else height
    shape = (channels, h_plan.padded_size, rows) if alpha else (h_plan.padded_size, channels, rows)
    transposed = _SCRATCH.take("horizontal out", shape)
    as_wcr = transposed.transpose(1, 0, 2) if alpha else transposed
    first_row = 0 if v_plan is None else v_plan.pad_before
    if v_plan is not None:
        v_plan.pad(transposed, 2)
    for r0, band in bands:
        rows_in = as_wcr[:, :, first_row + r0 : first_row + r0 + len(band)]
        _horizontal_8bit(band if band.ndim == 3 else band[:, :, None], h_plan, rows_in, premultiply)
    if v_plan is None:
        upright = transposed[:, : h_plan.size] if alpha else transposed[: h_plan.size]
        if alpha:
            _unpremultiply(upright, 0)
        return _as_image(upright.transpose(2, 1, 0) if alpha else upright.transpose(2, 0, 1), ndim)

    if not alpha:  # the vertical pass writes the uint8 result directly
        out = np.empty((v_plan.padded_size, h_plan.size, channels), np.uint8)
        _vertical_8bit(
            transposed[: h_plan.size].reshape(-1, rows), v_plan, out.reshape(v_plan.padded_size, -1)
        )
        return _as_image(out[: v_plan.size], ndim)
    planar = _SCRATCH.take("vertical out", (v_plan.padded_size, channels, h_plan.size))
    for channel in range(channels):
        _vertical_8bit(transposed[channel, : h_plan.size], v_plan, planar[:, channel])
    upright = planar[: v_plan.size]
    _unpremultiply(upright, 1)
    return _as_image(upright.transpose(0, 2, 1), ndim)


def _as_image(values: np.ndarray, ndim: int) -> np.ndarray:
    """``values`` (rows, columns, channels) as a new uint8 image, HxW when the input was."""
    if values.dtype != np.uint8:
        out = np.empty(values.shape, np.uint8)
        np.copyto(out, values, casting="unsafe")
        values = out
    return values if ndim == 3 else values[:, :, 0]


# -------------------------------------------------------------------------------------------- F and I


def _apply_32bit(values: np.ndarray, plan, axis: int, mode: str) -> np.ndarray:
    """Resample.c *_32bpc: a double sum over the taps in order, stored as float32 (F) or rounded int32 (I)."""
    index, weights, used = plan
    acc = None
    for j in range(weights.shape[1]):
        taken = np.take(values, index[:, j], axis=axis).astype(np.float64)
        w = weights[:, j] if axis == 1 else weights[:, j, None]
        step = taken * w
        if acc is None:
            acc = 0.0 + step  # ss starts at 0.0, which turns a -0.0 product into +0.0
        else:
            u = used[:, j] if axis == 1 else used[:, j, None]
            acc = np.where(u, acc + step, acc)
    if mode == "F":
        return acc.astype(np.float32)
    # ROUND_UP: add or subtract one half, then truncate toward zero.
    return np.trunc(np.where(acc >= 0.0, acc + 0.5, acc - 0.5)).astype(np.int32)


def _resample_32bit(window: np.ndarray, mode: str, h_plan, v_plan, vertical_first: bool) -> np.ndarray:
    passes = [(1, h_plan), (0, v_plan)]
    if vertical_first:
        passes.reverse()
    values = window
    for axis, plan in passes:
        if plan is not None:
            values = _apply_32bit(values, plan, axis, mode)
    return values
