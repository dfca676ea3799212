"""Pillow's resampling, ported loop for loop from its C sources: the oracle of ``edgeinfer._resample``.

Plain Python on small images, slow on purpose: every line mirrors a line of Pillow 13's sources, so that
reading it next to them is enough to trust it. tests/test_resample.py checks it against the installed
Pillow, and the fast paths of ``_resample.resize`` against it.

Sources mirrored (python-pillow/Pillow):
* ``src/libImaging/Resample.c``: the filters, ``precompute_coeffs``, ``normalize_coeffs_8bpc``,
  ``ImagingResampleHorizontal/Vertical_8bpc`` and ``_32bpc``, ``ImagingResampleInner`` (which passes run);
* ``src/libImaging/Geometry.c`` ``ImagingScaleAffine``: NEAREST, what ``_imaging.c`` ``_resize`` calls;
* ``src/libImaging/Convert.c`` ``rgbA2rgba`` / ``rgba2rgbA``: the alpha premultiplication that
  ``Image.resize`` wraps around every filter but NEAREST for LA and RGBA images.

The constants both share (filter codes and supports, fixed point precision, the pass order) come from
``edgeinfer._resample.filters``, which states them once with the C lines they mirror. Only tests import
this module: the oracle is no dependency of what it judges.
"""

from __future__ import annotations

import math

import numpy as np

from edgeinfer._resample.filters import (
    BICUBIC,
    BILINEAR,
    BOX,
    HAMMING,
    HAMMING_A,
    HAMMING_B,
    LANCZOS,
    NEAREST,
    PRECISION_BITS,
    SUPPORTS,
    vertical_first,
)

# ------------------------------------------------------------------------------------------- filters


def box_filter(x: float) -> float:
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def bilinear_filter(x: float) -> float:
    x = -x if x < 0.0 else x
    return 1.0 - x if x < 1.0 else 0.0


def hamming_filter(x: float) -> float:
    x = -x if x < 0.0 else x
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * math.pi
    return math.sin(x) / x * (HAMMING_A + HAMMING_B * math.cos(x))


