"""Checkpoint or any network -> self-describing ONNX model: export, verification, quantization, report.

Scripts (recipes): ``to_onnx.py`` (export one checkpoint), ``compare_quantization.py`` (measure the
quantization options), ``examples.py`` (the README's example PNGs). ``steps`` is the export itself: one
list of steps (``STEPS``) run in order by ``export_network`` on an ``ExportJob`` that ``to_onnx.py`` or
``api`` (:func:`export_model`, for a network trained anywhere) gathers. The other modules are what the steps
call: ``checkpoint`` (load a training checkpoint, build its metadata), ``conversion``
(torch -> ONNX, metadata into ``metadata_props``), ``inputs`` (real images through edgeinfer or torchvision),
``verification`` (onnxruntime vs torch), ``quantization`` (onnxruntime.quantization fed through edgeinfer's
preprocessing), ``selection`` (``--quantize auto``: measure the candidates, keep what qualifies) and
``report`` (accuracy, size, latency).
"""

from __future__ import annotations

from typing import Any


class ExportError(Exception):
    """The checkpoint cannot be exported, or the exported model fails verification or its targets."""


def __getattr__(name: str) -> Any:
    # Lazy: `from export import ExportError` must not pull in onnxruntime.quantization and torch.
    if name == "export_model":
        from export.api import export_model

        return export_model
    raise AttributeError(f"module 'export' has no attribute {name!r}")
