"""Pillow's ``Image.resize`` re-implemented in NumPy, bit-exact.

Reproduces ``PIL.Image.Image.resize((w, h), filter)`` (no box, no reducing_gap: what torchvision calls) for
the modes L, LA, RGB, RGBA (uint8), F (float32) and I (int32): Pillow's coefficient tables, the 22-bit fixed
point arithmetic of 8-bit images, the rounded intermediate image between the two passes, the order of the
passes, alpha premultiplication and the incremental index arithmetic of NEAREST.

Speed comes from caching the coefficient tables per geometry and applying them as banded matrix products
(BLAS, float64: every product and partial sum of the fixed point arithmetic is an integer far below 2**53,
so the float result equals Pillow's int32 one) and from computing only the requested output ``region``.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5
PASS_ORDERS = ("pillow13", "pillow12")

_SUPPORTS = {BOX: 0.5, BILINEAR: 1.0, HAMMING: 1.0, BICUBIC: 2.0, LANCZOS: 3.0}
_FILTER_NAMES = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}
_CHANNEL_MODES = {2: "LA", 3: "RGB", 4: "RGBA"}
_PRECISION_BITS = 22  # Resample.c: 32 - 8 (pixel) - 2 (headroom for negative lobes and overshoot)
# Hamming's 0.54 and 0.46 are float32 literals in Resample.c, promoted to double.
_HAMMING_A = float(np.float32(0.54))
_HAMMING_B = float(np.float32(0.46))
# The overhead of one matrix product call, in multiply-adds (about 2 us at 25 GFMA/s). Blocks of the banded
# product are sized to balance it against the zeros multiplied outside the band.
_CALL_COST = 50_000
_F32_EPS = 2.0**-24  # unit roundoff of float32
# OpenBLAS runs a gemm with m*n*k up to this on the calling thread. Waking its worker threads costs more
# than these banded products gain, and on a busy machine a sleeping worker can stall a call for a whole
# scheduler time slice, so every product is kept below it.
_SINGLE_THREAD_MNK = 65536 * 4
_STRIP_BYTES = 1 << 20  # float32 strip buffers small enough to stay in cache


def resize(
    img: np.ndarray,
    size: tuple[int, int],
    filter: int,
    *,
    pass_order: str = "pillow13",
    region: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Resize ``img`` to ``size`` = (height, width) exactly as Pillow's ``Image.resize`` does.

    Args:
        img: uint8 HxW (L), HxWx2 (LA), HxWx3 (RGB), HxWx4 (RGBA); float32 HxW (F) or int32 HxW (I).
        size: output (height, width), both >= 1.
        filter: Pillow's filter code: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING.
        pass_order: "pillow13" (Pillow 13 runs the vertical pass first for tall downscales) or
            "pillow12" (horizontal pass always first, Pillow <= 12).
        region: optional (top, left, height, width) window of the output; only that window is computed,
            bit-identical to resizing fully and slicing.

    Returns:
        A new array of the input's dtype and channel count, shaped like the output (or the region).

    Raises:
        TypeError: ``img`` is not an array of a supported dtype, or an argument has the wrong type.
        ValueError: wrong shape or channel count, empty image, bad size, filter, pass order or region.
    """
    mode = _image_mode(img)
    out_h, out_w = _check_size(size)
    filter = _check_filter(filter)
    if pass_order not in PASS_ORDERS:
        raise ValueError(f"pass_order must be one of {PASS_ORDERS}, got {pass_order!r}")
    top, left, reg_h, reg_w = _check_region(region, out_h, out_w)
    in_h, in_w = img.shape[:2]

    if (in_h, in_w) == (out_h, out_w):  # Image.resize returns a copy
        return img[top : top + reg_h, left : left + reg_w].copy()
    if filter == NEAREST:
        return _resize_nearest(img, out_h, out_w, top, left, reg_h, reg_w)

    need_h, need_v = out_w != in_w, out_h != in_h
    vertical_first = need_h and need_v and _vertical_first(pass_order, in_h, in_w, out_h, out_w)
    channels = img.shape[2] if img.ndim == 3 else 1
    # How many independent rows (columns) each product of the horizontal (vertical) pass works on.
    h_breadth = channels * min(in_h, _STRIP_BYTES // (4 * in_w * channels))
    v_breadth = reg_w if need_h and not vertical_first else in_w * channels
    if need_v:
        row_lo, row_hi, v_plan = _plan(mode, in_h, out_h, filter, top, top + reg_h, _bucket(v_breadth))
    else:
        row_lo, row_hi, v_plan = top, top + reg_h, None
    if need_h:
        col_lo, col_hi, h_plan = _plan(mode, in_w, out_w, filter, left, left + reg_w, _bucket(h_breadth))
    else:
        col_lo, col_hi, h_plan = left, left + reg_w, None

    window = img[row_lo:row_hi, col_lo:col_hi]
    if mode in ("F", "I"):
        return _resample_32bit(window, mode, h_plan, v_plan, vertical_first)
    return _resample_8bit(window, mode, h_plan, v_plan, vertical_first)


def _bucket(breadth: int) -> int:
    """Round up to a power of two (at most 4096), so that plans are shared between similar images."""
    return 1 << min(12, max(0, breadth - 1).bit_length())


def _vertical_first(pass_order: str, in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow 13 resizes vertically first when the height shrinks much more than the width."""
    if pass_order == "pillow12":
        return False
    return out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)


# ---------------------------------------------------------------------------------------------- arguments


def _image_mode(img: object) -> str:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"img must be a numpy.ndarray, got {type(img).__name__}")
    if img.ndim not in (2, 3):
        raise ValueError(f"img must be HxW or HxWxC, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"img is empty: shape {img.shape}")
    if img.dtype == np.uint8:
        if img.ndim == 2:
            return "L"
        if img.shape[2] in _CHANNEL_MODES:
            return _CHANNEL_MODES[img.shape[2]]
        raise ValueError(f"uint8 img must have 2, 3 or 4 channels (LA, RGB, RGBA), got shape {img.shape}")
    if img.dtype in (np.float32, np.int32):
        if img.ndim != 2:
            raise ValueError(f"{img.dtype} img must be HxW (mode F or I), got shape {img.shape}")
        return "F" if img.dtype == np.float32 else "I"
    raise TypeError(f"img dtype must be uint8, float32 or int32, got {img.dtype}")


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
    if code not in _FILTER_NAMES:
        raise ValueError(f"filter must be one of {_FILTER_NAMES} (Pillow codes), got {filter!r}")
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


def _nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output pixel, as Geometry.c's ImagingScaleAffine computes it.

    The position starts at scale/2 and grows by repeated double additions of scale (cumsum is sequential,
    like the C loop); (int) truncates. Indices outside the source mean Pillow's zero fill.
    """
    scale = in_size / out_size
    steps = np.full(out_size, scale)
    steps[0] = scale * 0.5
    return np.cumsum(steps).astype(np.int64)


def _resize_nearest(
    img: np.ndarray, out_h: int, out_w: int, top: int, left: int, reg_h: int, reg_w: int
) -> np.ndarray:
    rows = _nearest_indices(img.shape[0], out_h)[top : top + reg_h]
    cols = _nearest_indices(img.shape[1], out_w)[left : left + reg_w]
    row_ok, col_ok = rows < img.shape[0], cols < img.shape[1]
    out = img[np.where(row_ok, rows, 0)][:, np.where(col_ok, cols, 0)]
    if not (row_ok.all() and col_ok.all()):
        out[~row_ok] = 0
        out[:, ~col_ok] = 0
    return out


# -------------------------------------------------------------------------------------------- coefficients


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
    # The sine-based filters use libm (math) like Pillow does, so the tables match to the last bit.
    if filter == HAMMING:
        values = [_hamming(v) for v in ax.ravel().tolist()]
    else:
        values = [_lanczos(v) for v in x.ravel().tolist()]
    return np.array(values, dtype=np.float64).reshape(x.shape)


def _hamming(x: float) -> float:
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * math.pi
    return math.sin(x) / x * (_HAMMING_A + _HAMMING_B * math.cos(x))


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@lru_cache(maxsize=256)
def _coefficients(in_size: int, out_size: int, filter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample.c precompute_coeffs: per output, first source index, tap count, normalised double weights."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORTS[filter] * filterscale
    center = (np.arange(out_size) + 0.5) * scale
    # (int) casts truncate toward zero; the clamps follow.
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    last = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
    count = last - first
    taps = np.arange(int(count.max()))
    x = ((first[:, None] + taps).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    used = taps < count[:, None]
    weights = np.where(used, _kernel(filter, x), 0.0)
    total = np.zeros(out_size)
    for j in taps:  # sequential sum, as the C loop (numpy's pairwise sum could differ in the last bit)
        total = total + weights[:, j]
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    return first, count, weights


def _fixed_point(weights: np.ndarray) -> np.ndarray:
    """normalize_coeffs_8bpc: round half away from zero to 22 fractional bits (as float64 integers)."""
    scaled = weights * float(1 << _PRECISION_BITS)
    return np.trunc(np.where(weights < 0, scaled - 0.5, scaled + 0.5))


@lru_cache(maxsize=256)
def _plan(
    mode: str, in_size: int, out_size: int, filter: int, lo: int, hi: int, breadth: int
) -> tuple[int, int, object]:
    """What one pass needs to produce outputs [lo, hi): the source span [src_lo, src_hi) and the weights.

    F and I get per-output tap indices and double weights (applied tap by tap); 8-bit modes get a _Pass8,
    whose blocks suit products over ``breadth`` independent rows or columns.
    """
    first, count, weights = _coefficients(in_size, out_size, filter)
    first, count, weights = first[lo:hi], count[lo:hi], weights[lo:hi]
    src_lo, src_hi = int(first.min()), int((first + count).max())
    taps = np.arange(weights.shape[1])
    index = np.minimum(first[:, None] + taps, src_hi - 1) - src_lo
    if mode in ("F", "I"):
        return src_lo, src_hi, (index, weights, taps < count[:, None])
    scale = in_size / out_size
    return src_lo, src_hi, _Pass8(first - src_lo, count, index, _fixed_point(weights), scale, breadth)


class _Pass8:
    """One 8-bit pass as banded float32 matrix products, with the bound that makes its rounding provable.

    The fixed point weights scaled by 2**-22 are exact in float32 (integers below 2**24 times a power of
    two); products and sums are rounded, by at most gamma(taps + 1) * 255 * sum|w| in any summation order
    (zero terms add no error). Wherever acc + 1/2 lies farther than twice that from an integer, floor() of
    the float32 result is Pillow's int32 result; the few outputs closer than that are recomputed exactly
    in float64 (integers far below 2**53).
    """

    def __init__(self, first, count, index, fixed, scale: float, breadth: int) -> None:
        self.index, self.fixed, self.size = index, fixed, len(first)
        ntaps = fixed.shape[1]
        # Minimises calls * _CALL_COST + breadth * outputs * (block * scale + ntaps) multiply-adds.
        per_block = max(1, int(round(math.sqrt(_CALL_COST / (breadth * scale)))))
        scaled = (fixed * 2.0**-_PRECISION_BITS).astype(np.float32)
        taps = np.arange(ntaps)
        blocks = []
        for o0 in range(0, self.size, per_block):
            o1 = min(self.size, o0 + per_block)
            s0, s1 = int(first[o0:o1].min()), int((first[o0:o1] + count[o0:o1]).max())
            matrix = np.zeros((o1 - o0, s1 - s0), np.float32)
            rows = np.repeat(np.arange(o1 - o0), ntaps)
            used = (taps < count[o0:o1, None]).ravel()
            cols = (first[o0:o1, None] - s0 + taps).ravel()
            matrix[rows[used], cols[used]] = scaled[o0:o1].ravel()[used]
            blocks.append((o0, o1, s0, s1, matrix, np.ascontiguousarray(matrix.T)))
        self.blocks = tuple(blocks)
        self.band = max(m.size for *_, m, _ in blocks)
        gamma = (ntaps + 1) * _F32_EPS / (1 - (ntaps + 1) * _F32_EPS)
        largest = 255.0 * float(np.abs(fixed).sum(axis=1).max()) * 2.0**-_PRECISION_BITS
        # "+ 1/2" in float32 adds at most half an ulp of the result (< (largest + 1) * 2**-24).
        self.limit = 0.5 - (2 * gamma * largest + (largest + 1) * 2.0**-23)
        # Without negative weights and with row sums of at most 2**22 (+ rounding slack) no output leaves
        # [0, 255], so the saturation of clip8 can be skipped.
        self.clips = bool(fixed.min() < 0) or largest + 0.5 >= 256.0


# ----------------------------------------------------------------------------------------- 8-bit modes


def _premultiply(window: np.ndarray) -> np.ndarray:
    """Convert.c rgbA2rgba / lA2la: colour = MULDIV255(colour, alpha), i.e. round(c * a / 255)."""
    wide = window.astype(np.uint16)
    t = wide[..., :-1] * wide[..., -1:] + 128
    wide[..., :-1] = ((t >> 8) + t) >> 8
    return wide.astype(np.uint8)


def _unpremultiply(out: np.ndarray) -> np.ndarray:
    """Convert.c rgba2rgbA / la2lA: colour = min(255, 255 * c // alpha), untouched when alpha is 0 or 255."""
    alpha = out[..., -1:].astype(np.uint16)
    colour = out[..., :-1]
    restored = np.minimum(255, (colour.astype(np.uint16) * 255) // np.maximum(alpha, 1))
    out[..., :-1] = np.where((alpha == 0) | (alpha == 255), colour, restored)
    return out


def _round_into(acc: np.ndarray, out: np.ndarray, plan: _Pass8, exact) -> None:
    """out = clip8 of a float32 pass result: floor(acc + 1/2) saturated to [0, 255], provably Pillow's.

    ``acc`` is overwritten. Outputs whose fraction lies within the error bound of a rounding edge are
    replaced by ``exact(positions)`` (flat indices into ``acc``).
    """
    np.add(acc, 0.5, out=acc)
    np.floor(acc, out=out)
    np.subtract(acc, out, out=acc)
    np.subtract(acc, 0.5, out=acc)
    np.abs(acc, out=acc)
    doubtful = np.flatnonzero(acc > plan.limit)
    if doubtful.size:
        out[np.unravel_index(doubtful, out.shape)] = exact(doubtful)
    if plan.clips:
        np.maximum(out, 0.0, out=out)
        np.minimum(out, 255.0, out=out)


def _exact_8bit(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The int32 accumulation and >> 22 of Resample.c, in float64 (exact), before clipping."""
    acc = (values.astype(np.float64) * weights).sum(axis=1)
    return np.floor((acc + 2.0 ** (_PRECISION_BITS - 1)) * 2.0**-_PRECISION_BITS)


class _Scratch(threading.local):
    """Per-thread float32 work buffers, reused from call to call.

    Freshly allocated arrays of a few hundred KB cost more than the arithmetic done in them here: glibc
    returns freed memory at the top of the heap to the system, so every call would page-fault it back in.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = np.empty(size, np.float32)
        return buffer[:size].reshape(shape)


_SCRATCH = _Scratch()


def _matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b, split into products small enough for OpenBLAS to keep on the calling thread."""
    m, k = a.shape
    n = b.shape[1]
    if m * n * k <= _SINGLE_THREAD_MNK:
        np.matmul(a, b, out=out)
    elif m >= n:
        step = max(1, _SINGLE_THREAD_MNK // (k * n))
        for i in range(0, m, step):
            np.matmul(a[i : i + step], b, out=out[i : i + step])
    else:
        step = max(1, _SINGLE_THREAD_MNK // (k * m))
        for j in range(0, n, step):
            np.matmul(a, b[:, j : j + step], out=out[:, j : j + step])


def _horizontal_8bit(src: np.ndarray, plan: _Pass8) -> np.ndarray:
    """Interleaved (R, W, C) -> planar (C, R, w) float32.

    A strip of rows at a time is made planar, (C*rows, W), so that each block is one 2-D product; the
    strip buffer is reused and small enough to stay in cache.
    """
    height, width, channels = src.shape
    out = _SCRATCH.take("horizontal out", (channels, height, plan.size))
    per_call = _SINGLE_THREAD_MNK // (channels * plan.band)  # each block one single-threaded product
    rows = min(height, max(1, min(per_call, _STRIP_BYTES // (4 * width * channels))))
    planes_buf = _SCRATCH.take("horizontal planes", (channels * rows * width,))
    for r0 in range(0, height, rows):
        n = min(rows, height - r0)
        planes = planes_buf[: channels * n * width].reshape(channels, n, width)
        np.copyto(planes, src[r0 : r0 + n].transpose(2, 0, 1))
        flat = planes.reshape(channels * n, width)
        acc = _SCRATCH.take("horizontal acc", (channels * n, plan.size))
        for o0, o1, s0, s1, _, matrix_t in plan.blocks:
            _matmul_into(flat[:, s0:s1], matrix_t, acc[:, o0:o1])

        def exact(doubtful, flat=flat):
            rows, cols = np.divmod(doubtful, plan.size)
            return _exact_8bit(flat[rows[:, None], plan.index[cols]], plan.fixed[cols])

        _round_into(acc.reshape(channels, n, plan.size), out[:, r0 : r0 + n], plan, exact)
    return out


def _vertical_8bit(src: np.ndarray, plan: _Pass8, planar: bool) -> np.ndarray:
    """(C, R, W) planar or (R, W, C) interleaved -> the same layout with h rows, float32.

    Each plane (or the interleaved image seen as (R, W*C)) is one matrix whose columns are independent;
    uint8 input is converted a strip of columns at a time.
    """
    if planar:
        out = _SCRATCH.take("vertical out", (src.shape[0], plan.size, src.shape[2]))
        pairs = zip(src, out)
    else:
        height, width, channels = src.shape
        out = _SCRATCH.take("vertical out", (plan.size, width, channels))
        pairs = [(src.reshape(height, width * channels), out.reshape(plan.size, width * channels))]
    for columns, out_columns in pairs:
        height, total = columns.shape
        step = total if columns.dtype == np.float32 else max(1, _STRIP_BYTES // (4 * height))
        for c0 in range(0, total, step):
            strip = columns[:, c0 : c0 + step]
            if strip.dtype != np.float32:
                strip = _SCRATCH.take("vertical strip", strip.shape)
                np.copyto(strip, columns[:, c0 : c0 + step])
            acc = _SCRATCH.take("vertical acc", (plan.size, strip.shape[1]))
            for o0, o1, s0, s1, matrix, _ in plan.blocks:
                _matmul_into(matrix, strip[s0:s1], acc[o0:o1])

            def exact(doubtful, strip=strip):
                rows, cols = np.divmod(doubtful, strip.shape[1])
                return _exact_8bit(strip[plan.index[rows], cols[:, None]], plan.fixed[rows])

            _round_into(acc, out_columns[:, c0 : c0 + step], plan, exact)
    return out


def _resample_8bit(window: np.ndarray, mode: str, h_plan, v_plan, vertical_first: bool) -> np.ndarray:
    premultiplied = mode in ("LA", "RGBA")
    values = _premultiply(window) if premultiplied else window
    if values.ndim == 2:
        values = values[:, :, None]
    planar = False  # the layout of ``values``: (R, W, C) until the horizontal pass makes it (C, R, W)
    if v_plan is not None and (vertical_first or h_plan is None):
        values = _vertical_8bit(values, v_plan, planar=False)
        v_plan = None
    if h_plan is not None:
        values, planar = _horizontal_8bit(values, h_plan), True
    if v_plan is not None:
        values = _vertical_8bit(values, v_plan, planar=True)
    if planar:
        out = np.empty(values.shape[1:] + values.shape[:1], np.uint8)
        np.copyto(out, values.transpose(1, 2, 0), casting="unsafe")
    else:
        out = values.astype(np.uint8)
    if premultiplied:
        out = _unpremultiply(out)
    return out if window.ndim == 3 else out[:, :, 0]


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
