"""Threads: how many a resize may use (``parallel``), the pool that runs the extra ones, and per-thread
work buffers (``SCRATCH``)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

PARALLEL_WORK = 1 << 20  # pixels a pass must read before it is split over threads
_SCRATCH_KEPT = 8 << 20  # largest work buffer (in bytes) kept between calls


class _Scratch(threading.local):
    """Per-thread work buffers (float32 unless asked), reused from call to call.

    Freshly allocated arrays of a few hundred KB cost more than the arithmetic done in them here: glibc
    returns freed memory at the top of the heap to the system, so every call would page-fault it back in.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        size = math.prod(shape)
        if size * np.dtype(dtype).itemsize > _SCRATCH_KEPT:  # the work dwarfs the page faults: not kept
            return np.empty(shape, dtype)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)


SCRATCH = _Scratch()


class _Parallelism(threading.local):
    threads = 1


_PARALLELISM = _Parallelism()


@contextmanager
def parallel(threads: int) -> Iterator[None]:
    """Let resizes on this thread split their work over ``threads`` threads (NumPy and BLAS release the
    GIL); only images with enough work to pay for the hand-off are split."""
    previous, _PARALLELISM.threads = _PARALLELISM.threads, max(1, int(threads))
    try:
        yield
    finally:
        _PARALLELISM.threads = previous


def allowed() -> int:
    """How many threads resizes on this thread may use (see :func:`parallel`)."""
    return _PARALLELISM.threads


def in_parallel(starts: range, body: Callable[[int], None], work: int) -> None:
    """``body(start)`` for every start, split into contiguous groups over the threads ``parallel`` allows
    when ``work`` (pixels read) is large enough."""
    threads = min(_PARALLELISM.threads, len(starts))
    if threads <= 1 or work < PARALLEL_WORK:
        for start in starts:
            body(start)
        return

    def group(i: int) -> None:
        for start in starts[len(starts) * i // threads : len(starts) * (i + 1) // threads]:
            body(start)

    futures = [pool(threads - 1).submit(group, i) for i in range(1, threads)]
    group(0)
    for future in futures:
        future.result()


class _Pool:
    """One executor for the whole process, replaced by a larger one when more workers are asked for."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.executor: ThreadPoolExecutor | None = None
        self.workers = 0


_POOL = _Pool()


def pool(workers: int) -> ThreadPoolExecutor:
    """An executor with at least ``workers`` threads."""
    with _POOL.lock:
        if _POOL.executor is None or _POOL.workers < workers:
            _POOL.executor = ThreadPoolExecutor(workers, thread_name_prefix="edgeinfer-resample")
            _POOL.workers = workers
        return _POOL.executor
