"""The self-test (golden vectors) stored in an exported model: see ``edgeinfer.selftest``.

Runs last, on the final file (after quantization and its metadata), so that what is recorded is exactly what
the device will load: the runtime's own image path, the runtime's own session.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeinfer.selftest import SELF_TEST_KEY, build_self_test

if TYPE_CHECKING:
    import onnx


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
    document = build_self_test(Model(path, threads=1), output_step=output_step(model), images=images)
    set_props(model, {SELF_TEST_KEY: json.dumps(document, sort_keys=True)})
    save_model(model, path)
    return document


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
