"""The two passes of an 8-bit resize (L, LA, RGB, RGBA) as banded float32 products whose rounding is
provably Pillow's: 22-bit fixed point weights, the rounded intermediate image, alpha premultiplication.

Each pass runs a ``Pass8`` plan (see ``plans``): one strided view and one batched BLAS call per strip of
the image; ``_round_into`` rounds the float32 results as Resample.c's ``clip8`` does and recomputes in
exact float64 only the outputs that lie within their error bound of a rounding edge.
"""

from __future__ import annotations

import threading

import numpy as np

from edgeinfer._resample.filters import PRECISION_BITS
from edgeinfer._resample.pixels import pixel_words
from edgeinfer._resample.plans import SINGLE_THREAD_MNK, STRIP_BYTES, Pass8
from edgeinfer._resample.threads import SCRATCH, in_parallel


def premultiply_alpha(values: np.ndarray, axis: int) -> None:
    """Convert.c rgbA2rgba / lA2la in place on float32: colour = MULDIV255(colour, alpha) = round(c*a/255).

    c * a / 255 is never a tie (255 is odd) and lies at least 1/510 from one, far beyond the float32
    rounding of c * a * (1/255), so rint() gives Pillow's integer. The alpha channel is last along ``axis``.
    """
    channels = np.moveaxis(values, axis, 0)
    colour, alpha = channels[:-1], channels[-1:]
    np.multiply(colour, alpha, out=colour)
    np.multiply(colour, np.float32(1 / 255), out=colour)
    np.rint(colour, out=colour)


def unpremultiply_alpha(values: np.ndarray, axis: int) -> None:
    """Convert.c rgba2rgbA / la2lA in place on float32 holding bytes: colour = min(255, 255 * c // alpha),
    untouched when alpha is 0 or 255.

    255 * c / alpha in float32 is exact when it is an integer and otherwise at least 1/alpha from one,
    so floor() of it is the integer division; for alpha 255 it gives c back, so only alpha 0 is masked.
    """
    channels = np.moveaxis(values, axis, 0)
    colour, alpha = channels[:-1], channels[-1:]
    restored = np.multiply(colour, np.float32(255), out=SCRATCH.take("unpremultiplied", colour.shape))
    np.divide(restored, np.maximum(alpha, 1), out=restored)
    np.floor(restored, out=restored)
    np.minimum(restored, 255, out=restored)
    np.copyto(colour, restored, where=alpha != 0)


def _round_into(acc: np.ndarray, out: np.ndarray, plan: Pass8, exact) -> None:
    """out = clip8 of a float32 pass result: floor(acc + 1/2) saturated to [0, 255], provably Pillow's.

    ``acc`` (contiguous) and ``out`` (any view, float32 or uint8) hold the same number of elements with the
    outputs along their first axis; ``acc`` is overwritten. Outputs whose fraction lies within the error
    bound of a rounding edge are replaced by ``exact(positions)`` (flat indices into ``acc``).
    """
    values = acc.reshape(out.shape)
    # Strided ufunc loops run at half speed: a strided output is written by one copy at the end.
    direct = out.dtype == np.float32 and out.flags.c_contiguous
    rounded = out if direct else SCRATCH.take("rounded", values.shape)
    if plan.unit is not None:  # exact sums of pixels: (sum * weight + 2**21) >> 22 is exact in float64
        values = np.multiply(values, np.float64(plan.unit), out=SCRATCH.take("sums", out.shape, np.float64))
        doubtful = _floor_half(values, rounded, 0.0, plan.clips)
    else:
        minor = values[plan.minor] if plan.minor is not None else None  # a copy, before values change
        doubtful = _floor_half(values, rounded, plan.margin, plan.clips)
        if minor is not None:
            row = values[0].size
            minor_rounded = SCRATCH.take("minor rounded", minor.shape)
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


def _direct_pass(src: np.ndarray, plan: Pass8, axis: int, out: np.ndarray) -> None:
    """A direct plan's pass: ``src`` holds the source along ``axis`` -> ``out`` (padded_size, ...)."""
    rounded = _shift_8bit(plan.products(src, axis))
    np.clip(rounded, 0.0, 255.0, out=rounded)
    np.copyto(out, rounded.reshape(out.shape), casting="unsafe")


