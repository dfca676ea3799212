"""Pillow's ``Image.resize`` re-implemented in NumPy, bit-exact.

Reproduces ``PIL.Image.Image.resize((w, h), filter)`` (no box, no reducing_gap: what torchvision calls) for
the modes L, LA, RGB, RGBA (uint8), F (float32) and I (int32): Pillow's coefficient tables, the 22-bit fixed
point arithmetic of 8-bit images, the rounded intermediate image between the two passes, the order of the
passes, alpha premultiplication and the incremental index arithmetic of NEAREST.

Speed (8-bit modes) comes from
* coefficient tables computed once per geometry (cached) and applied as banded matrix products: equal
  blocks of outputs, one strided view and one batched BLAS call per strip of the image;
* float32 products whose rounding is provably Pillow's: an error bound per output says which results lie
  too close to a rounding edge, and only those are recomputed exactly in float64 (see ``doubt_margins``);
* computing only the requested output ``region`` (Resize + CenterCrop), and reusing work buffers;
* cost bounded by the kept region plus the input: coefficient tables only for kept outputs, NEAREST
  indices without walking the whole axis, filters of thousands of taps as direct exact float64 products,
  plans cached up to a byte budget;
* for a PIL image, Pillow itself where it is the same arithmetic and cheaper, and with two threads
  allowed, Pillow and NumPy sharing the work (``dispatch``).

One module per part, each importing only those above it:

* ``filters``: what Pillow defines (filter codes, supports, fixed point precision, the pass order rule),
  stated once with the Resample.c lines it mirrors; the reference port in ``tests/`` imports it too;
* ``coefficients``: ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` for any set of outputs;
* ``plans``: what a pass needs (``Pass8``: blocks, float32 error bounds), cached by bytes;
* ``threads``: ``parallel``, the worker pool and per-thread work buffers;
* ``pixels``: the window of an array or PIL image a resize reads;
* ``nearest``, ``passes8``, ``passes32``: NEAREST, the 8-bit passes, the F/I passes;
* ``numpy_resize``: NumPy's resize of a window, from plans to passes;
* ``dispatch``: ``resize``, and who computes it (NumPy, Pillow or both) with its cost model.

``tests/resample_reference.py`` is the loop-for-loop port of Pillow's C code that these paths are tested
against; nothing here imports it. Arguments are checked by ``edgeinfer.transforms`` (``_checks``), the
only caller: ``resize`` trusts them.
"""

from edgeinfer._resample.dispatch import resize
from edgeinfer._resample.filters import FILTERS, PASS_ORDERS
from edgeinfer._resample.threads import parallel

__all__ = ["FILTERS", "PASS_ORDERS", "parallel", "resize"]