def bicubic_filter(x: float) -> float:
    a = -0.5
    x = -x if x < 0.0 else x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def sinc_filter(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def lanczos_filter(x: float) -> float:
    # truncated sinc; -3 <= x < 3 as in Resample.c
    if -3.0 <= x < 3.0:
        return sinc_filter(x) * sinc_filter(x / 3)
    return 0.0


FILTER_FUNCTIONS = {
    BOX: box_filter,
    BILINEAR: bilinear_filter,
    HAMMING: hamming_filter,
    BICUBIC: bicubic_filter,
    LANCZOS: lanczos_filter,
}


# -------------------------------------------------------------------------------------- coefficients


def precompute_coeffs(in_size: int, out_size: int, filter: int) -> tuple[list, list]:
    """Per output: (xmin, count) and the normalised double weights. ``in0 = 0``, ``in1 = in_size``."""
    in0, in1 = 0.0, float(np.float32(in_size))  # _imaging.c parses the box as C floats
    scale = (in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORTS[filter] * filterscale
    kernel = FILTER_FUNCTIONS[filter]
    bounds, kk = [], []
    for xx in range(out_size):
        center = in0 + (xx + 0.5) * scale
        ww = 0.0
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # (int) truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = []
        for x in range(xmax):
            w = kernel((x + xmin - center + 0.5) * ss)
            k.append(w)
            ww += w
        if ww != 0.0:
            k = [w / ww for w in k]
        bounds.append((xmin, xmax))
        kk.append(k)
    return bounds, kk


def normalize_coeffs_8bpc(kk: list[list[float]]) -> list[list[int]]:
    """Weights to fixed point with PRECISION_BITS fractional bits, rounded half away from zero."""
    one = 1 << PRECISION_BITS
    return [[int(-0.5 + w * one) if w < 0 else int(0.5 + w * one) for w in k] for k in kk]


def clip8(ss: int) -> int:
    """Resample.c clip8: the accumulator shifted down, saturated to a byte."""
    return min(max(ss >> PRECISION_BITS, 0), 255)


# ------------------------------------------------------------------------------------------- passes
# Images here are lists of rows of pixels; a pixel is a list of channel values.


def resample_horizontal(rows: list, bounds, kk, mode: str) -> list:
    out = []
    for row in rows:
        out_row = []
        for (xmin, count), k in zip(bounds, kk, strict=True):
            out_row.append(_accumulate([row[xmin + x] for x in range(count)], k, mode))
        out.append(out_row)
    return out


def resample_vertical(rows: list, bounds, kk, mode: str) -> list:
    width = len(rows[0])
    out = []
    for (ymin, count), k in zip(bounds, kk, strict=True):
        out.append([_accumulate([rows[ymin + y][xx] for y in range(count)], k, mode) for xx in range(width)])
    return out


def _accumulate(pixels: list, k: list, mode: str) -> list:
    """One output pixel: ImagingResample*_8bpc (int32 fixed point) or *_32bpc (double) arithmetic."""
    result = []
    for c in range(len(pixels[0])):
        if mode in ("F", "I"):
            ss = 0.0
            for pixel, w in zip(pixels, k, strict=True):
                ss += pixel[c] * w
            if mode == "F":
                result.append(float(np.float32(ss)))
            else:  # ROUND_UP, then the (int) cast truncates
                result.append(int(ss + 0.5 if ss >= 0.0 else ss - 0.5))
        else:
            ss0 = 1 << (PRECISION_BITS - 1)
            for pixel, w in zip(pixels, k, strict=True):
                ss0 += pixel[c] * w
            result.append(clip8(ss0))
    return result


# ------------------------------------------------------------------------------------------- resize


def resize(img: np.ndarray, size: tuple[int, int], filter: int, pass_order: str = "pillow13") -> np.ndarray:
    """``Image.fromarray(img).resize((w, h), filter)`` for arrays of modes L, LA, RGB, RGBA, I and F."""
    out_h, out_w = size
    in_h, in_w = img.shape[:2]
    mode = {np.dtype(np.float32): "F", np.dtype(np.int32): "I"}.get(img.dtype, "8bpc")
    rows = (img[:, :, None] if img.ndim == 2 else img).tolist()
    if (out_h, out_w) == (in_h, in_w):
        result = rows
    elif filter == NEAREST:
        result = scale_affine_nearest(rows, out_h, out_w)
    else:
        alpha = img.ndim == 3 and img.shape[2] in (2, 4)  # Image.resize premultiplies LA and RGBA
        if alpha:
            rows = [[premultiply(p) for p in row] for row in rows]
        result = resample_inner(rows, out_h, out_w, filter, mode, pass_order)
        if alpha:
            result = [[unpremultiply(p) for p in row] for row in result]
    out = np.array(result, img.dtype)
    return out[:, :, 0] if img.ndim == 2 else out


def resample_inner(rows: list, out_h: int, out_w: int, filter: int, mode: str, pass_order: str) -> list:
    """ImagingResampleInner: which passes run and in which order; ``box`` is the whole image."""
    in_h, in_w = len(rows), len(rows[0])
    need_horizontal, need_vertical = out_w != in_w, out_h != in_h
    bounds_horiz, kk_horiz = precompute_coeffs(in_w, out_w, filter)
    bounds_vert, kk_vert = precompute_coeffs(in_h, out_h, filter)
    if mode == "8bpc":
        kk_horiz, kk_vert = normalize_coeffs_8bpc(kk_horiz), normalize_coeffs_8bpc(kk_vert)
    if need_horizontal and need_vertical and vertical_first(pass_order, in_h, in_w, out_h, out_w):
        rows = resample_vertical(rows, bounds_vert, kk_vert, mode)  # over the full width
        return resample_horizontal(rows, bounds_horiz, kk_horiz, mode)
    if need_horizontal:
        # Only the source rows the vertical pass will read: [ybox_first, ybox_last).
        ybox_first = bounds_vert[0][0]
        ybox_last = bounds_vert[-1][0] + bounds_vert[-1][1]
        if need_vertical:
            rows = rows[ybox_first:ybox_last]
            bounds_vert = [(ymin - ybox_first, count) for ymin, count in bounds_vert]
        rows = resample_horizontal(rows, bounds_horiz, kk_horiz, mode)
    if need_vertical:
        rows = resample_vertical(rows, bounds_vert, kk_vert, mode)
    return rows


def scale_affine_nearest(rows: list, out_h: int, out_w: int) -> list:
    """Geometry.c ImagingScaleAffine with a = [sx, 0, 0, 0, sy, 0]: positions grow by repeated double
    additions and COORD truncates."""
    in_h, in_w = len(rows), len(rows[0])
    sx = float(np.float32(in_w)) / out_w
    sy = float(np.float32(in_h)) / out_h
    xintab = []
    xo = sx * 0.5
    for _ in range(out_w):
        xintab.append(int(xo))
        xo += sx
    out = []
    yo = sy * 0.5
    for _ in range(out_h):
        row = rows[int(yo)]
        out.append([row[x] for x in xintab])
        yo += sy
    return out


def premultiply(pixel: list) -> list:
    """Convert.c rgbA2rgba / lA2la: colour = MULDIV255(colour, alpha)."""
    alpha = pixel[-1]
    return [_muldiv255(c, alpha) for c in pixel[:-1]] + [alpha]


def unpremultiply(pixel: list) -> list:
    """Convert.c rgba2rgbA / la2lA: colour = CLIP8(255 * colour / alpha), untouched for alpha 0 or 255."""
    alpha = pixel[-1]
    if alpha in (0, 255):
        return list(pixel)
    return [min(255, 255 * c // alpha) for c in pixel[:-1]] + [alpha]


def _muldiv255(a: int, b: int) -> int:
    t = a * b + 128
    return ((t >> 8) + t) >> 8
