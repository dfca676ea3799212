"""Training precision chosen by measurement: bfloat16 autocast only where it is faster on this machine.

bfloat16 autocast halves a training step on CPUs with native bfloat16 (AVX512-BF16, AMX) and makes it about
15x slower on CPUs without it (AVX2 only: most laptops and desktops). No flag says which kernels torch will
pick, so ``auto`` times a few real steps of both on the run's own network and first batch and keeps bf16 only
when it is faster by a clear margin. The timing runs on a copy of the network with a fresh optimizer and
restores torch's random state, so the run trains exactly as it would with the chosen precision given
explicitly.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
# bf16 is kept only when a step takes at most 1/1.2 of fp32's: below that the gain is within the timing noise
# of a shared machine, and bf16 costs accuracy headroom for nothing.
BF16_MIN_SPEEDUP = 1.2
TIMED_STEPS = 2  # per precision, after one untimed warm-up step (oneDNN builds its kernels on the first)


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run trains in and why: ``seconds_per_step`` holds the measured medians when ``requested`` is
    "auto" (empty otherwise)."""

    precision: str
    requested: str
    reason: str
    seconds_per_step: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context a training step runs under (disabled for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def choose_precision(requested: str, measure: Callable[[], dict[str, float]]) -> PrecisionChoice:
    """``requested`` as is, or for "auto" the faster of fp32 and bf16 by ``measure()`` (seconds per step of
    each, e.g. :func:`time_training_steps`): bf16 only when at least :data:`BF16_MIN_SPEEDUP` times faster.

    Raises:
        ValueError: ``requested`` is not one of :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return PrecisionChoice(requested, requested, "given")
    times = measure()
    speedup = times["fp32"] / times["bf16"]
    precision = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    reason = (
        f"measured: a step takes {times['fp32'] * 1e3:.0f} ms in fp32, {times['bf16'] * 1e3:.0f} ms in bf16 "
        f"({speedup:.2f}x); bf16 is kept from {BF16_MIN_SPEEDUP}x"
    )
    return PrecisionChoice(precision, requested, reason, times)


def time_training_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    device: torch.device,
) -> dict[str, float]:
    """Median seconds of a training step (forward, backward, optimizer step) in fp32 and in bf16, on a copy
    of ``model`` and its ``optimizer`` (copied together, so the copy steps the copied parameters); the
    caller's network, optimizer and random state are left as they were.

    bf16 stops after one timed step when that step is already slower than fp32's median: it cannot win, and
    where it is 15x slower each further step would cost seconds for nothing."""
    x, y = batch
    x = x.to(device, memory_format=torch.channels_last)
    y = y.to(device)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator
        for precision in times:
            trial, trial_optimizer = copy.deepcopy((model, optimizer))
            trial.train()
            for step in range(1 + TIMED_STEPS):
                start = time.perf_counter()
                with autocast(precision, device):
                    loss = loss_fn(trial(x), y)
                trial_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                trial_optimizer.step()
                if step:
                    times[precision].append(time.perf_counter() - start)
                    if precision == "bf16" and times["bf16"][0] > statistics.median(times["fp32"]):
                        break
    return {precision: statistics.median(values) for precision, values in times.items()}
