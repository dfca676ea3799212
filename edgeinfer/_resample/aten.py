"""torch's ``interpolate`` kernels (ATen, ``UpSampleKernel.cpp``) on C×H×W tensors, in NumPy: what
torchvision's Resize computes on a tensor.

* uint8, antialiased bilinear / bicubic (torch's native uint8 kernel, which v2 runs on AVX2, AVX-512 and
  aarch64, and always for bicubic): Pillow's weights in float64, normalised, then per axis scaled to
  ``p`` fractional bits and rounded half away from zero to int16, where ``p`` is the largest p <= 22 with
  ``round(max_weight * 2**p) < 2**15``; each output is ``clamp((2**(p-1) + Σ k·x) >> p, 0, 255)`` in
  exact integers. The horizontal pass runs first, a uint8 image between the passes; an axis whose size
  does not change is not resampled. Integer arithmetic: the same on every CPU.
* float32 / float64, antialiased bilinear / bicubic: the weights in the tensor's precision (with torch's
  mix of double and float steps) and each output accumulated tap by tap, ``acc = acc + x·w``, as torch's
  portable (``ATEN_CPU_CAPABILITY=default``) kernel does; its AVX2 / AVX-512 builds contract that into a
  fused multiply-add and differ from it by a few float32 ulps.
* nearest (``floorf(i * scale)``, scale = float(in) / out, with torch's shortcuts for equal and doubled
  sizes) and nearest-exact (``floor(max(scale * (i + 0.5) - 0.5, 0) + 0.5)`` in float32): index arithmetic
  and one gather. Exact with every build of torch except at exact half-pixel ties of extreme upscales
  (outputs over ~4,000 times the input), where torch's AVX2 build rounds its fused multiply-add otherwise
  than its portable build; this is the portable build's.

Bicubic uses a = -0.5 here (Pillow's), where torch's non-antialiased bicubic uses -0.75.
"""

from __future__ import annotations

import numpy as np

from edgeinfer._resample.coefficients import coefficients
from edgeinfer._resample.filters import FILTERS

ANTIALIASED = ("bilinear", "bicubic")
NEAREST = ("nearest", "nearest-exact")
# _compute_index_ranges_int16_weights: at most 22 fractional bits, and every weight must fit an int16
# once doubled (the SIMD loops add pairs of products).
MAX_WEIGHT_BITS = 22
INT16_LIMIT = 1 << 15
# (int)ceil(support) * 2 + 1 taps at most, as torch allocates them (interp_size / 2 is the support).
_INTERP_SIZE = {"bilinear": 2, "bicubic": 4}


def resize(x: np.ndarray, out_h: int, out_w: int, interpolation: str) -> np.ndarray:
    """``torch.nn.functional.interpolate(x[None], (out_h, out_w), mode, antialias=True)[0]`` for a
    C×H×W (or any ...×H×W) uint8, float32 or float64 tensor; nearest modes ignore antialias."""
    h, w = x.shape[-2:]
    if interpolation in NEAREST:
        exact = interpolation == "nearest-exact"
        rows, cols = nearest_indices(h, out_h, exact), nearest_indices(w, out_w, exact)
        return x[..., rows[:, None], cols]
    one_pass = _uint8_pass if x.dtype == np.uint8 else _float_pass
    if out_w != w:
        x = one_pass(x, out_w, interpolation)
    if out_h != h:
        x = np.swapaxes(one_pass(np.swapaxes(x, -1, -2), out_h, interpolation), -1, -2)
    return np.ascontiguousarray(x)


def nearest_indices(in_size: int, out_size: int, exact: bool) -> np.ndarray:
    """Source index of each output along one axis (``nearest_idx`` / nearest-exact's source index)."""
    i = np.arange(out_size)
    if out_size == in_size:
        return i
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)  # compute_scales_value<float>
    if exact:
        # HelperInterpNearestExact in float (uint8 indices are computed as float):
        # src = max(scale * (i + 0.5) - 0.5, 0); index = floor(src + 0.5).
        source = np.maximum(scale * (i + f32(0.5)).astype(f32) - f32(0.5), f32(0))
        position = source + f32(0.5)
    elif out_size == 2 * in_size:
        return i >> 1
    else:
        position = i.astype(np.float32) * scale
    return np.minimum(np.floor(position).astype(np.int64), in_size - 1)


