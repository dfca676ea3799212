"""Latency and throughput of a Model, preprocessing and inference measured separately.

Like onnxruntime's perf test or TFLite's benchmark tool: warm up, then time each call with
``perf_counter`` and report percentiles. Used by ``edgeinfer bench``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeinfer.model import Model

_DYNAMIC_SIDE = 224  # image side used when the model's input height/width are dynamic


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


def benchmark(model: Model, *, batch_size: int, runs: int, image: Any = None) -> list[Timing]:
    """Time preprocessing of one image, then inference at batch 1 and at ``batch_size``.

    ``image`` (path, bytes, PIL image or array) is decoded and preprocessed in the first stage; by
    default a random uint8 image of the model's input size is used, so that stage is the transform alone.
    """
    if image is None:
        _, _, height, width = model.metadata.input.shape
        shape = (height or _DYNAMIC_SIDE, width or _DYNAMIC_SIDE)
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
