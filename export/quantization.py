"""INT8 models with onnxruntime.quantization, calibrated on training images through edgeinfer's image path.

Static INT8 (:func:`quantize_static_int8`) is two steps that compose: :func:`calibrate` (``quant_pre_process``
— shape inference, graph optimisation — then onnxruntime's calibrator over :class:`CalibrationReader`, whose
batches come from ``edgeinfer.pipeline``: decode → image mode → the model's spec, the very code the runtime
runs) and :func:`write_static_int8` (``quantize_static`` on those ranges). One :class:`Calibration` serves
every static variant of a model (``--quantize auto`` builds several), so the histograms are collected once.
Dynamic INT8 (:func:`quantize_dynamic_int8`) quantizes MatMul/Gemm weights only, for fully connected heads.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgeinfer.metadata import ModelMetadata
from edgeinfer.pipeline import preprocess_batch
from edgeinfer.selftest import SELF_TEST_KEY
from export.conversion import rewrite_metadata
from export.float_output import keep_output_float

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
EXCLUDABLE = ("first_conv", "single_channel_first_conv", "last_gemm")
FC_BLOCK_SIZE = 32  # weights per 4-bit block (one scale each) with fc_bits=4
CLAMPING = ("Relu", "Clip")  # onnxruntime removes them and lets their output's range do the clamping


@dataclass(frozen=True)
class StaticOptions:
    """How ``quantize_static`` is called; the defaults won the measurements on the Fashion-MNIST CNN
    (export/README.md), except ``fc_bits``: 4 is opt-in, as it is no longer INT8 throughout."""

    calibration_method: str = "percentile"  # 99.999th percentile of |activation|: ignores rare outliers
    calibration_size: int = 1000
    quant_format: str = "qdq"  # or "qoperator"
    per_channel: bool = True
    activation_type: str = "uint8"  # or "int8"
    reduce_range: bool = False
    # Kept in float, with what feeds it: a first conv that reads one channel (Fashion-MNIST: 9 MACs per
    # output), where INT8 costs a QuantizeLinear pass over the image and a poorly vectorised kernel (measured
    # slower). An RGB stem is quantized: on EfficientNet-Lite0 it keeps the agreement with FP32, and with
    # exact_adds the whole integer path is exact on every CPU measured, so the self-test can be exact (a float
    # stem rounds differently on each CPU, which the self-test's tolerance then has to allow).
    exclude: tuple[str, ...] = ("single_channel_first_conv",)  # from EXCLUDABLE
    # Both inputs and the output of every Add between activations (residual connections) share one range, so
    # the integer Add adds integers (scale ratios 1) and every CPU gets the same result: otherwise
    # onnxruntime's QLinearAdd rounds in float32 on x86 and in fixed point on ARM (export/README.md). Where
    # an Add cannot (an input clamped by a ReLU, whose range is its clamp), the first conv stays float.
    exact_adds: bool = True
    fc_bits: int = 8  # 4: fully connected weights as 4-bit blocks (MatMulNBits), activations stay float there
    # No QuantizeLinear on the outputs (export/float_output.py): no ties between classes, and CPUs whose int8
    # kernels differ agree more closely (README "Platforms"), at no cost in size or speed.
    float_output: bool = True
    # Each layer's int32 bias absorbs the mean shift its int8 weights cause (export/bias_correction.py):
    # EfficientNet-Lite0 75 % -> 94 % top-1 agreement with FP32, free at run time.
    bias_correction: bool = True

    def __post_init__(self) -> None:
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration method must be one of {CALIBRATION_METHODS}, got {self.calibration_method!r}"
            )
        if self.calibration_size < 1:
            raise ValueError(f"calibration size must be at least 1, got {self.calibration_size}")
        if self.quant_format not in ("qdq", "qoperator"):
            raise ValueError(f"quant_format must be 'qdq' or 'qoperator', got {self.quant_format!r}")
        if self.activation_type not in ("uint8", "int8"):
            raise ValueError(f"activation_type must be 'uint8' or 'int8', got {self.activation_type!r}")
        if self.fc_bits not in (8, 4):
            raise ValueError(f"fc_bits must be 8 or 4, got {self.fc_bits!r}")
        unknown = set(self.exclude) - set(EXCLUDABLE)
        if unknown:
            raise ValueError(f"exclude must name nodes from {EXCLUDABLE}, got {sorted(unknown)}")

    def provenance(self) -> dict[str, Any]:
        """What the metadata records about this quantization."""
        return {
            "mode": "int8",
            "weight_type": "int8",
            **dataclasses.asdict(self),
            "exclude": list(self.exclude),
        }


class CalibrationReader(CalibrationDataReader):
    """onnxruntime's calibration input: ``{input_name: batch}`` per ``get_next()``, then ``None``.

    Each batch is images (paths or arrays) preprocessed by edgeinfer from the model's own metadata. All
    batches have the same size (the largest divisor of the image count up to ``max_batch``): onnxruntime's
    histogram calibrators (entropy, percentile) stack the batches and fail on a shorter last one.
    """

    def __init__(self, images: Sequence[Any], metadata: ModelMetadata, max_batch: int = 64) -> None:
        self._images = images
        self._metadata = metadata
        self._batch_size = max(d for d in range(1, min(max_batch, len(images)) + 1) if len(images) % d == 0)
        self._batches = self.batches()

    def batches(self) -> Iterator[np.ndarray]:
        """The calibration tensors, batch by batch, from the start (each call decodes them again)."""
        for start in range(0, len(self._images), self._batch_size):
            yield preprocess_batch(self._images[start : start + self._batch_size], self._metadata)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._metadata.input.name: batch}


def quantize(
    fp32_path: str | Path,
    out_path: str | Path,
    metadata: ModelMetadata,
    mode: str,
    options: StaticOptions | None = None,
    calibration_images: Sequence[Any] | None = None,
    *,
    calibration: Calibration | None = None,
) -> ModelMetadata:
    """Write the ``mode`` ("int8" static or "dynamic") model of ``fp32_path`` to ``out_path``, with metadata.

    Static INT8 calibrates on ``calibration_images``, or reuses ``calibration`` (:func:`calibrate` of the
    same ``fp32_path``). Returns the metadata written: ``metadata`` with the quantization recorded in its
    provenance.
    """
    if mode == "int8":
        options = options or StaticOptions()
        if calibration is not None:
            options = write_static_int8(calibration, out_path, options)
        elif calibration_images is None:
            raise ValueError("static int8 quantization needs calibration images")
        else:
            reader = CalibrationReader(calibration_images, metadata)
            options = quantize_static_int8(fp32_path, out_path, reader, options)
        provenance = options.provenance()
    elif mode == "dynamic":
        provenance = quantize_dynamic_int8(fp32_path, out_path)
    else:
        raise ValueError(f"quantization mode must be 'int8' or 'dynamic', got {mode!r}")
    quantized = dataclasses.replace(metadata, provenance={**metadata.provenance, "quantization": provenance})
    rewrite_metadata(out_path, quantized, drop=(SELF_TEST_KEY,))  # the FP32 graph's self-test, not this one's
    return quantized


def quantize_static_int8(
    fp32_path: str | Path, out_path: str | Path, reader: CalibrationReader, options: StaticOptions
) -> StaticOptions:
    """``quant_pre_process`` then static INT8 quantization (signed int8 weights) of ``fp32_path``; the
    options it was written with (:func:`write_static_int8`)."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_static_int8(calibrate(fp32_path, Path(tmp), reader, options), out_path, options)