# OpenBLAS 0.3.31's small-matrix kernel (which the weights' layout selects) returned wrong sums about once in
# 600 calls when two threads ran it at once: the banded products take turns, everything around them does not.
BLAS_LOCK = threading.Lock()


def _banded_matmul(weights: np.ndarray, source: np.ndarray, out: np.ndarray) -> None:
    with BLAS_LOCK:
        np.matmul(weights, source, out=out)


def _pass_along_rows(src: np.ndarray, plan: Pass8, out: np.ndarray) -> None:
    """Resample along the last axis: ``src`` (M, plan.length) padded float32 -> ``out`` (padded_size, M).

    One batched product over the strided block view; the result comes out transposed (outputs first),
    which is the layout the other pass wants. The caller keeps M * span * block single-threaded.
    """
    if plan.direct:
        _direct_pass(src, plan, 1, out)
        return
    acc = SCRATCH.take("acc", (plan.nblocks, plan.block, src.shape[0]))
    for blocks, view in plan.groups_of(src, 1):
        _banded_matmul(plan.stack[blocks], view.transpose(0, 2, 1), out=acc[blocks])

    def exact(doubtful):
        row, col = np.divmod(doubtful, src.shape[0])
        taps = np.take(src.reshape(-1), col[:, None] * src.shape[1] + plan.index[row])
        return _exact_8bit(taps, plan.fixed[row])

    _round_into(acc, out, plan, exact)


