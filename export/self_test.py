"""The self-test (golden vectors) stored in an exported model: see ``edgeinfer.selftest``.

Runs last, on the final file (after quantization and its metadata), so that what is recorded is exactly what
the device will load: the runtime's own image path, the runtime's own session.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeinfer.selftest import SELF_TEST_KEY, build_self_test

if TYPE_CHECKING:
    import onnx

FLOAT_KEPT_ULPS = 1  # how far float_kept_probes move the activations kept in float


def embed_self_test(path: str | Path, *, images: Sequence[bytes] = ()) -> dict:
    """Measure the self-test of the ONNX model at ``path`` and store it in its ``metadata_props``.

    Args:
        path: an exported model with its final edgeinfer metadata.
        images: encoded real images (small PNGs) to record as extra cases.

    Returns:
        The self-test document written.
    """
    import json

    import onnx

    from edgeinfer import Model
    from export.conversion import save_model, set_props

    model = onnx.load(str(path))
    runtime = Model(path, threads=1)
    kept = runtime.metadata.provenance.get("quantization", {}).get("kept_in_float", ())
    probes = float_kept_probes(model, kept)
    document = build_self_test(runtime, output_step=output_step(model), images=images, probes=probes)
    set_props(model, {SELF_TEST_KEY: json.dumps(document, sort_keys=True)})
    save_model(model, path)
    return document


def float_kept_probes(
    model: onnx.ModelProto, tensors: Sequence[str]
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """For a quantized model with activations kept in float (``auto``'s int8-mixed): the model with those
    ``tensors`` :data:`FLOAT_KEPT_ULPS` float32 ulps higher, and as many lower. The operators around them
    compute in float, which another CPU rounds differently, and the int8 layers after them turn a changed
    rounding into a whole quantization step: on emulated aarch64, EfficientNet-Lite0 with the stem's ReLU6
    output kept in float differed from x86_64 by up to 0.124 (outputs' standard deviation 1.63), and moving
    that tensor by one ulp moved the outputs by up to 0.142. No probe when nothing is kept in float."""
    import onnxruntime as ort

    from edgeinfer._engines import precise_int8_config
    from export.sensitivity import scale_tensors

    if not tensors:
        return {}
    probes = {}
    for sign, word in ((1, "higher"), (-1, "lower")):
        scaled = scale_tensors(copy.deepcopy(model), tensors, 1 + sign * FLOAT_KEPT_ULPS * 2.0**-23)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        for key, value in precise_int8_config().items():
            options.add_session_config_entry(key, value)
        providers = ["CPUExecutionProvider"]
        session = ort.InferenceSession(scaled.SerializeToString(), options, providers=providers)
        name = session.get_inputs()[0].name
        probe = f"the activations kept in float {FLOAT_KEPT_ULPS} ulp {word}"
        probes[probe] = partial(_run, session, name)
    return probes


def _run(session: Any, name: str, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {name: batch})[0]


def small_images(images: Sequence[Any], count: int = 2, max_bytes: int = 32_768) -> list[bytes]:
    """Up to ``count`` of ``images`` as encoded bytes to embed: arrays as PNG, files as they are, skipping
    any larger than ``max_bytes`` (the self-test should stay a few kilobytes)."""
    from PIL import Image

    chosen = []
    for image in images:
        if isinstance(image, np.ndarray):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            data = buffer.getvalue()
        elif isinstance(image, (str, Path)) and Path(image).stat().st_size <= max_bytes:
            data = Path(image).read_bytes()
        else:
            continue
        if len(data) <= max_bytes:
            chosen.append(data)
        if len(chosen) == count:
            break
    return chosen


def output_step(model: onnx.ModelProto) -> float | None:
    """The quantization step of the first output, when a DequantizeLinear with a scalar scale produces it."""
    from onnx import numpy_helper

    producers = {name: node for node in model.graph.node for name in node.output}
    node = producers.get(model.graph.output[0].name)
    if node is None or node.op_type != "DequantizeLinear":
        return None
    scales = {t.name: t for t in model.graph.initializer}
    scale = scales.get(node.input[1])
    if scale is None:
        return None
    values = numpy_helper.to_array(scale)
    return float(values) if values.size == 1 else None
