"""Pass plans: what one pass of a resize needs, built once per geometry and cached by the bytes it holds.

An 8-bit pass is a batch of equal band blocks (``Pass8``): outputs grouped in blocks, each a product of a
small weight matrix with a strided view of the source, one batched BLAS call per group of blocks. The
block size comes from a measured cost model (``_choose_blocks``), and the float32 error bound per output
(``doubt_margins``) says which results lie too close to a rounding edge to be trusted to float32.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from edgeinfer._resample.coefficients import axis_scale, coefficients, fixed_point
from edgeinfer._resample.filters import PRECISION_BITS

# Cost of the banded products in ns, measured (OpenBLAS's small-matrix kernel, AVX-512, 1 thread): a block
# over M rows and ``span`` source pixels costs 0.46 us plus 0.29 ns per row and pixel for every 16 outputs
# of the block (they are computed together; one output is a matrix-vector product, 0.4 of that); a group
# of blocks adds a call from Python, and each product call (a strip of rows) its conversions and rounding.
# Blocks are sized to balance these against the multiplied zeros.
_BLOCK_NS = 460
_GROUP_NS = 5000
_CALL_NS = 20000
_PIXEL_NS = 0.29
_OUTPUTS_PER_KERNEL = 16
_MATVEC_SHARE = 0.4
_F32_EPS = 2.0**-24  # unit roundoff of float32
# OpenBLAS runs a gemm with m*n*k up to this on the calling thread. Waking its worker threads costs more
# than these banded products gain, and on a busy machine a sleeping worker can stall a call for a whole
# scheduler time slice, so every product is kept below it.
SINGLE_THREAD_MNK = 65536 * 4
STRIP_BYTES = 1 << 22  # float32 strip buffers: big enough for few calls, small enough to reuse
_DIRECT_TAPS = 1024  # filters at least this long take the direct float64 path
PLAN_CACHE_BYTES = 32 << 20  # pass plans kept for reuse, in bytes of their arrays
# Largest block of outputs considered: bounds the search (a cost estimate per candidate size) and the
# weights one block stores.
_MAX_BLOCK = 512
# Blocks read at most this many times the taps of an output, so the weights stored stay within as many
# times the coefficient table, whatever the cost model says of images one pixel wide: a block of b outputs
# spans (b - 1) * scale + taps source pixels.
_SPAN_TAPS = 8
_MEASURED_CANDIDATES = 4  # block sizes the estimate ranks best, then measured exactly
# The weights stored take 4 * span bytes per output: groups whose drift would more than double the span a
# block needs are not taken (one-pixel-wide images favour few groups, whatever the zeros).
_SPAN_GROWTH = 2
_LARGEST_BREADTH_BITS = 12  # plans are built for breadths rounded up to a power of two, at most 2**12


def cached_in_bytes(max_bytes: int) -> Callable:
    """An LRU cache for a function of hashable arguments whose results hold NumPy arrays, bounded by the
    bytes of those arrays (a few plans for very wide images would otherwise hold hundreds of MB).
    Results larger than ``max_bytes`` are not kept."""

    def decorate(function: Callable) -> Callable:
        kept: OrderedDict = OrderedDict()
        sizes: dict = {}
        lock = threading.Lock()

        def cached(*args):
            with lock:
                if args in kept:
                    kept.move_to_end(args)
                    return kept[args]
            value = function(*args)
            size = _array_bytes(value)
            with lock:
                if size <= max_bytes and args not in kept:
                    kept[args], sizes[args] = value, size
                    while sum(sizes.values()) > max_bytes:
                        oldest, _ = kept.popitem(last=False)
                        del sizes[oldest]
            return value

        cached.cache_clear = lambda: (kept.clear(), sizes.clear())
        cached.cached_bytes = lambda: sum(sizes.values())
        return cached

    return decorate


def _array_bytes(value: object) -> int:
    """Bytes of the NumPy arrays in ``value``, its items and its attributes (one level deep)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_array_bytes(v) for v in value)
    if hasattr(value, "__dict__"):
        return sum(v.nbytes for v in vars(value).values() if isinstance(v, np.ndarray))
    return 0


def bucket(breadth: int) -> int:
    """Round up to a power of two (at most 2**12), so that plans are shared between similar images."""
    return 1 << min(_LARGEST_BREADTH_BITS, max(0, breadth - 1).bit_length())


