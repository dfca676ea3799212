"""Modes F (float32) and I (int32): Resample.c's ``*_32bpc`` passes, a double sum over the taps in order."""

from __future__ import annotations

import numpy as np

from edgeinfer._resample.plans import Pass32


def _apply_32bit(values: np.ndarray, plan: Pass32, axis: int, mode: str) -> np.ndarray:
    """Resample.c *_32bpc: a double sum over the taps in order, stored as float32 (F) or rounded int32 (I)."""
    index, weights, used = plan
    acc = None
    for j in range(weights.shape[1]):
        taken = np.take(values, index[:, j], axis=axis).astype(np.float64)
        w = weights[:, j] if axis == 1 else weights[:, j, None]
        step = taken * w
        if acc is None:
            acc = 0.0 + step  # ss starts at 0.0, which turns a -0.0 product into +0.0
        else:
            u = used[:, j] if axis == 1 else used[:, j, None]
            acc = np.where(u, acc + step, acc)
    if mode == "F":
        return acc.astype(np.float32)
    # ROUND_UP: add or subtract one half, then truncate toward zero.
    return np.trunc(np.where(acc >= 0.0, acc + 0.5, acc - 0.5)).astype(np.int32)


def resample_32bit(
    window: np.ndarray, mode: str, h_plan: Pass32 | None, v_plan: Pass32 | None, vertical_first: bool
) -> np.ndarray:
    """The passes that ``h_plan`` / ``v_plan`` (None: no such pass) describe, in Pillow's order."""
    passes = [(1, h_plan), (0, v_plan)]
    if vertical_first:
        passes.reverse()
    values = window
    for axis, plan in passes:
        if plan is not None:
            values = _apply_32bit(values, plan, axis, mode)
    return values
