"""What Pillow defines and both the fast paths and the reference port follow: filter codes, names and
supports, the fixed-point precision of 8-bit images, Hamming's constants and the order of the two passes.

Stated once, here; each value is the line of Pillow's sources quoted beside it (python-pillow/Pillow,
``src/libImaging/Resample.c`` unless said otherwise). Production code and the reference port
(``tests/resample_reference.py``) both import this module; it imports neither.
"""

from __future__ import annotations

import numpy as np

# Pillow's filter codes (PIL.Image.Resampling in Image.py: NEAREST = 0, LANCZOS = 1, BILINEAR = 2,
# BICUBIC = 3, BOX = 4, HAMMING = 5), named as torchvision names its InterpolationMode values.
FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = (FILTERS[n] for n in list(FILTERS))
FILTER_NAMES = {code: name for name, code in FILTERS.items()}

# static struct filter BOX = {box_filter, 0.5};
# static struct filter BILINEAR = {bilinear_filter, 1.0};
# static struct filter HAMMING = {hamming_filter, 1.0};
# static struct filter BICUBIC = {bicubic_filter, 2.0};
# static struct filter LANCZOS = {lanczos_filter, 3.0};
SUPPORTS = {BOX: 0.5, BILINEAR: 1.0, HAMMING: 1.0, BICUBIC: 2.0, LANCZOS: 3.0}

# #define PRECISION_BITS (32 - 8 - 2)
# 8 bits of pixel, 2 of headroom for negative lobes and overshoot: the fractional bits of the int32
# fixed-point weights of 8-bit images.
PRECISION_BITS = 32 - 8 - 2

# hamming_filter: return sin(x) / x * (0.54f + 0.46f * cos(x));
# 0.54f and 0.46f are float32 literals, promoted to double.
HAMMING_A = float(np.float32(0.54))
HAMMING_B = float(np.float32(0.46))

# Which Pillow's pass order to reproduce: Pillow >= 13's rule, or Pillow <= 12's horizontal-first.
PASS_ORDERS = ("pillow13", "pillow12")


def installed_pass_order() -> str:
    """The pass order of the installed Pillow (what ``Image.resize`` computes here)."""
    import PIL

    return "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"


def vertical_first(pass_order: str, in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Whether the vertical pass runs before the horizontal one, when both run.

    Pillow <= 12 (``ImagingResampleInner``) always runs the horizontal pass first. Pillow 13.0.0
    (PR #9549) runs the vertical pass first when the height shrinks by more than twice as many pixels as the
    width; its ``ImagingResampleInner`` computes, from the source image's size (also when a ``box`` is
    given, then ``in_h``/``in_w`` are the whole image's) and the output size::

        int horizontal_first =
            !((imIn->ysize - ysize) > 0 &&
              (imIn->ysize - ysize) > (imIn->xsize - xsize) * 2);
    """
    if pass_order == "pillow12":
        return False
    return out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)
