"""Latency and throughput of a Model, preprocessing and inference measured separately.

Like onnxruntime's perf test or TFLite's benchmark tool: warm up, then time each call with
``perf_counter`` and report percentiles. Used by ``edgeinfer bench``; ``edgeinfer bench --sweep`` measures
every engine setting worth trying on this device (threads, spinning, graph optimisation, engine) and says
which is fastest, and ``Model(engine="auto")`` runs the same sweep over the engines. So this module never
imports the Model: it is given models, or the function that opens them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgeinfer._engines import EngineOptions, available_engines
from edgeinfer.errors import ModelError
from edgeinfer.pipeline import DYNAMIC_SIDE
from edgeinfer.selftest import Classifier, SelfTestResult


class Benchmarked(Classifier, Protocol):
    """What the bench uses of a model; :class:`edgeinfer.Model` is one."""

    def self_test_document(self) -> dict[str, Any] | None: ...

    def verify(self) -> SelfTestResult: ...


@dataclass(frozen=True)
class Timing:
    """Per-call latencies in seconds for one stage at one batch size."""

    stage: str
    batch: int
    p50: float
    p90: float
    p99: float
    mean: float

    @property
    def images_per_second(self) -> float:
        return self.batch / self.mean


def benchmark(model: Benchmarked, *, batch_size: int, runs: int, image: Any = None) -> list[Timing]:
    """Time preprocessing of one image, then inference at batch 1 and at ``batch_size``.

    ``image`` (path, bytes, PIL image or array) is decoded and preprocessed in the first stage; by
    default a random uint8 image of the model's input size is used, so that stage is the transform alone.
    """
    if image is None:
        declared = model.metadata.input
        height, width = declared.shape[2:] if declared.layout == "NCHW" else declared.shape[:2]  # HWC
        shape = (height or DYNAMIC_SIDE, width or DYNAMIC_SIDE)
        image = np.random.default_rng(0).integers(
            0, 256, shape + ((3,) if model.metadata.image_mode == "RGB" else ())
        )
        image = image.astype(np.uint8)
    tensor = model.preprocess(image)
    timings = [_time("preprocess", 1, runs, lambda: model.preprocess(image))]
    for batch in dict.fromkeys((1, batch_size)):
        x = np.ascontiguousarray(np.broadcast_to(tensor, (batch, *tensor.shape)))
        timings.append(_time("inference", batch, runs, lambda x=x: model.run(x)))
    return timings


def _time(stage: str, batch: int, runs: int, fn: Callable[[], Any]) -> Timing:
    for _ in range(max(3, runs // 10)):
        fn()
    seconds = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        seconds[i] = time.perf_counter() - start
    p50, p90, p99 = np.percentile(seconds, [50, 90, 99])
    return Timing(stage, batch, float(p50), float(p90), float(p99), float(seconds.mean()))


@dataclass(frozen=True)
class SweepRow:
    """One setting: its self-test verdict and median latencies (ms) at batch 1 and at the batch size."""

    options: EngineOptions
    self_test: str  # "pass", "none" (the model has no self-test), or "fail: <reason>"
    batch_1_ms: float | None
    batch_n_ms: float | None

    @property
    def eligible(self) -> bool:
        """A setting may be used if the self-test passes there (or, without one, on the reference engine)."""
        return self.self_test == "pass" or (self.self_test == "none" and self.options.engine == "onnxruntime")


def sweep_settings(cores: int | None = None) -> list[EngineOptions]:
    """The settings worth measuring: threads 1..cores × spinning × graph optimisation, for each engine."""
    cores = cores or os.cpu_count() or 1
    settings = [
        EngineOptions("onnxruntime", threads, spinning, optimization)
        for threads in range(1, cores + 1)
        for spinning in (False, True)
        for optimization in ("basic", "extended", "all")
    ]
    if "openvino" in available_engines():
        settings += [EngineOptions("openvino", threads) for threads in range(1, cores + 1)]
    return settings


def sweep(
    open_model: Callable[..., Benchmarked],
    path: Any,
    *,
    batch_size: int,
    runs: int,
    settings: list[EngineOptions] | None = None,
    **model_args: Any,
) -> list[SweepRow]:
    """Measure inference at batch 1 and ``batch_size`` for each setting; a setting whose self-test fails is
    reported, not timed. Each setting's model is ``open_model(path, threads=..., engine=..., spinning=...,
    optimization=..., **model_args)``: ``edgeinfer.Model``.

    Raises:
        EdgeInferError: the reference setting (onnxruntime's defaults) cannot load or use the model, so no
            setting is worth trying.
    """
    open_model(path, **model_args)
    rows = []
    for options in settings or sweep_settings():
        try:
            model = open_model(
                path,
                threads=options.threads,
                engine=options.engine,
                spinning=options.spinning,
                optimization=options.optimization,
                **model_args,
            )
            verdict = "none" if model.self_test_document() is None else _verdict(model)
        except ModelError as e:
            rows.append(SweepRow(options, f"fail: {str(e).removeprefix(f'{path}: ')}", None, None))
            continue
        if verdict.startswith("fail"):
            rows.append(SweepRow(options, verdict, None, None))
            continue
        timings = {t.batch: t.p50 * 1e3 for t in benchmark(model, batch_size=batch_size, runs=runs)[1:]}
        rows.append(SweepRow(options, verdict, timings[1], timings[batch_size]))
    return rows


def _verdict(model: Benchmarked) -> str:
    result = model.verify()
    return "pass" if result.passed else f"fail: {result.reason}"
