"""Mixed precision chosen by measured sensitivity: keep in float the fewest nodes that bring INT8 to the bar.

The nodes are ranked by what their quantization costs the signal (:func:`rank_by_sqnr_drop`: onnxruntime's
``qdq_loss_debug`` activation SQNR against the float model, and how much of it each node loses), then
:func:`keep_in_float` keeps the most harmful in float one more at a time until the agreement measured by the
caller meets the target, and finally drops any kept node the agreement does not need, so the set kept is
minimal: removing any one of its nodes misses the target. Progress is printed at every measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class KeptInFloat:
    """What the loop kept in float, whether the target was met, and every measurement on the way."""

    nodes: tuple[str, ...]
    agreement: float
    met: bool
    history: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


def keep_in_float(
    ranked: Sequence[str],
    agreement_of: Callable[[tuple[str, ...]], float],
    target: float,
    *,
    max_kept: int | None = None,
    progress: Callable[[str], None] = print,
) -> KeptInFloat:
    """Greedy accuracy-aware fallback: ``ranked`` (most harmful first) kept in float one by one until
    ``agreement_of(kept)`` ≥ ``target``, then each kept node dropped again when the target still holds.

    ``agreement_of`` builds and measures the model with those nodes in float (top-1 agreement with FP32).
    Stops at ``max_kept`` nodes (default: all); ``met`` says whether the target was reached.
    """
    history: list[tuple[tuple[str, ...], float]] = []

    def measure(kept: tuple[str, ...]) -> float:
        agreement = agreement_of(kept)
        history.append((kept, agreement))
        progress(f"      float: {len(kept):3d} node(s) → agreement {agreement:.2%}"
                 f"{'  (' + kept[-1] + ')' if kept else ''}")  # fmt: skip
        return agreement

    kept: tuple[str, ...] = ()
    agreement = measure(kept)
    limit = len(ranked) if max_kept is None else min(max_kept, len(ranked))
    for node in ranked[:limit]:
        if agreement >= target:
            break
        kept += (node,)
        agreement = measure(kept)
    if agreement < target:
        return KeptInFloat(kept, agreement, False, history)
    for node in reversed(kept[:-1]):  # the last one added was needed: without it the target was missed
        trial = tuple(n for n in kept if n != node)
        trial_agreement = measure(trial)
        if trial_agreement >= target:
            kept, agreement = trial, trial_agreement
    return KeptInFloat(kept, agreement, True, history)


def rank_by_sqnr_drop(
    nodes: Sequence[tuple[str, Sequence[str], Sequence[str]]], sqnr: Mapping[str, float]
) -> list[str]:
    """Node names, most harmful first: the SQNR (dB, quantized vs float model, per tensor) a node loses
    between its worst input and its output. ``nodes`` are (name, inputs, outputs) in graph order."""
    drops = []
    for name, inputs, outputs in nodes:
        ins = [sqnr[t] for t in inputs if t in sqnr]
        outs = [sqnr[t] for t in outputs if t in sqnr]
        if ins and outs:
            drops.append((min(ins) - min(outs), name))
    return [name for _, name in sorted(drops, key=lambda d: -d[0])]


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``other`` against ``reference``, in dB."""
    noise = np.linalg.norm((reference - other).ravel())
    return float(20 * np.log10(max(np.linalg.norm(reference.ravel()), 1e-12) / max(noise, 1e-12)))


def quantized_activations(model: Any) -> dict[str, tuple[float, int, np.dtype]]:
    """Activation tensors of a QDQ model that go through QuantizeLinear → DequantizeLinear:
    {tensor: (scale, zero point, integer type)}. Weights (stored quantized, no QuantizeLinear) are not."""
    from onnx import numpy_helper

    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    found = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in consts and consts[node.input[1]].size == 1:
            zero = consts[node.input[2]]
            found[node.input[0]] = (float(consts[node.input[1]]), int(zero), zero.dtype)
    return found


def local_sqnr(
    activations: Mapping[str, np.ndarray], quantized: Mapping[str, tuple[float, int, np.dtype]]
) -> dict[str, float]:
    """SQNR (dB) of each float activation against itself through its own Q/DQ (scale, zero point, range):
    how much signal quantizing that one tensor loses, alone."""
    out = {}
    for name, (scale, zero, dtype) in quantized.items():
        if name not in activations:
            continue
        info = np.iinfo(dtype)
        x = activations[name]
        dq = (np.clip(np.round(x / scale) + zero, info.min, info.max) - zero) * scale
        out[name] = sqnr_db(x, dq)
    return out


def keep_tensors_float(model: Any, tensors: Sequence[str]) -> Any:
    """``model`` (QDQ, an onnx ModelProto; edited in place and returned) with the activation tensors
    ``tensors`` left in float: their QuantizeLinear → DequantizeLinear pairs bypassed and removed, so the
    nodes reading them compute in float (onnxruntime fuses a node into int8 only between Q/DQ pairs)."""
    graph = model.graph
    wanted = set(tensors)
    quantize = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in wanted}
    dequantize = {n.output[0]: n.input[0] for n in graph.node
                  if n.op_type == "DequantizeLinear" and n.input[0] in quantize}  # fmt: skip
    rename = {dq_out: quantize[q_out].input[0] for dq_out, q_out in dequantize.items()}
    dropped = set(quantize) | set(rename)  # nodes named by their (single) output
    kept = [n for n in graph.node if n.output[0] not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for output in graph.output:
        if output.name in rename:
            raise ValueError(f"keep_tensors_float: {output.name} is a graph output, rename not supported")
    del graph.node[:]
    graph.node.extend(kept)
    return model
