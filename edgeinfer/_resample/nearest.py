"""NEAREST: Geometry.c's ``ImagingScaleAffine`` (what ``_imaging.c`` ``_resize`` calls for it), as index
arithmetic and one gather."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from edgeinfer import _convert
from edgeinfer._resample.coefficients import axis_scale
from edgeinfer._resample.pixels import pixel_words

if TYPE_CHECKING:
    from PIL import Image


def nearest_indices(in_size: int, out_size: int, lo: int, hi: int) -> np.ndarray:
    """Source index of outputs [lo, hi), as Geometry.c's ImagingScaleAffine computes it.

    The C loop starts at ``scale / 2`` and adds ``scale`` once per output in double; (int) truncates.
    Within one binade [2**(e-1), 2**e) the rounded sum x + scale moves x by the same multiple of the
    binade's ulp every time (a tie rounds to an even significand, after which the step is fixed too), so
    after two additions inside a binade the rest of the binade is an exact arithmetic progression. That
    reproduces the sequential sums with a few dozen Python additions, whatever ``lo`` is.
    """
    step = axis_scale(in_size, out_size)
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


def resize_nearest(
    img: np.ndarray | Image.Image, out_h: int, out_w: int, top: int, left: int, reg_h: int, reg_w: int
) -> np.ndarray:
    """The (top, left, reg_h, reg_w) window of ``img`` (an array or a PIL image) resized to out_h x out_w
    with NEAREST; of a big PIL image only the rows picked are copied."""
    in_h, in_w = (img.height, img.width) if _convert.is_pil(img) else img.shape[:2]
    rows = nearest_indices(in_h, out_h, top, top + reg_h)
    cols = nearest_indices(in_w, out_w, left, left + reg_w)
    row_ok, col_ok = rows < in_h, cols < in_w
    rows, cols = np.where(row_ok, rows, 0), np.where(col_ok, cols, 0)
    pixels = _convert.pil_view(img) if _convert.is_pil(img) else img
    if pixels is not None:
        img = pixels
    else:  # a big PIL image: copy only the rows picked, and only the columns spanned
        kept, first, last = np.unique(rows), int(cols.min()), int(cols.max()) + 1
        img = _convert.pil_rows(img, kept.tolist(), first, last)
        rows, cols = np.searchsorted(kept, rows), cols - cols.min()
    words = pixel_words(img)
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