@dataclass(frozen=True)
class Calibration:
    """Activation ranges collected once on the pre-processed FP32 graph, for every static variant of it.

    Attributes:
        prepared: ``quant_pre_process``'s model (shape inference, graph optimisation), in the caller's folder.
        ranges: onnxruntime's calibration cache beside it (its ``TensorsData`` as JSON), which
            ``quantize_static`` reads instead of calibrating.
        key: the options the ranges depend on (:func:`calibration_key`).
        tensors: how many tensors have a range.
        layer_input_means: the per-channel mean of every Conv/Gemm input over the same images, which
            bias correction needs (export/bias_correction.py).
    """

    prepared: Path
    ranges: Path
    key: tuple[Any, ...]
    tensors: int
    layer_input_means: Mapping[str, np.ndarray]  # per channel, for bias correction


def calibration_key(options: StaticOptions) -> tuple[Any, ...]:
    """The fields of ``options`` that change the collected ranges: a :class:`Calibration` serves the options
    with the same key. (An option that rewrites the float graph before calibration belongs here.)"""
    return (options.calibration_method,)


def calibrate(
    fp32_path: str | Path, workdir: str | Path, reader: CalibrationReader, options: StaticOptions
) -> Calibration:
    """``quant_pre_process`` of ``fp32_path`` into ``workdir``, then onnxruntime's calibrator over ``reader``:
    the ranges of every tensor that a quantizable op reads or writes, as ``quantize_static`` collects them
    (``create_calibrator`` → ``collect_data`` → ``compute_data``), saved as its calibration cache."""
    import onnx
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    from export.bias_correction import input_means, layer_inputs

    workdir = Path(workdir)
    prepared = _pre_process(fp32_path, workdir / "prepared.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(
            prepared, list(set(QLinearOpsRegistry) | set(QDQRegistry)),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_calibration_method(options.calibration_method),
        )  # fmt: skip
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
        del calibrator  # its intermediate outputs hold every calibration activation
    save_tensors_data(ranges, workdir / "ranges.json")
    float_model = onnx.load(str(prepared))
    means = input_means(float_model, reader.batches(), layer_inputs(float_model))
    return Calibration(prepared, workdir / "ranges.json", calibration_key(options), len(ranges.keys()), means)


