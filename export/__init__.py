"""Checkpoint -> self-describing ONNX model: export, verification, INT8 quantization and its report.

``export/to_onnx.py`` is the recipe script; the modules here are the steps it runs, importable by tests:
``checkpoint`` (load a training checkpoint, build its metadata), ``conversion`` (torch -> ONNX, metadata
into ``metadata_props``), ``verification`` (onnxruntime vs torch on real images), ``quantization``
(onnxruntime.quantization fed through edgeinfer's preprocessing) and ``report`` (accuracy, size, latency).
"""


class ExportError(Exception):
    """The checkpoint cannot be exported, or the exported model fails verification or its targets."""