@cached_in_bytes(PLAN_CACHE_BYTES)
def plan(
    mode: str, in_size: int, out_size: int, filter: int, lo: int, hi: int, breadth: int
) -> tuple[int, int, object]:
    """What one pass needs to produce outputs [lo, hi): the source span [src_lo, src_hi) and the weights.

    F and I get a Pass32 (per-output tap indices and double weights, applied tap by tap); 8-bit modes get a
    Pass8, whose blocks suit products over ``breadth`` independent rows or columns.
    """
    first, count, weights = coefficients(in_size, out_size, filter, lo, hi)
    src_lo, src_hi = int(first.min()), int((first + count).max())
    if mode in ("F", "I"):
        taps = np.arange(weights.shape[1])
        index = np.minimum(first[:, None] + taps, src_hi - 1) - src_lo
        return src_lo, src_hi, Pass32(index, weights, taps < count[:, None])
    scale = axis_scale(in_size, out_size)
    return src_lo, src_hi, Pass8(first - src_lo, count, fixed_point(weights), scale, breadth)


class Pass32(NamedTuple):
    """One F/I pass: per output, the source index of each tap (clamped, relative to the span), its double
    weight, and whether the tap is one of the output's own (``used``; the others weigh 0)."""

    index: np.ndarray
    weights: np.ndarray
    used: np.ndarray