def write_static_int8(
    calibration: Calibration, out_path: str | Path, options: StaticOptions
) -> StaticOptions:
    """Static INT8 (signed int8 weights) of ``calibration``'s prepared model on its ranges, per ``options``.
    Returns the options the file was written with: ``options``, or, with ``exact_adds``, ``options`` keeping
    the first conv in float too when it was quantized but some Add could not share a range
    (:func:`inexact_adds`): CPUs then round those Adds differently, and a float stem's own rounding
    differences give the self-test the tolerance for that (edgeinfer/selftest.py).

    ``fc_bits=4`` rewrites the fully connected layers after calibration: their activations keep the ranges of
    the float graph, as every other layer's do (calibration always runs float weights).

    Raises:
        ValueError: ``calibration`` was collected for options that change the ranges.
    """
    if calibration_key(options) != calibration.key:
        raise ValueError(
            f"ranges calibrated for {calibration.key} cannot serve options {calibration_key(options)}"
        )
    import onnx

    _write_static_int8(calibration, out_path, options)
    nodes = onnx.load(str(calibration.prepared), load_external_data=False).graph.node
    first = next((n for n in nodes if n.op_type == "Conv"), None)
    float_stem = first is None or first.name in _resolve_exclusions(calibration.prepared, options.exclude)
    if options.exact_adds and not float_stem and inexact_adds(onnx.load(str(out_path))):
        options = dataclasses.replace(options, exclude=(*options.exclude, "first_conv"))
        _write_static_int8(calibration, out_path, options)
    return options


def _write_static_int8(calibration: Calibration, out_path: str | Path, options: StaticOptions) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        prepared = calibration.prepared
        ranges = calibration.ranges
        if options.exact_adds:
            ranges = share_add_ranges(ranges, prepared, Path(tmp) / "ranges.json")
        if options.fc_bits == 4:
            prepared = _fc_weights_4bit(prepared, Path(tmp) / "fc4.onnx")
        quantize_static(
            str(prepared),
            str(out_path),
            None,
            quant_format=QuantFormat.QDQ if options.quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=options.per_channel,
            reduce_range=options.reduce_range,
            activation_type=QuantType.QUInt8 if options.activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_resolve_exclusions(prepared, options.exclude) + shape_arithmetic(prepared),
            calibrate_method=_calibration_method(options.calibration_method),
            calibration_cache_path=str(ranges),
        )
        if options.bias_correction:
            _correct_biases(calibration, prepared, out_path)
    if options.float_output:
        keep_output_float(out_path)


