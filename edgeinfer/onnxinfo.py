"""A summary of an ONNX file (opsets, inputs, outputs, operators, metadata) without the onnx package.

onnxruntime does not expose a model's opset or its operator types, and the ``onnx`` package is not a
runtime dependency, so ``edgeinfer info`` reads the few fields it shows straight from the protobuf wire
format (field numbers from onnx/onnx.proto3). The file is memory-mapped and initializer data is
skipped, never copied, so this is fast even for a 500 MB model.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgeinfer._files import NotRegularFileError, open_regular
from edgeinfer.errors import ModelError

# TensorProto.DataType codes → names.
_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}  # fmt: skip
_DYNAMIC_QUANT_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"}


@dataclass(frozen=True)
class Tensor:
    """A graph input or output: name, element type, shape (ints, or strings/None for dynamic axes)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


@dataclass(frozen=True)
class OnnxSummary:
    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    operators: Counter[str]
    metadata_props: dict[str, str] = field(default_factory=dict)

    @property
    def quantization(self) -> str:
        """The quantization the operators reveal, e.g. "static (QDQ)", "dynamic", "none"."""
        ops = set(self.operators)
        kinds = []
        if ops & _DYNAMIC_QUANT_OPS:
            kinds.append("dynamic")
        if any(op.startswith("QLinear") for op in ops):
            kinds.append("static (QOperator)")
        if "QuantizeLinear" in ops or "DequantizeLinear" in ops:
            kinds.append("static (QDQ)")
        if "MatMulNBits" in ops:
            kinds.append("weight-only (MatMulNBits)")
        return ", ".join(kinds) or "none"


def summarize(path: Path) -> OnnxSummary:
    """Read an ONNX file's summary.

    Raises:
        ModelError: the file is missing, empty, or not an ONNX model.
    """
    try:
        with open_regular(path) as f:  # a FIFO or a device would block or never end
            if os.fstat(f.fileno()).st_size == 0:
                raise ModelError(f"{path}: empty file, not an ONNX model")
            # Not closed explicitly: views into it may outlive a parse error; it is freed with them.
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return _model(memoryview(data))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not an ONNX file") from None
    except ValueError as e:  # a malformed protobuf
        raise ModelError(f"{path}: not an ONNX model ({e})") from None
    except NotRegularFileError as e:
        raise ModelError(f"{path}: {e.strerror}") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or e})") from None


def _model(buf: memoryview) -> OnnxSummary:
    ir_version, producer, graph = 0, "", None
    opsets: dict[str, int] = {}
    props: dict[str, str] = {}
    for num, value in _fields(buf):
        if num == 1:
            ir_version = _int(value)
        elif num == 2:
            producer = _str(value)
        elif num == 7:
            graph = _bytes(value)
        elif num == 8:
            sub = dict(_fields(_bytes(value)))
            opsets[_str(sub.get(1, b""))] = _int(sub.get(2, 0))
        elif num == 14:
            sub = dict(_fields(_bytes(value)))
            props[_str(sub.get(1, b""))] = _str(sub.get(2, b""))
    if graph is None or not ir_version:
        raise ValueError("no IR version or graph")
    operators: Counter[str] = Counter()
    inputs, outputs, initializers = [], [], set()
    for num, value in _fields(graph):
        if num == 1:
            operators[_str(dict(_fields(_bytes(value))).get(4, b""))] += 1
        elif num == 5:
            initializers.add(_str(dict(_fields(_bytes(value))).get(8, b"")))
        elif num == 11:
            inputs.append(_value_info(_bytes(value)))
        elif num == 12:
            outputs.append(_value_info(_bytes(value)))
    return OnnxSummary(
        ir_version=ir_version,
        producer=producer,
        opsets=opsets,
        # Before IR 4, initializers were also listed as graph inputs; they are weights, not inputs.
        inputs=tuple(t for t in inputs if t.name not in initializers),
        outputs=tuple(outputs),
        operators=operators,
        metadata_props=props,
    )


def _value_info(buf: memoryview) -> Tensor:
    fields = dict(_fields(buf))
    tensor_type = dict(_fields(_bytes(dict(_fields(_bytes(fields.get(2, b"")))).get(1, b""))))
    shape: list[int | str | None] = []
    for num, dim in _fields(_bytes(tensor_type.get(2, b""))):
        if num == 1:
            d = dict(_fields(_bytes(dim)))
            shape.append(_int(d[1]) if 1 in d else _str(d[2]) if 2 in d else None)
    elem = _int(tensor_type.get(1, 0))
    return Tensor(name=_str(fields.get(1, b"")), dtype=_DTYPES.get(elem, f"type {elem}"), shape=tuple(shape))


def _fields(buf: memoryview | bytes) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) pairs of one protobuf message: varints as int, length-delimited as views."""
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield num, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated protobuf field")
            yield num, buf[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != end:
        raise ValueError("truncated protobuf message")


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or malformed protobuf varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _bytes(value: int | memoryview | bytes) -> memoryview:
    if isinstance(value, int):
        raise ValueError("malformed protobuf: expected a message, found a number")
    return memoryview(value)


def _int(value: int | memoryview | bytes) -> int:
    if not isinstance(value, int):
        raise ValueError("malformed protobuf: expected a number, found bytes")
    return value


def _str(value: int | memoryview | bytes) -> str:
    try:
        return bytes(_bytes(value)).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("malformed protobuf: a string is not UTF-8") from None
