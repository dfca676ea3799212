"""Checkpoint -> self-describing ONNX model: export, verification, INT8 quantization and its report.

Scripts (recipes): ``to_onnx.py`` (export one checkpoint), ``compare_quantization.py`` (measure the
quantization options), ``examples.py`` (the README's example PNGs). The modules are the steps they run,
importable by tests: ``checkpoint`` (load a training checkpoint, build its metadata), ``conversion``
(torch -> ONNX, metadata into ``metadata_props``), ``inputs`` (real images through edgeinfer or torchvision),
``verification`` (onnxruntime vs torch), ``quantization`` (onnxruntime.quantization fed through edgeinfer's
preprocessing) and ``report`` (accuracy, size, latency).
"""


class ExportError(Exception):
    """The checkpoint cannot be exported, or the exported model fails verification or its targets."""