def share_add_ranges(ranges_path: Path, model_path: Path, out_path: Path) -> Path:
    """The calibration cache at ``ranges_path`` with one range for each set of tensors that Adds join: both
    inputs and the output of every Add between activations of ``model_path``, and, through a chain of
    residual connections, every tensor of the chain (the union of their ranges). Written to ``out_path``.
    Adds that read a Relu/Clip output or feed a Relu/Clip keep their ranges: onnxruntime drops those
    activations and clamps with their output's range, which a wider range would undo (and an Add that feeds
    one takes that range as its own, so it could not be shared anyway).

    With equal scales an integer Add is ``qa - za + qb - zb + zc``: no rounding, so onnxruntime's two
    QLinearAdd kernels (float32 on x86, fixed point on ARM) agree, where with unequal scales they differ by
    one step wherever the exact sum falls near a half (EfficientNet-Lite0: 0.08 logits on aarch64).
    """
    import onnx
    from onnxruntime.quantization.calibrate import TensorData, load_tensors_data, save_tensors_data

    ranges = load_tensors_data(ranges_path)
    graph = onnx.load(str(model_path), load_external_data=False).graph
    shapes = set(shape_arithmetic(model_path))
    clamps = [node for node in graph.node if node.op_type in CLAMPING]
    clamped = {name for node in clamps for name in [node.input[0], *node.output]}  # what they read and write
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for node in graph.node:
        joined = [*node.input, *node.output]
        between_activations = all(name in ranges and name not in clamped for name in joined)
        if node.op_type == "Add" and node.name not in shapes and between_activations:
            for name in node.input:
                parent[root(name)] = root(node.output[0])
    groups: dict[str, list[str]] = {}
    for name in parent:
        groups.setdefault(root(name), []).append(name)
    for members in groups.values():
        low = min(ranges[name].range_value[0] for name in members)
        high = max(ranges[name].range_value[1] for name in members)
        for name in members:
            ranges.data[name] = TensorData(
                lowest=np.array(low, np.float32), highest=np.array(high, np.float32)
            )
    save_tensors_data(ranges, out_path)
    return out_path


def inexact_adds(model: Any) -> list[str]:
    """The Adds of the QDQ ``model`` (an onnx ModelProto) that onnxruntime fuses into QLinearAdd (two
    dequantized inputs, a quantized output) with unequal input and output scales: their rounding differs
    between CPUs."""
    from onnx import numpy_helper

    values = {t.name: t for t in model.graph.initializer}
    producers = {name: node for node in model.graph.node for name in node.output}
    quantized = {node.input[0]: node for node in model.graph.node if node.op_type == "QuantizeLinear"}
    found = []
    for node in model.graph.node:
        sources = [producers.get(name) for name in node.input]
        if node.op_type != "Add" or node.output[0] not in quantized:
            continue
        if not all(source is not None and source.op_type == "DequantizeLinear" for source in sources):
            continue
        scales = [values.get(q.input[1]) for q in [*sources, quantized[node.output[0]]]]
        if any(scale is None for scale in scales):
            found.append(node.name)
            continue
        arrays = [numpy_helper.to_array(scale).astype(np.float32) for scale in scales]
        if not all(np.array_equal(arrays[0], other) for other in arrays[1:]):
            found.append(node.name)
    return found


