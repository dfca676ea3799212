"""torch -> ONNX: the graph (dynamic batch axis), its edgeinfer metadata, external data for large models."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgeinfer.errors import first_line
from edgeinfer.metadata import ModelMetadata
from export import ExportError

if TYPE_CHECKING:
    import onnx
    import torch

DEFAULT_OPSET = 17  # recent; onnxruntime's QDQ quantizer and CPU kernels support it fully
BATCH_AXIS = "batch"
# protobuf cannot serialize a message of 2 GiB or more; such models keep their tensors in a side file.
PROTO_LIMIT = 2**31 - 1


def export_onnx(
    network: torch.nn.Module, path: str | Path, metadata: ModelMetadata, *, opset: int = DEFAULT_OPSET
) -> None:
    """Export ``network`` (eval mode) to ``path``: dynamic batch axis, the metadata, a checked graph.

    Raises:
        ExportError: the TorchScript exporter cannot convert the network at the declared input shape,
            or the result fails ``onnx.checker``.
    """
    import onnx
    import torch

    path = Path(path)
    input_shape = metadata.input.shape[1:]
    example = torch.zeros(2, *input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            # The TorchScript exporter (dynamo=False) logs the whole graph to the C-level stdout on failure.
            with warnings.catch_warnings(), _stdout_silenced():
                # dynamo=False is the export contract; torch warns that this exporter is deprecated.
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
                warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")
                torch.onnx.export(
                    network,
                    (example,),
                    str(raw),
                    dynamo=False,
                    opset_version=opset,
                    input_names=[metadata.input.name],
                    output_names=[metadata.output],
                    dynamic_axes={metadata.input.name: {0: BATCH_AXIS}, metadata.output: {0: BATCH_AXIS}},
                )
        except torch.onnx.OnnxExporterError as e:
            raise ExportError(_explain(e, metadata, input_shape)) from None
        model = onnx.load(str(raw))  # pulls in any external data torch wrote for a >2 GB graph
    _check_batch_axis(model, metadata)
    write_metadata(model, metadata)
    save_model(model, path)


def write_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Store ``metadata`` in ``model.metadata_props``: replaces an older edgeinfer entry, keeps other keys."""
    set_props(model, metadata.to_props())


def set_props(model: onnx.ModelProto, props: Mapping[str, str], *, drop: Sequence[str] = ()) -> None:
    """Set ``props`` in ``model.metadata_props``: entries of the same keys are replaced, those of ``drop``
    removed, others kept."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props and p.key not in drop]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        model.metadata_props.add(key=key, value=value)


def rewrite_metadata(path: str | Path, metadata: ModelMetadata, *, drop: Sequence[str] = ()) -> None:
    """Replace the edgeinfer metadata of the ONNX file at ``path`` (e.g. after quantization), and remove the
    ``drop`` entries (e.g. a self-test measured on another graph)."""
    import onnx

    model = onnx.load(str(path))
    set_props(model, metadata.to_props(), drop=drop)
    save_model(model, path)


def save_model(model: onnx.ModelProto, path: str | Path) -> None:
    """Save and check; models over protobuf's 2 GB limit keep their tensors in ``<name>.data`` beside it."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    large = tensor_bytes(model) >= PROTO_LIMIT
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )
    try:
        onnx.checker.check_model(str(path), full_check=True)  # by path: works for external data too
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{path} fails onnx.checker: {first_line(e)}") from None


def tensor_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all initializer data, whether inline or already external."""
    from onnx.external_data_helper import uses_external_data

    total = 0
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            total += int({e.key: e.value for e in tensor.external_data}.get("length", 0))
        else:
            total += tensor.ByteSize()
    return total


def load_metadata(path: str | Path) -> ModelMetadata:
    """Read the metadata back the way the runtime does: onnxruntime's ``custom_metadata_map``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)


def _check_batch_axis(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Catch graphs whose batch dimension was frozen at export (a known TorchScript-export trap)."""
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if dim.HasField("dim_value"):
            raise ExportError(
                f"ONNX {value.name!r} has a fixed batch size {dim.dim_value}; expected a dynamic axis"
            )
    declared = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim]
    if tuple(declared) != tuple(metadata.input.shape):
        raise ExportError(
            f"ONNX input shape {declared} differs from the metadata's {list(metadata.input.shape)}"
        )


def _explain(error: Exception, metadata: ModelMetadata, input_shape: tuple[int | None, ...]) -> str:
    first = first_line(error)
    message = (
        f"cannot export {metadata.provenance.get('architecture')} at input shape {list(input_shape)}: {first}"
    )
    if "adaptive_avg_pool2d" in first:
        message += (
            " (the TorchScript exporter handles adaptive pooling only when its input is a whole multiple of "
            "its output; for VGG16's 7x7 pooling that means image sizes 224-255, 448-479, ...: "
            "resize the input to 224 in the preprocessing)"
        )
    return message


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