def int16_weights(in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, ...]:
    """First source index, tap count, int16 weights (as int64) and their fractional bits ``p`` of one
    axis, as ``_compute_index_ranges_int16_weights`` makes them."""
    first, count, weights = coefficients(in_size, out_size, FILTERS[interpolation], 0, out_size)
    biggest = float(weights.max())
    bits = 0
    while bits < MAX_WEIGHT_BITS and int(0.5 + biggest * (1 << (bits + 1))) < INT16_LIMIT:
        bits += 1
    scaled = weights * float(1 << bits)
    fixed = np.trunc(scaled + np.copysign(0.5, scaled)).astype(np.int64)  # half away from zero
    return first, count, fixed, bits


def _uint8_pass(x: np.ndarray, out_size: int, interpolation: str) -> np.ndarray:
    """Resample the last axis of a uint8 tensor with the int16 weights."""
    n = x.shape[-1]
    first, count, fixed, bits = int16_weights(n, out_size, interpolation)
    acc = np.full(x.shape[:-1] + (out_size,), 1 << (bits - 1), np.int64)
    src = x.astype(np.int32)
    for tap in range(fixed.shape[1]):
        # Taps past an output's count have weight 0; their index is clamped to stay inside the row.
        acc += src[..., np.minimum(first + tap, n - 1)] * fixed[:, tap]
    return np.clip(acc >> bits, 0, 255).astype(np.uint8)


def float_weights(in_size: int, out_size: int, interpolation: str, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """First source index, tap count and normalised weights of one axis in ``dtype``, with torch's
    ``_compute_indices_min_size_weights_aa`` order of float (scalar_t) and double (literal) operations."""
    t, f64 = dtype.type, np.float64
    scale = t(t(in_size) / t(out_size))
    interp = _INTERP_SIZE[interpolation]
    support = t(interp * 0.5 * f64(scale)) if scale >= 1 else t(interp * 0.5)
    invscale = t(1.0 / f64(scale)) if scale >= 1 else t(1.0)
    center = ((np.arange(out_size) + 0.5) * f64(scale)).astype(dtype)
    first = np.maximum(((center - support).astype(f64) + 0.5).astype(np.int64), 0)
    last = np.minimum(((center + support).astype(f64) + 0.5).astype(np.int64), in_size)
    count = np.clip(last - first, 0, int(np.ceil(support)) * 2 + 1)
    taps = np.arange(int(count.max()))
    # (j + xmin - center) in scalar_t; + 0.5 and * invscale in double; the filter's argument in scalar_t.
    offset = ((first[:, None] + taps).astype(dtype) - center[:, None]).astype(f64)
    weights = _filter(interpolation, ((offset + 0.5) * f64(invscale)).astype(dtype))
    weights = np.where(taps < count[:, None], weights, t(0)).astype(dtype)
    total = np.zeros(out_size, dtype)
    for tap in taps:  # summed in order, as the C loop
        total = np.where(tap < count, total + weights[:, tap], total).astype(dtype)
    nonzero = total != 0
    weights[nonzero] /= total[nonzero, None]
    return first, count, weights


def _filter(interpolation: str, x: np.ndarray) -> np.ndarray:
    """torch's aa_filter in the tensor's precision: 1 - |x| (computed in double, as its literal is), or
    the cubic convolution with a = -0.5 in scalar_t."""
    t = x.dtype.type
    ax = np.abs(x)
    if interpolation == "bilinear":
        return np.where(ax < 1, (1.0 - ax.astype(np.float64)).astype(x.dtype), t(0))
    a = t(-0.5)
    near = ((a + t(2)) * ax - (a + t(3))) * ax * ax + t(1)
    far = ((a * ax - t(5) * a) * ax + t(8) * a) * ax - t(4) * a
    return np.where(ax < 1, near, np.where(ax < 2, far, t(0))).astype(x.dtype)


def _float_pass(x: np.ndarray, out_size: int, interpolation: str) -> np.ndarray:
    """Resample the last axis of a float tensor: ``acc = x0·w0``, then ``acc = acc + xj·wj`` per tap."""
    n = x.shape[-1]
    first, count, weights = float_weights(n, out_size, interpolation, x.dtype)
    acc = x[..., first] * weights[:, 0]
    for tap in range(1, weights.shape[1]):
        term = x[..., np.minimum(first + tap, n - 1)] * weights[:, tap]
        acc = np.where(tap < count, acc + term, acc)
    return acc.astype(x.dtype, copy=False)
