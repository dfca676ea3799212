"""Resample.c's coefficient tables in NumPy: the filter functions, ``precompute_coeffs`` for any set of
outputs, and ``normalize_coeffs_8bpc`` (22-bit fixed point)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from edgeinfer._resample.filters import (
    BICUBIC,
    BILINEAR,
    BOX,
    HAMMING,
    HAMMING_A,
    HAMMING_B,
    PRECISION_BITS,
    SUPPORTS,
)

_TABLE_CHUNK = 1 << 20  # coefficients computed per step of a table


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


def axis_scale(in_size: int, out_size: int) -> float:
    """Source pixels per output pixel: _imaging.c passes the box edges as C floats, Resample.c divides in
    double (``(double)(float)(in1 - in0) / outSize``); the float32 rounding matters above 2**24 pixels."""
    return float(np.float32(in_size)) / out_size


def coefficients(in_size: int, out_size: int, filter: int, lo: int, hi: int) -> tuple[np.ndarray, ...]:
    """Resample.c precompute_coeffs for outputs [lo, hi) only: first source index, tap count and
    normalised double weights per output. Each output's table depends on its own index alone, so the
    cost follows the kept outputs, not the size of the whole resized axis."""
    scale = axis_scale(in_size, out_size)
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


def fixed_point(weights: np.ndarray) -> np.ndarray:
    """normalize_coeffs_8bpc, in place: round half away from zero to 22 fractional bits (float64 integers).

    copysign turns -0.0 into -0.5, which truncates to 0 as +0.5 does."""
    weights *= float(1 << PRECISION_BITS)
    weights += np.copysign(0.5, weights)
    return np.trunc(weights, out=weights)


def fixed_table(in_size: int, scale: float, filter: int, centre: np.ndarray) -> tuple[np.ndarray, ...]:
    """First source index, tap count and 22-bit fixed point weights of outputs centred at ``centre``."""
    first, count, weights = _coefficients_at(in_size, scale, filter, centre)
    return first, count, fixed_point(weights)
