"""NumPy's resize of a window: the plans of the two passes (only the kept outputs, only the source they
read), then NEAREST, the 8-bit passes or the F/I passes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeinfer import _convert
from edgeinfer._resample.filters import NEAREST, vertical_first
from edgeinfer._resample.nearest import resize_nearest
from edgeinfer._resample.passes8 import resample_8bit
from edgeinfer._resample.passes32 import resample_32bit
from edgeinfer._resample.pixels import window
from edgeinfer._resample.plans import STRIP_BYTES, bucket, plan

if TYPE_CHECKING:
    from PIL import Image

_CHANNELS = {"LA": 2, "RGB": 3, "RGBA": 4}


def resize_window(
    img: np.ndarray | Image.Image,
    mode: str,
    size: tuple[int, int],
    filter: int,
    pass_order: str,
    region: tuple[int, int, int, int],
) -> np.ndarray:
    """The ``region`` (top, left, height, width) of ``img`` (an array or a loaded PIL image of ``mode``)
    resized to ``size``, computed here on this thread (and the threads ``parallel`` allows for its passes).
    ``size`` differs from the image's."""
    out_h, out_w = size
    top, left, reg_h, reg_w = region
    if filter == NEAREST:
        return resize_nearest(img, out_h, out_w, top, left, reg_h, reg_w)
    in_w, in_h = img.size if _convert.is_pil(img) else img.shape[1::-1]
    need_h, need_v = out_w != in_w, out_h != in_h
    v_first = need_h and need_v and vertical_first(pass_order, in_h, in_w, out_h, out_w)
    channels = _CHANNELS.get(mode, 1)
    # How many independent rows (columns) each product of the horizontal (vertical) pass works on.
    h_breadth = channels * min(in_h, STRIP_BYTES // (4 * in_w * channels))
    # Alpha modes run the vertical pass channel by channel.
    v_breadth = (
        (reg_w if mode in ("LA", "RGBA") else reg_w * channels) if need_h and not v_first else in_w * channels
    )
    if need_v:
        row_lo, row_hi, v_plan = plan(mode, in_h, out_h, filter, top, top + reg_h, bucket(v_breadth))
    else:
        row_lo, row_hi, v_plan = top, top + reg_h, None
    if need_h:
        col_lo, col_hi, h_plan = plan(mode, in_w, out_w, filter, left, left + reg_w, bucket(h_breadth))
    else:
        col_lo, col_hi, h_plan = left, left + reg_w, None

    if mode in ("F", "I"):
        return resample_32bit(window(img, row_lo, row_hi, col_lo, col_hi), mode, h_plan, v_plan, v_first)
    if h_plan is not None and not v_first and _convert.is_pil(img):  # read band by band, never all at once
        box = (col_lo, row_lo, col_hi, row_hi)
        shape = (row_hi - row_lo, col_hi - col_lo) + ((channels,) if mode != "L" else ())
        return resample_8bit(_convert.pil_bands(img, box), shape, mode, h_plan, v_plan, v_first)
    pixels = window(img, row_lo, row_hi, col_lo, col_hi)
    return resample_8bit([(0, pixels)], pixels.shape, mode, h_plan, v_plan, v_first)