class Pass8:
    """One 8-bit pass as a batch of equal band blocks, with the bound that makes float32 rounding provable.

    Outputs are grouped in ``nblocks`` blocks of ``block`` outputs; block i reads ``span`` source pixels
    starting at ``start + i * stride`` of the source axis padded with ``pad_before`` / ``pad_after`` zeros.
    The equal stride lets one strided view and one batched matmul call compute every block.

    The products run in float32; ``doubt_margins`` says which results need an exact second look (none
    when every tap weighs the same: ``unit``).
    """

    def __init__(self, first, count, fixed, scale: float, breadth: int) -> None:
        self.size, ntaps = fixed.shape
        self.fixed = fixed
        source = int((first + count).max())
        # Filters of thousands of taps (extreme downscales) take one exact float64 product per output:
        # blocks would multiply mostly zeros, and the float32 error bound would say nothing.
        self.direct = ntaps >= _DIRECT_TAPS
        if self.direct:
            block, stride, span, group, starts = 1, 1, 1, 1, (0,)
        else:
            block, stride, span, group, starts = _choose_blocks(first, first + count, scale, breadth)
        self.block, self.stride, self.span, self.group = block, stride, span, group
        self.nblocks = -(-self.size // block)
        self.padded_size = self.nblocks * block
        self.pad_before = max(0, -min(starts))
        self.starts = [start + self.pad_before for start in starts]  # of each group, in the padded axis
        block_starts = np.repeat(self.starts, group)[: self.nblocks] + stride * (
            np.arange(self.nblocks) % group
        )
        self.length = max(self.pad_before + source, int(block_starts.max()) + span)
        self.pad_after = self.length - self.pad_before - source
        self.clips = bool(fixed.min() < 0) or _largest_sum(fixed) + 0.5 >= 256.0
        if self.direct:
            self.first, self.count = first + self.pad_before, count
            return

        outputs = np.arange(self.size)
        taps = np.arange(ntaps)
        used = taps < count[:, None]
        column = first[:, None] + self.pad_before - block_starts[outputs // block][:, None] + taps
        # Stored (nblocks, span, block) and used transposed: with the weights in that layout OpenBLAS takes
        # its small-matrix kernel, which skips packing the source operand (2-3x faster on these shapes).
        stack = np.zeros((self.nblocks, span, block), np.float32)
        where = (
            np.broadcast_to((outputs // block)[:, None], used.shape)[used],
            column[used],
            np.broadcast_to((outputs % block)[:, None], used.shape)[used],
        )
        # When every tap weighs the same (BOX at an integer scale, where float32 rounding would put whole
        # classes of sums within the error bound of a tie), the products add up pixels, exact integers, and
        # the rounding (passes8) applies the weight in float64.
        weights = fixed[used]
        self.unit = float(weights[0]) * 2.0**-PRECISION_BITS if weights.min() == weights.max() > 0 else None
        stack[where] = 1.0 if self.unit else (weights * 2.0**-PRECISION_BITS).astype(np.float32)
        self.stack = stack.transpose(0, 2, 1)
        # Source positions of every tap in the padded axis, for the exact recomputation.
        self.index = np.minimum(first[:, None] + taps, source - 1) + self.pad_before
        # One margin (the largest) for the rows float32 rounds, 0 for those it computes exactly; the rows of
        # the smaller class, ``minor``, are rounded apart (per-row constants would make every pass a
        # broadcast, which NumPy runs several times slower).
        margins = doubt_margins(fixed)
        exact_rows = margins == 0
        self.margin, self.minor_margin, self.minor = float(margins.max()), 0.0, None
        if exact_rows.any() and not exact_rows.all():
            self.minor = np.flatnonzero(exact_rows if 2 * exact_rows.sum() <= self.size else ~exact_rows)
            if not exact_rows[self.minor[0]]:
                self.margin, self.minor_margin = self.minor_margin, self.margin
            self.is_minor = np.zeros(self.padded_size, bool)
            self.is_minor[self.minor] = True

    def products(self, src: np.ndarray, axis: int) -> np.ndarray:
        """Direct plans: the exact accumulations (before rounding), outputs along ``axis`` of ``src``.

        Pixels times 22-bit weights are integers below 2**31, so float64 sums are exact in any order.
        """
        moved = np.moveaxis(src, axis, 0)
        acc = np.empty((self.padded_size,) + moved.shape[1:])
        for i, (lo, n) in enumerate(zip(self.first.tolist(), self.count.tolist(), strict=True)):
            acc[i] = np.tensordot(self.fixed[i, :n], moved[lo : lo + n].astype(np.float64), axes=1)
        return acc

    def pad(self, values: np.ndarray, axis: int) -> None:
        """Zero the padding of ``values`` along ``axis`` (the source occupies the middle)."""
        index = [slice(None)] * values.ndim
        index[axis] = slice(0, self.pad_before)
        values[tuple(index)] = 0
        index[axis] = slice(self.length - self.pad_after, self.length)
        values[tuple(index)] = 0

    def groups_of(self, values: np.ndarray, axis: int) -> Iterator[tuple[slice, np.ndarray]]:
        """Per group of blocks: its slice of the blocks, and a read-only view of ``values`` (padded source
        along ``axis``) with the block index in front and each block's ``span`` source pixels along
        ``axis``."""
        step = values.strides[axis]
        shape = list(values.shape)
        shape[axis] = self.span
        strides = (self.stride * step, *values.strides)
        for g, start in enumerate(self.starts):
            blocks = slice(g * self.group, min(self.nblocks, (g + 1) * self.group))
            origin = [slice(None)] * values.ndim
            origin[axis] = slice(start, None)
            count = blocks.stop - blocks.start
            yield (
                blocks,
                np.lib.stride_tricks.as_strided(
                    values[tuple(origin)], (count, *shape), strides, writeable=False
                ),
            )


def _largest_sum(fixed: np.ndarray) -> float:
    """The largest value a pass can produce before clipping: 255 times the largest sum of |weights|.

    Without negative weights and with row sums of at most 2**22 (+ rounding slack) no output leaves
    [0, 255], so the saturation of clip8 can be skipped."""
    return 255.0 * float(np.abs(fixed).sum(axis=1).max()) * 2.0**-PRECISION_BITS


def doubt_margins(fixed: np.ndarray) -> np.ndarray:
    """Per output: how close to a rounding edge a float32 result may lie before ``_round_into`` has it
    recomputed exactly; 0 where float32 computes it exactly.

    The fixed point weights scaled by 2**-22 are exact in float32 (integers below 2**24 times a power of
    two). When a row's weights share a power-of-two factor large enough that every partial sum (and
    acc + 1/2) fits in 24 bits, float32 computes that row exactly: margin 0 (such rows, e.g. the halves of
    a 2x BOX, hit exact .5 ties all the time). Otherwise products and sums are rounded, by at most
    gamma(taps + 1) * 255 * sum|w| in any summation order, with or without FMA: 0 * p and s + 0 are
    exact, so each nonzero product meets at most ``taps`` roundings however BLAS blocks the band.
    Adding 1/2 - margin rounds by half an ulp; the margin is twice all of that.
    """
    ntaps = fixed.shape[1]
    magnitude = np.abs(fixed)
    total = magnitude.sum(axis=1)
    largest = 255.0 * total * 2.0**-PRECISION_BITS
    ints = magnitude.astype(np.int64)
    # A row of zeros has no lowest set bit: 2**40, above any weight (< 2**23), keeps it out of the minimum.
    lowest_bit = np.where(ints > 0, ints & -ints, 1 << 40).min(axis=1)
    exact = (255.0 * total / lowest_bit < 2.0**24) & (
        largest + 0.5 < lowest_bit * 2.0 ** (24 - PRECISION_BITS)
    )
    gamma = (ntaps + 1) * _F32_EPS / (1 - (ntaps + 1) * _F32_EPS)
    # 2**-20 covers the float32 rounding of the two constants of floor_half.
    bound = 2 * gamma * largest + (largest + 1) * 2.0**-23 + 2.0**-20
    return np.where(exact, 0.0, bound)


def _choose_blocks(first: np.ndarray, last: np.ndarray, scale: float, breadth: int) -> tuple:
    """(block, stride, span, group, starts) minimising calls and multiplied zeros for ``breadth``
    rows/columns.

    Block i covers outputs [i*block, (i+1)*block) and reads ``span`` source pixels from
    ``starts[i // group] + (i % group) * stride``: blocks advance by the whole ``stride`` within a group of
    ``group`` blocks (one strided view, one batched product) and each group starts afresh, so that the
    fraction of ``block * scale`` dropped from the stride does not pile up over all the blocks and widen
    every block's span. Candidates are ranked with an estimated span; the best few are measured exactly.
    """
    size = len(first)
    taps = int((last - first).max())
    largest = int((_SPAN_TAPS - 1) * taps / scale) + 1
    blocks = np.arange(1, min(size, _MAX_BLOCK, largest) + 1)
    nblocks = -(-size // blocks)
    drift = blocks * scale - np.floor(blocks * scale)
    best = None
    for groups in (1, None):  # the best blocks of one group, and of groups without drift
        per_group = nblocks if groups else 1
        estimate = (blocks - 1) * scale + taps + per_group * drift
        cost = _product_cost(breadth, nblocks, -(-nblocks // per_group), blocks, estimate)
        for block in blocks[np.argsort(cost)[:_MEASURED_CANDIDATES]].tolist():
            best = min(best or (math.inf,), _measured_blocks(first, last, scale, breadth, block))
    return best[1:]


def _measured_blocks(first: np.ndarray, last: np.ndarray, scale: float, breadth: int, block: int) -> tuple:
    """(cost, block, stride, span, group, starts) of the best group size for ``block``."""
    size = len(first)
    count = -(-size // block)
    fill = count * block - size
    lo = np.concatenate([first, np.full(fill, first[-1])]).reshape(count, block).min(axis=1)
    hi = np.concatenate([last, np.full(fill, last[-1])]).reshape(count, block).max(axis=1)
    stride = int(block * scale)
    needed = int((hi - lo).max())
    best: tuple = (math.inf,)
    group = count
    while True:
        local = stride * (np.arange(count) % group)
        ngroups = -(-count // group)
        padded = np.full(ngroups * group, np.iinfo(np.int64).max)
        padded[:count] = lo - local
        starts = padded.reshape(ngroups, group).min(axis=1)
        span = int((hi - local - np.repeat(starts, group)[:count]).max())
        fits = span <= _SPAN_GROWTH * needed
        cost = _product_cost(breadth, count, ngroups, block, span) if fits else math.inf
        best = min(best, (cost, block, stride, span, group, tuple(starts.tolist())))
        if group == 1:
            return best
        group = max(1, group // 2)


def _product_cost(breadth: int, nblocks, ngroups, block, span):
    """Estimated ns of a pass's products over ``breadth`` rows (or arrays of candidates): each product is
    kept below SINGLE_THREAD_MNK, so a wide band takes several calls."""
    calls = np.ceil(breadth / np.clip(SINGLE_THREAD_MNK // (span * block), 1, breadth))
    width = np.where(block == 1, _MATVEC_SHARE, np.ceil(block / _OUTPUTS_PER_KERNEL))
    overhead = calls * (_CALL_NS + ngroups * _GROUP_NS + nblocks * _BLOCK_NS)
    return overhead + _PIXEL_NS * breadth * nblocks * span * width