def _pass_along_columns(src: np.ndarray, plan: Pass8, out: np.ndarray) -> None:
    """Resample along the first axis: ``src`` (R, W, C) interleaved pixels -> ``out`` (padded_size, W*C).

    Used when the vertical pass comes first. Strips of whole pixels are widened and padded in a small
    reused buffer, which also keeps each product single-threaded.
    """
    if plan.direct:
        _direct_pass(src, plan, 0, out)
        return
    total, channels = src.shape[1:]
    per_call = min(SINGLE_THREAD_MNK // (plan.span * plan.block), STRIP_BYTES // (4 * plan.length))
    step = max(1, per_call // channels)

    def strip(p0: int) -> None:
        pixels = min(step, total - p0)
        c0, width = p0 * channels, pixels * channels
        strip = SCRATCH.take("strip", (plan.length, width))
        plan.pad(strip, 0)
        inner = strip[plan.pad_before : plan.length - plan.pad_after]
        np.copyto(inner.reshape(src.shape[0], pixels, channels), src[:, p0 : p0 + pixels])
        acc = SCRATCH.take("acc", (plan.nblocks, plan.block, width))
        for blocks, view in plan.groups_of(strip, 0):
            _banded_matmul(plan.stack[blocks], view, out=acc[blocks])

        def exact(doubtful):
            row, col = np.divmod(doubtful, width)
            taps = np.take(strip.reshape(-1), plan.index[row] * width + col[:, None])
            return _exact_8bit(taps, plan.fixed[row])

        _round_into(acc, out[:, c0 : c0 + width], plan, exact)

    in_parallel(range(0, total, step), strip, total * channels * plan.length)


def _whole_pixels(src: np.ndarray) -> np.ndarray:
    """``src`` (R, W, 3) bytes as (R, W, 4) when its pixels are four bytes apart in a larger array (how
    Pillow stores RGB) that holds the fourth byte of each; else ``src``."""
    words = pixel_words(src) if src.shape[2] == 3 and src.dtype == np.uint8 else None
    return src if words is None else words.view(np.uint8).reshape(src.shape[:2] + (4,))


def _horizontal_8bit(src: np.ndarray, plan: Pass8, out: np.ndarray, premultiply: bool) -> None:
    """(R, W, C) -> ``out`` (padded_size, C, R), the image transposed (``out`` may be any view).

    A strip of rows at a time is made planar, (C*rows, W) plus padding, in a reused buffer that stays in
    cache (alpha is premultiplied there, where each channel is contiguous), and resampled along its rows.
    """
    height, width, channels = src.shape
    per_call = SINGLE_THREAD_MNK // (channels * plan.span * plan.block)
    rows = min(height, max(1, min(per_call, STRIP_BYTES // (4 * plan.length * channels))))

    def strip(r0: int) -> None:
        n = min(rows, height - r0)
        planes = SCRATCH.take("planes", (channels, n, plan.length))
        plan.pad(planes, 2)
        inner = planes[:, :, plan.pad_before : plan.pad_before + width]
        if channels == 1 or src.dtype != np.uint8:
            np.copyto(inner, src[r0 : r0 + n].transpose(2, 0, 1))
        else:  # de-interleaving bytes, then widening contiguous planes, beats doing both in one copy
            planar = SCRATCH.take("planar bytes", (channels, n, width), np.uint8)
            np.copyto(planar, src[r0 : r0 + n].transpose(2, 0, 1))
            np.copyto(inner, planar)
        if premultiply:
            premultiply_alpha(inner, 0)
        _pass_along_rows(planes.reshape(channels * n, plan.length), plan, out[:, :, r0 : r0 + n])

    in_parallel(range(0, height, rows), strip, height * channels * plan.length)


def _vertical_8bit(src: np.ndarray, plan: Pass8, out: np.ndarray) -> None:
    """Rows of the transposed image, (M, plan.length) padded float32 -> ``out`` (padded_size, M)."""
    step = max(1, SINGLE_THREAD_MNK // (plan.span * plan.block))

    def strip(m0: int) -> None:
        _pass_along_rows(src[m0 : m0 + step], plan, out[:, m0 : m0 + step])

    in_parallel(range(0, src.shape[0], step), strip, src.shape[0] * plan.length)


def resample_8bit(
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
            premultiply_alpha(values, 2)
        # Pillow's 3-channel pixels take 4 bytes: resampling all 4 lets the pass widen contiguous rows, which
        # is several times faster than skipping every fourth byte; the fourth channel is dropped after.
        src = _whole_pixels(values)
        shape = (v_plan.padded_size, width, src.shape[2])
        last = h_plan is None and not alpha  # then the pass writes the uint8 result directly
        out = np.empty(shape, np.uint8) if last else SCRATCH.take("vertical out", shape)
        _pass_along_columns(src, v_plan, out.reshape(v_plan.padded_size, -1))
        values, height, v_plan = out[: v_plan.size, :, :channels], v_plan.size, None
        if h_plan is None:
            if alpha:
                unpremultiply_alpha(values, 2)
            return _as_image(values if src is values else values.copy(), ndim)
        premultiply = False
        bands = [(0, values)]
    else:
        premultiply = alpha

    # The horizontal result is the image transposed, (w, C, rows), or (C, w, rows) for alpha modes; with a
    # vertical pass to come, it goes straight into the zero-padded rows that pass reads.
    rows = v_plan.length if v_plan is not None else height
    shape = (channels, h_plan.padded_size, rows) if alpha else (h_plan.padded_size, channels, rows)
    transposed = SCRATCH.take("horizontal out", shape)
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
            unpremultiply_alpha(upright, 0)
        return _as_image(upright.transpose(2, 1, 0) if alpha else upright.transpose(2, 0, 1), ndim)

    if not alpha:  # the vertical pass writes the uint8 result directly
        out = np.empty((v_plan.padded_size, h_plan.size, channels), np.uint8)
        _vertical_8bit(
            transposed[: h_plan.size].reshape(-1, rows), v_plan, out.reshape(v_plan.padded_size, -1)
        )
        return _as_image(out[: v_plan.size], ndim)
    planar = SCRATCH.take("vertical out", (v_plan.padded_size, channels, h_plan.size))
    for channel in range(channels):
        _vertical_8bit(transposed[channel, : h_plan.size], v_plan, planar[:, channel])
    upright = planar[: v_plan.size]
    unpremultiply_alpha(upright, 1)
    return _as_image(upright.transpose(0, 2, 1), ndim)


def _as_image(values: np.ndarray, ndim: int) -> np.ndarray:
    """``values`` (rows, columns, channels) as a new uint8 image, HxW when the input was."""
    if values.dtype != np.uint8:
        out = np.empty(values.shape, np.uint8)
        np.copyto(out, values, casting="unsafe")
        values = out
    return values if ndim == 3 else values[:, :, 0]