def _correct_biases(calibration: Calibration, prepared: Path, out_path: str | Path) -> None:
    """Bias correction of the QDQ model at ``out_path`` (export/bias_correction.py), from the float graph
    ``prepared`` it was quantized from and the calibration's layer input means."""
    import onnx

    from export.bias_correction import correct_biases

    quantized = onnx.load(str(out_path))
    correct_biases(quantized, onnx.load(str(prepared)), calibration.layer_input_means)
    onnx.save(quantized, str(out_path))


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def quantize_dynamic_int8(fp32_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Dynamic INT8: MatMul/Gemm weights quantized ahead, activations at run time. Returns its provenance."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prepared = _pre_process(fp32_path, Path(tmp) / "prepared.onnx")
        quantize_dynamic(
            str(prepared), str(out_path), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8
        )
    return {"mode": "dynamic", "weight_type": "int8", "op_types": ["MatMul", "Gemm"]}


def _pre_process(fp32_path: str | Path, prepared: Path) -> Path:
    from onnxruntime.quantization import quant_pre_process

    quant_pre_process(str(fp32_path), str(prepared))
    return prepared


def _fc_weights_4bit(model_path: Path, out_path: Path) -> Path:
    """Gemm -> MatMul, then MatMul weights in symmetric 4-bit blocks of 32 (MatMulNBits, int8 compute)."""
    import logging

    import onnx
    from onnxruntime.quantization.onnx_model import ONNXModel

    root = logging.getLogger()
    level = root.level
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    root.setLevel(level)  # that module's import calls logging.basicConfig(level=INFO) for the whole process
    model = ONNXModel(onnx.load(str(model_path)))
    model.replace_gemm_with_matmul()
    quantizer = MatMulNBitsQuantizer(
        model.model, bits=4, block_size=FC_BLOCK_SIZE, is_symmetric=True, accuracy_level=4,
        op_types_to_quantize=("MatMul",),
    )  # fmt: skip
    quantizer.process()
    quantizer.model.save_model_to_file(str(out_path))
    return out_path


def shape_arithmetic(model_path: Path) -> list[str]:
    """Nodes that compute from tensor shapes, not from pixels: never to be quantized.

    TensorFlow's "same" padding (timm's ``tf_*`` networks) computes each Pad's amounts in float from the input
    shape (Shape → Cast → Div → Ceil → Sub → …); onnxruntime's quantizer puts Q/DQ on those Add/Sub/Mul
    nodes like on any float tensor, the pad amounts get rounded, and the padded tensors change size
    (EfficientNet-Lite0: 55×55 instead of 56×56, export/README.md). A tensor carries pixels when it derives
    from a graph input other than through Shape/Size; a node with no such input computes shapes.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    data = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    excluded = []
    for node in graph.node:  # topological order
        if node.op_type not in ("Shape", "Size") and any(name in data for name in node.input):
            data.update(node.output)
        elif node.op_type not in ("Constant",):
            excluded.append(node.name)
    return excluded


def _resolve_exclusions(model_path: Path, exclude: tuple[str, ...]) -> list[str]:
    """Node names of the symbolic exclusions: the first Conv (``single_channel_first_conv``: only when it
    reads one channel) with every node between it and the graph input (a Pad, an image model's
    preprocessing), and the last Gemm/MatMul (nodes are topological).

    The nodes before the first Conv stay float with it: a quantized tensor feeding a float Conv makes
    onnxruntime quantize that Conv's weights itself when it loads the model (``WeightBiasQuantization``), so
    the "float" stem would run in int8 with per-tensor weights (EfficientNet-Lite0: its padded image was
    quantized, the stem's output off by 0.38, 13 → 9 dB logit SQNR, export/README.md).
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    nodes = graph.node
    names = []
    first = next((n for n in nodes if n.op_type == "Conv"), None)
    if first is not None:
        single = "single_channel_first_conv" in exclude and _input_channels(graph, first) == 1
        if "first_conv" in exclude or single:
            names += [*_data_ancestors(graph, first), first.name]
    if "last_gemm" in exclude:
        names += [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")][-1:]
    return names


def _input_channels(graph: Any, conv: Any) -> int | None:
    """Input channels per group of a Conv (its weight's second dimension), None when not a constant."""
    weight = next((t for t in graph.initializer if t.name == conv.input[1]), None)
    return None if weight is None else int(weight.dims[1])


def _data_ancestors(graph: Any, node: Any) -> list[str]:
    """Names of the nodes that ``node``'s first input is computed by, back to the graph inputs (not
    through initializers or shape arithmetic: only the data path)."""
    producers = {name: n for n in graph.node for name in n.output}
    found: list[str] = []
    pending = [node.input[0]]
    while pending:
        producer = producers.get(pending.pop())
        if producer is None or producer.name in found or producer.op_type in ("Shape", "Size", "Constant"):
            continue
        found.append(producer.name)
        pending += [name for name in producer.input[:1] if name]
    return found
