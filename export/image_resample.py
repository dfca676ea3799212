"""Pillow's resize as ONNX nodes, bit-exact: what ``edgeinfer._resample`` computes in NumPy, in a graph.

Sizes are dynamic (int64 scalars computed from the input's shape). Each axis gets Resample.c's coefficient
table for the kept outputs only, computed in the graph in float64 with Pillow's operation order (a CumSum
along the taps is its sequential normalisation sum), rounded to 22-bit fixed point. A pass gathers the
band of source rows each kept output reads (cost: kept outputs × taps, never outputs × inputs) and sums
``pixel × weight`` with one MatMulInteger, exactly (see :func:`rows_pass`). The passes store uint8 between
them, in the pass order Pillow 13 (or 12) chooses; the
image is held as planes [C, H, W] and the horizontal pass runs as a rows pass on the transposed planes,
so that every gather copies whole rows.
NEAREST follows Geometry.c's incremental source coordinates (a CumSum of the scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
from export.onnx_graph import DOUBLE, FLOAT, INT64, UINT8, Graph

ONE = float(1 << PRECISION_BITS)


@dataclass(frozen=True)
class AxisTable:
    """The coefficients of one axis for its kept outputs: ``index`` [n, taps] (source index of each tap,
    relative to ``span_lo``, clamped inside the span), ``weights`` [n, taps] (22-bit fixed point as float64,
    0 past an output's tap count), ``taps`` (int64 [1]), and the source span [span_lo, span_hi) read."""

    index: str
    weights: str
    taps: str
    span_lo: str
    span_hi: str


def axis_scale(g: Graph, in_size: str, out_size: str) -> str:
    """``(double)(float)in_size / out_size``: _imaging.c passes the box as C floats."""
    in_f = g.op("Cast", g.op("Cast", in_size, to=FLOAT), to=DOUBLE)
    return g.op("Div", in_f, g.op("Cast", out_size, to=DOUBLE))


def axis_table(g: Graph, in_size: str, out_size: str, lo: str, n: str, filter: int) -> AxisTable:
    """Resample.c ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for outputs [lo, lo + n)."""
    scale = axis_scale(g, in_size, out_size)
    filterscale = g.op("Max", scale, g.f64(1.0))
    support = g.op("Mul", g.f64(SUPPORTS[filter]), filterscale)
    outputs = g.op("Cast", g.op("Range", lo, g.op("Add", lo, n), g.i64(1)), to=DOUBLE)
    center = g.op("Mul", g.op("Add", outputs, g.f64(0.5)), scale)
    in_f = g.op("Cast", in_size, to=DOUBLE)
    # (int) truncation, then the clamps: Floor equals it where the clamp does not decide.
    first = g.op("Max", g.op("Floor", g.op("Add", g.op("Sub", center, support), g.f64(0.5))), g.f64(0.0))
    last = g.op("Min", g.op("Floor", g.op("Add", g.op("Add", center, support), g.f64(0.5))), in_f)
    count = g.op("Sub", last, first)
    taps = g.op("Cast", g.op("ReduceMax", count, keepdims=0), to=INT64)
    tap = g.op("Cast", g.op("Range", g.i64(0), taps, g.i64(1)), to=DOUBLE)
    first2, center2, count2 = (g.op("Unsqueeze", v, g.i64([1])) for v in (first, center, count))
    source = g.op("Add", first2, tap)  # [n, taps], integers
    inverse = g.op("Div", g.f64(1.0), filterscale)
    x = g.op("Mul", g.op("Add", g.op("Sub", source, center2), g.f64(0.5)), inverse)
    values = g.op("Where", g.op("Less", tap, count2), _kernel(g, filter, x), g.f64(0.0))
    # Pillow adds the weights in order: the last column of a CumSum along the taps.
    total = g.op("Gather", g.op("CumSum", values, g.i64(1)), g.op("Sub", taps, g.i64(1)), axis=1)  # [n]
    total = g.op("Unsqueeze", total, g.i64([1]))
    nonzero = g.op("Not", g.op("Equal", total, g.f64(0.0)))
    normalised = g.op("Div", values, g.op("Where", nonzero, total, g.f64(1.0)))
    # normalize_coeffs_8bpc: round half away from zero (a negative zero gives 0 either way).
    scaled = g.op("Mul", normalised, g.f64(ONE))
    weights = g.op(
        "Where",
        g.op("Less", scaled, g.f64(0.0)),
        g.op("Ceil", g.op("Sub", scaled, g.f64(0.5))),
        g.op("Floor", g.op("Add", scaled, g.f64(0.5))),
    )
    # Taps past an output's count have weight 0; their index stays inside the span.
    span_lo = g.op("Cast", g.op("ReduceMin", first, keepdims=0), to=INT64)
    span_hi = g.op("Cast", g.op("ReduceMax", last, keepdims=0), to=INT64)
    index = g.op("Min", source, g.op("Unsqueeze", g.op("Sub", last, g.f64(1.0)), g.i64([1])))
    index = g.op("Sub", g.op("Cast", index, to=INT64), span_lo)
    return AxisTable(index, weights, g.op("Unsqueeze", taps, g.i64([0])), span_lo, span_hi)


def _kernel(g: Graph, filter: int, x: str) -> str:
    """Resample.c's filter functions of ``x`` (float64), with the same operation order."""
    zero, one = g.f64(0.0), g.f64(1.0)
    if filter == BOX:
        inside = g.op("And", g.op("Greater", x, g.f64(-0.5)), g.op("LessOrEqual", x, g.f64(0.5)))
        return g.op("Where", inside, one, zero)
    ax = g.op("Abs", x)
    if filter == BILINEAR:
        return g.op("Where", g.op("Less", ax, one), g.op("Sub", one, ax), zero)
    if filter == BICUBIC:  # a = -0.5
        near = g.op("Mul", g.op("Sub", g.op("Mul", g.f64(1.5), ax), g.f64(2.5)), ax)
        near = g.op("Add", g.op("Mul", near, ax), one)
        far = g.op("Add", g.op("Mul", g.op("Sub", ax, g.f64(5.0)), ax), g.f64(8.0))
        far = g.op("Mul", g.op("Sub", g.op("Mul", far, ax), g.f64(4.0)), g.f64(-0.5))
        return g.op(
            "Where", g.op("Less", ax, one), near, g.op("Where", g.op("Less", ax, g.f64(2.0)), far, zero)
        )
    if filter == HAMMING:
        # onnxruntime 1.18 has no float64 Cos: cos(x) = sin(pi/2 - x), which differs from libm's cos in the
        # last bit for about half the arguments but changed none of 3,000 random 22-bit weight tables.
        cosine = g.op("Sin", g.op("Sub", g.f64(math.pi / 2), g.op("Mul", ax, g.f64(math.pi))))
        window = g.op("Add", g.f64(HAMMING_A), g.op("Mul", g.f64(HAMMING_B), cosine))
        inner = g.op("Where", g.op("Equal", ax, zero), one, g.op("Mul", _sinc(g, ax), window))
        return g.op("Where", g.op("GreaterOrEqual", ax, one), zero, inner)
    # LANCZOS: sinc(x) sinc(x/3) on [-3, 3)
    inside = g.op("And", g.op("GreaterOrEqual", x, g.f64(-3.0)), g.op("Less", x, g.f64(3.0)))
    value = g.op("Mul", _sinc(g, x), _sinc(g, g.op("Div", x, g.f64(3.0))))
    return g.op("Where", inside, value, zero)


def _sinc(g: Graph, x: str) -> str:
    """sin(pi x) / (pi x), 1 at 0 (Resample.c's sinc_filter)."""
    angle = g.op("Mul", x, g.f64(math.pi))
    zero = g.op("Equal", angle, g.f64(0.0))
    ratio = g.op("Div", g.op("Sin", angle), g.op("Where", zero, g.f64(1.0), angle))
    return g.op("Where", zero, g.f64(1.0), ratio)


def rows_pass(g: Graph, x: str, table: AxisTable) -> str:
    """One 8-bit pass along axis 1 of ``x`` (uint8 planes [C, span rows, M], the table's source span).

    The band (one source row per tap of each kept output) is gathered as uint8 (whole rows), and one
    MatMulInteger multiplies it by the weights written as three balanced base-256 digits (uint8 with zero
    point 128): every product and sum is an exact int32. The digits' sums are combined in float64 (exact
    integers below 2**53) into Pillow's ``2**21 + Σ pixel × weight``, then ``clip(acc >> 22, 0, 255)``."""
    planes = g.op("Shape", x, start=0, end=1)
    n = g.op("Shape", table.weights, start=0, end=1)
    band = g.op("Gather", x, g.op("Reshape", table.index, g.i64([-1])), axis=1)
    band = g.op("Reshape", band, g.op("Concat", planes, n, table.taps, g.i64([-1]), axis=0))
    sums = g.op("MatMulInteger", _digits(g, table.weights), band, g.const(128, UINT8), g.const(0, UINT8))
    places = g.f64(np.array([1.0, 256.0, 65536.0]).reshape(3, 1))  # sums: int32 [C, n, 3, M]
    acc = g.op("ReduceSum", g.op("Mul", g.op("Cast", sums, to=DOUBLE), places), g.i64([2]), keepdims=0)
    acc = g.op("Add", acc, g.f64(float(1 << (PRECISION_BITS - 1))))
    scaled = g.op("Floor", g.op("Mul", acc, g.f64(1.0 / ONE)))
    return g.op("Cast", g.op("Min", g.op("Max", scaled, g.f64(0.0)), g.f64(255.0)), to=UINT8)


def _digits(g: Graph, weights: str) -> str:
    """The fixed-point weights [n, taps] (|w| < 2**23) as balanced base-256 digits in [-128, 127], least
    significant first, stored as uint8 ``digit + 128``: [n, 3, taps]."""
    digits = []
    remainder = weights
    for _ in range(3):
        carry = g.op("Floor", g.op("Mul", g.op("Add", remainder, g.f64(128.0)), g.f64(1 / 256)))
        digit = g.op("Sub", remainder, g.op("Mul", carry, g.f64(256.0)))
        digits.append(g.op("Unsqueeze", digit, g.i64([1])))
        remainder = carry
    return g.op("Cast", g.op("Add", g.op("Concat", *digits, axis=1), g.f64(128.0)), to=UINT8)


def transpose(g: Graph, x: str) -> str:
    """Planes [C, A, B] → [C, B, A]."""
    return g.op("Transpose", x, perm=[0, 2, 1])


def slice_axis(g: Graph, x: str, lo: str, hi: str, axis: int) -> str:
    return g.op(
        "Slice", x, g.op("Unsqueeze", lo, g.i64([0])), g.op("Unsqueeze", hi, g.i64([0])), g.i64([axis])
    )


def resize_window(
    g: Graph,
    x: str,
    size: tuple[str, str],
    out: tuple[str, str],
    window: tuple[str, str, str, str],
    filter: int,
    pass_order: str,
) -> str:
    """The window (top, left, n_h, n_w) (inside the resized image) of uint8 planes [C, H, W] ``x`` of ``size``
    (H, W) resized to ``out``: Pillow's passes, in Pillow's order, on the kept outputs only."""
    (h, w), (out_h, out_w), (top, left, n_h, n_w) = size, out, window
    rows = axis_table(g, h, out_h, top, n_h, filter)
    cols = axis_table(g, w, out_w, left, n_w, filter)

    def horizontal_first(b: Graph) -> str:
        part = slice_axis(b, x, rows.span_lo, rows.span_hi, 1)
        part = transpose(b, slice_axis(b, part, cols.span_lo, cols.span_hi, 2))
        return rows_pass(b, transpose(b, rows_pass(b, part, cols)), rows)

    def vertical_first(b: Graph) -> str:
        part = slice_axis(b, x, cols.span_lo, cols.span_hi, 2)
        part = rows_pass(b, slice_axis(b, part, rows.span_lo, rows.span_hi, 1), rows)
        return transpose(b, rows_pass(b, transpose(b, part), cols))

    if pass_order == "pillow12":
        return horizontal_first(g)
    # Pillow 13: vertical first iff out_h < h and h - out_h > 2 (w - out_w) (filters.vertical_first).
    shrink_h = g.op("Sub", h, out_h)
    v_first = g.op(
        "And",
        g.op("Less", out_h, h),
        g.op("Greater", shrink_h, g.op("Mul", g.i64(2), g.op("Sub", w, out_w))),
    )
    branches = {}
    for key, passes in (("then_branch", vertical_first), ("else_branch", horizontal_first)):
        branch = g.subgraph()
        branches[key] = branch.to_graph(key, [], [(passes(branch), UINT8)])
    return g.op("If", v_first, **branches)


def nearest_indices(g: Graph, in_size: str, out_size: str, lo: str, n: str) -> tuple[str, str]:
    """Geometry.c ImagingScaleAffine's source index of outputs [lo, lo + n): ``scale / 2`` plus ``scale``
    added once per output in double (a CumSum, sequential as the C loop), truncated; and whether each is
    inside the image (Pillow leaves the others 0)."""
    scale = axis_scale(g, in_size, out_size)
    hi = g.op("Add", lo, n)
    steps = g.op("Expand", scale, g.op("Unsqueeze", g.op("Sub", hi, g.i64(1)), g.i64([0])))
    start = g.op("Unsqueeze", g.op("Mul", scale, g.f64(0.5)), g.i64([0]))
    positions = g.op("CumSum", g.op("Concat", start, steps, axis=0), g.i64(0))
    index = g.op("Cast", g.op("Floor", positions), to=INT64)
    index = slice_axis(g, index, lo, hi, 0)
    inside = g.op("Less", index, in_size)
    return g.op("Min", index, g.op("Sub", in_size, g.i64(1))), inside


def resize_nearest(
    g: Graph, x: str, size: tuple[str, str], out: tuple[str, str], window: tuple[str, str, str, str]
) -> str:
    """The window of planes ``x`` resized with NEAREST: two gathers of whole rows (columns via a
    transpose)."""
    (h, w), (out_h, out_w), (top, left, n_h, n_w) = size, out, window
    rows, rows_in = nearest_indices(g, h, out_h, top, n_h)
    cols, cols_in = nearest_indices(g, w, out_w, left, n_w)
    picked = transpose(g, g.op("Gather", transpose(g, g.op("Gather", x, rows, axis=1)), cols, axis=1))
    inside = g.op(
        "And",
        g.op("Unsqueeze", rows_in, g.i64([0, 2])),
        g.op("Unsqueeze", cols_in, g.i64([0, 1])),
    )
    return g.op("Where", inside, picked, g.const(0, UINT8))
