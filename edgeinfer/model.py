"""Model: an exported ONNX classifier with its preprocessing and labels, ready to predict.

onnxruntime is imported when the first Model is created, so ``import edgeinfer`` stays cheap.
A Model holds no mutable state after construction and onnxruntime's ``InferenceSession.run`` is
thread-safe, so one Model can serve many threads.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from edgeinfer._image import DEFAULT_MAX_PIXELS, load_image
from edgeinfer._resample import parallel
from edgeinfer.errors import ImageError, MetadataError, ModelError
from edgeinfer.metadata import METADATA_KEY, InputSpec, ModelMetadata
from edgeinfer.transforms import from_spec

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.onnx"

_MODE_BY_CHANNELS = {1: "L", 3: "RGB"}


@dataclass(frozen=True)
class Prediction:
    """One image's result: the best class and the ``top_k`` best ``(label, score)`` pairs.

    Scores are probabilities: the softmax of the model's logits, or its output as is when the
    metadata declares ``output: "probabilities"``.
    """

    label: str
    index: int
    score: float
    top: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "score": self.score,
            "top": [{"label": label, "score": score} for label, score in self.top],
        }


class Model:
    """An ONNX image classifier plus everything needed to feed it (preprocessing, labels).

    Args:
        path: the ONNX file; ``None`` for the bundled default model.
        threads: onnxruntime intra-op threads; ``None`` lets onnxruntime choose (one per core).
            Worker threads sleep instead of spinning between runs, so an idle Model costs no CPU.
        preprocessing, labels, image_mode, output: override the model's edgeinfer metadata, or
            supply it for a model exported without it (preprocessing and labels are then required;
            image_mode defaults from the input's channel count, output to "logits").
        max_pixels: refuse encoded images larger than this before decoding them; ``None`` disables it.

    Raises:
        ModelError: the file is missing, not a loadable ONNX model, or does not match its metadata.
        MetadataError: the metadata is missing (and not supplied) or invalid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
        image_mode: str | None = None,
        output: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if threads is not None:
            _check_positive_int("threads", threads)
        if max_pixels is not None:
            _check_positive_int("max_pixels", max_pixels)
        self.path = model_path(path)
        self.threads = threads
        self._local = threading.local()
        self.max_pixels = max_pixels
        self._session = _open_session(self.path, threads)
        try:
            self._metadata = _resolve_metadata(
                self._session,
                preprocessing=preprocessing,
                labels=labels,
                image_mode=image_mode,
                output=output,
            )
        except MetadataError as e:
            raise MetadataError(f"{self.path}: {e}") from None
        self._transform = from_spec(self._metadata.preprocessing)
        self._input_name = self._metadata.input.name
        self._output_name = self._session.get_outputs()[0].name
        _check_consistency(self.path, self._session, self._metadata, self._transform)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def labels(self) -> tuple[str, ...]:
        return self._metadata.labels

    @property
    def transform(self) -> Any:
        """The preprocessing pipeline (``edgeinfer.transforms``): uint8 image array → float32 CHW."""
        return self._transform

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, threads={self.threads}, classes={len(self.labels)})"

    def preprocess(self, image: Any) -> np.ndarray:
        """Decode ``image`` (path, bytes, PIL image or array), convert it to the model's image mode
        like torchvision's loader, and apply the model's transform: a float32 C×H×W array.

        Raises:
            ImageError: the image cannot be decoded, or its tensor does not fit the model's input
                (possible when the preprocessing does not fix the size, e.g. ToTensor alone).
        """
        decoded = load_image(image, self._metadata.image_mode, max_pixels=self.max_pixels)
        name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"{type(image).__name__} image"
        try:
            with parallel(self._threads_per_image):
                tensor = self._transform(decoded)
        except (TypeError, ValueError) as e:
            # A spec that does not fix the size can fail on some images only (e.g. Pad before a crop).
            raise ImageError(f"{name}: preprocessing failed: {e}") from None
        expected = self._metadata.input.shape[1:]
        if not _shape_fits(tensor.shape, expected):
            raise ImageError(
                f"{name}: preprocessing gives a tensor of shape {_shape_str(tensor.shape)}, "
                f"the model needs {_shape_str(expected)}"
            )
        return tensor

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw output (e.g. logits) for a preprocessed float32 N×C×H×W batch."""
        if not isinstance(batch, np.ndarray):
            raise TypeError(f"batch must be a NumPy array, got {type(batch).__name__}")
        if batch.dtype != np.float32:
            raise TypeError(f"batch must be float32, got {batch.dtype}")
        expected = self._metadata.input.shape
        if not _shape_fits(batch.shape, (None, *expected[1:])):
            raise ValueError(
                f"batch shape {list(batch.shape)} does not match the model's input {_shape_str(expected)}"
            )
        return self._session.run([self._output_name], {self._input_name: batch})[0]

    def predict(self, image: Any, *, top_k: int = 5) -> Prediction:
        """Classify one image (path, bytes, PIL image or NumPy array); ``top_k`` best classes in
        ``Prediction.top`` (all of them when the model has fewer).

        Raises:
            ImageError: the image cannot be read or decoded.
        """
        return self.predict_batch([image], top_k=top_k)[0]

    @overload
    def predict_batch(
        self,
        images: Iterable[Any],
        *,
        batch_size: int = ...,
        top_k: int = ...,
        errors: Literal["raise"] = ...,
    ) -> list[Prediction]: ...

    @overload
    def predict_batch(
        self, images: Iterable[Any], *, batch_size: int = ..., top_k: int = ..., errors: Literal["return"]
    ) -> list[Prediction | ImageError]: ...

    def predict_batch(
        self, images: Iterable[Any], *, batch_size: int = 64, top_k: int = 5, errors: str = "raise"
    ) -> list[Prediction] | list[Prediction | ImageError]:
        """Classify many images, ``batch_size`` at a time through onnxruntime; results in input order.

        With ``errors="raise"`` the first unreadable image raises its ImageError. With
        ``errors="return"`` (like ``asyncio.gather(return_exceptions=True)``) each unreadable image's
        ImageError takes its place in the result list and the other images are still classified.
        """
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("top_k", top_k)
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
        results: list[Any] = []
        for chunk in _chunks(images, batch_size):
            tensors, slots = [], []
            for outcome in self._preprocess_all(chunk):
                if isinstance(outcome, ImageError):
                    if errors == "raise":
                        raise outcome
                    results.append(outcome)
                else:
                    tensors.append(outcome)
                    slots.append(len(results))
                    results.append(None)
            if tensors:
                scores = self._scores(self.run(np.stack(tensors)))
                order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
                best = np.take_along_axis(scores, order, axis=1)
                for slot, indices, values in zip(slots, order.tolist(), best.tolist(), strict=True):
                    top = tuple(zip([self.labels[i] for i in indices], values, strict=True))
                    results[slot] = Prediction(label=top[0][0], index=indices[0], score=values[0], top=top)
        return results

    def _preprocess_all(self, images: list[Any]) -> Iterator[np.ndarray | ImageError]:
        """``preprocess`` of each image (its ImageError in its place), in order. With several threads,
        images are decoded and preprocessed in parallel: Pillow's decoders and NumPy release the GIL."""

        def outcome(image: Any) -> np.ndarray | ImageError:
            try:
                return self.preprocess(image)
            except ImageError as e:
                return e

        workers = min(len(images), self.threads or os.cpu_count() or 1)
        if workers <= 1:
            return map(outcome, images)
        with ThreadPoolExecutor(workers, thread_name_prefix="edgeinfer-decode") as pool:
            # One image per thread: the resampler then stays on its thread.
            return iter(list(pool.map(lambda image: self._one_thread(outcome, image), images)))

    def _one_thread(self, function: Any, image: Any) -> Any:
        self._local.threads = 1
        return function(image)

    @property
    def _threads_per_image(self) -> int:
        """Threads one image's resampling may use: the Model's threads, or 1 inside a parallel batch."""
        return getattr(self._local, "threads", None) or self.threads or os.cpu_count() or 1

    def _scores(self, output: np.ndarray) -> np.ndarray:
        if self._metadata.output == "probabilities":
            return output
        shifted = np.exp(output - output.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def model_path(path: str | os.PathLike[str] | None) -> Path:
    """``path`` as a Path, or the bundled default model's path for ``None``.

    Raises:
        ModelError: ``path`` is None and the bundled model is not installed.
    """
    if path is not None:
        return Path(path)
    if not DEFAULT_MODEL.exists():
        raise ModelError(f"{DEFAULT_MODEL}: the bundled default model is not installed; pass a model path")
    return DEFAULT_MODEL


def _open_session(path: Path, threads: int | None) -> Any:
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not an ONNX file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: empty file, not an ONNX model")
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: onnxruntime's load-time warnings are not for end users
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own pybind types (Fail, InvalidProtobuf, ...)
        raise ModelError(f"{path}: not a loadable ONNX model ({_first_line(e)})") from None


def _resolve_metadata(
    session: Any,
    *,
    preprocessing: Mapping[str, Any] | None,
    labels: Sequence[str] | None,
    image_mode: str | None,
    output: str | None,
) -> ModelMetadata:
    # Explicit arguments first, then the model's metadata, then defaults (timm's resolve_data_config order).
    given = {"preprocessing": preprocessing, "labels": labels, "image_mode": image_mode, "output": output}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if "labels" in overrides:
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise TypeError(f"labels must be a sequence of strings, got {type(labels).__name__}")
        overrides["labels"] = tuple(labels)
    if "preprocessing" in overrides:
        overrides["preprocessing"] = dict(overrides["preprocessing"])
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY in props:
        return dataclasses.replace(ModelMetadata.from_props(props), **overrides)
    if preprocessing is None or labels is None:
        ModelMetadata.from_props(props)  # raises the "no edgeinfer metadata" error
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise MetadataError(f"expected a model with one input, this one has {len(inputs)}")
    shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
    if image_mode is None:
        channels = shape[1] if len(shape) == 4 else None
        if channels not in _MODE_BY_CHANNELS:
            raise MetadataError(
                f"cannot infer the image mode from input shape {_shape_str(shape)}; pass image_mode"
            )
        overrides["image_mode"] = _MODE_BY_CHANNELS[channels]
    return ModelMetadata(input=InputSpec(name=inputs[0].name, shape=shape), **overrides)


def _check_consistency(path: Path, session: Any, meta: ModelMetadata, transform: Any) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    declared = meta.input
    if declared.name not in inputs:
        raise ModelError(
            f"{path}: its metadata names input {declared.name!r} but the model's inputs are {list(inputs)}"
        )
    actual = inputs[declared.name]
    actual_shape = tuple(d if isinstance(d, int) else None for d in actual.shape)
    if not _shape_fits(actual_shape, declared.shape):
        raise ModelError(
            f"{path}: input {declared.name!r} has shape {_shape_str(actual_shape)} "
            f"but its metadata declares {_shape_str(declared.shape)}"
        )
    if actual.type != "tensor(float)":
        raise ModelError(f"{path}: input {declared.name!r} is {actual.type}, its metadata declares float32")
    classes = session.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != len(meta.labels):
        raise ModelError(
            f"{path}: the model outputs {classes} classes but its metadata has {len(meta.labels)} labels"
        )
    _, channels, height, width = declared.shape
    if height is not None and width is not None:
        # One probe image through the preprocessing catches a spec that does not fit the network.
        probe = np.zeros((height, width) if meta.image_mode == "L" else (height, width, 3), np.uint8)
        try:
            out = transform(probe)
        except (TypeError, ValueError) as e:
            raise ModelError(
                f"{path}: its preprocessing fails on a {meta.image_mode} {height}x{width} image: {e}"
            ) from None
        if out.dtype != np.float32 or out.shape != (channels or out.shape[0], height, width):
            raise ModelError(
                f"{path}: its preprocessing turns a {meta.image_mode} {height}x{width} image into "
                f"{out.dtype} {_shape_str(out.shape)}, the model needs float32 "
                f"{_shape_str(declared.shape[1:])}"
            )


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _shape_fits(shape: Sequence[int | None], declared: Sequence[int | None]) -> bool:
    """Same rank, and equal wherever both sides give a size (None is a dynamic axis)."""
    return len(shape) == len(declared) and all(
        a is None or b is None or a == b for a, b in zip(shape, declared, strict=True)
    )


def _shape_str(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    if not lines:
        return type(e).__name__
    # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from x failed:Protobuf parsing failed."
    m = re.match(r"\[ONNXRuntimeError\] : \d+ : (\w+) : (?:Load model from .* failed:)?(.*)", lines[0])
    return f"{m.group(1)}: {m.group(2).strip()}" if m else lines[0]
