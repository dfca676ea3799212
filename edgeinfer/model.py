"""Model: an exported ONNX classifier with its preprocessing and labels, ready to predict.

onnxruntime is imported when the first Model is created, so ``import edgeinfer`` stays cheap.
A Model holds no mutable state after construction and onnxruntime's ``InferenceSession.run`` is
thread-safe, so one Model can serve many threads.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from edgeinfer._engines import MAX_THREADS, EngineOptions, available_engines, engine_error, open_session
from edgeinfer._files import describe_open_error, open_regular
from edgeinfer._resample import parallel
from edgeinfer.decoding import DEFAULT_MAX_PIXELS, load_image
from edgeinfer.errors import ImageError, MetadataError, ModelError, describe
from edgeinfer.metadata import METADATA_KEY, InputSpec, ModelMetadata, check_labels
from edgeinfer.pipeline import image_name, preprocess, shape_fits, shape_str
from edgeinfer.transforms import from_spec
from edgeinfer.transforms._checks import positive_int

if TYPE_CHECKING:  # imported where used: a plain predict needs neither (start-up time)
    from edgeinfer.selftest import SelfTestResult

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.onnx"

_MODE_BY_CHANNELS = {1: "L", 3: "RGB"}
_FLOAT_TENSORS = ("tensor(float)", "tensor(double)", "tensor(float16)")


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
        threads: onnxruntime intra-op threads, 1 to MAX_THREADS; ``None`` lets onnxruntime choose
            (one per core).
            Worker threads sleep instead of spinning between runs, so an idle Model costs no CPU.
        preprocessing, labels, image_mode, output: override the model's edgeinfer metadata, or
            supply it for a model exported without it (preprocessing and labels are then required;
            image_mode defaults from the input's channel count, output to "logits").
        max_pixels: refuse encoded images larger than this before decoding them; ``None`` disables it.
        engine: "onnxruntime" (default), "openvino" (``pip install 'edgeinfer[openvino]'``), or "auto": the
            fastest installed engine at batch 1, measured at load, among those where the model's self-test
            passes. A model runs on an engine other than onnxruntime only if its self-test passes there.
        spinning: let idle onnxruntime worker threads spin (lower latency, burns CPU while idle).
        optimization: onnxruntime's graph optimisation level: "disabled", "basic", "extended" or "all".

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
        engine: str = "onnxruntime",
        spinning: bool = False,
        optimization: str = "all",
    ) -> None:
        if threads is not None:
            positive_int("threads", threads)
            if threads > MAX_THREADS:
                raise ValueError(f"threads must be at most {MAX_THREADS}, got {threads}")
        if max_pixels is not None:
            positive_int("max_pixels", max_pixels)
        self.path = model_path(path)
        self.threads = threads
        self._local = threading.local()
        self.max_pixels = max_pixels
        self.engine_choice: tuple[Any, ...] = ()  # what engine="auto" measured
        if engine == "auto":
            wanted = EngineOptions("onnxruntime", threads, spinning, optimization)  # checks them first
            overrides = {"preprocessing": preprocessing, "labels": labels, "image_mode": image_mode}
            engine, self.engine_choice = choose_engine(self.path, wanted, output=output, **overrides)
        self.options = EngineOptions(engine, threads, spinning, optimization)
        self._session = _open_session(self.path, self.options)
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
        if engine != "onnxruntime":  # the model was exported and checked on onnxruntime only
            if self.self_test_document() is None:
                raise ModelError(
                    f"{self.path}: refused on {engine}: it carries no self-test to check it there"
                )
            result = self.verify()
            if not result.passed:
                raise ModelError(f"{self.path}: refused on {engine}, its self-test fails: {result.reason}")

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def labels(self) -> tuple[str, ...]:
        return self._metadata.labels

    @property
    def takes_images(self) -> bool:
        """Whether this is an image model (export/image_model.py): its input is the decoded image (uint8
        H×W×C, layout "HWC") and its graph holds the preprocessing."""
        return self._metadata.input.layout == "HWC"

    @property
    def transform(self) -> Any:
        """The preprocessing pipeline (``edgeinfer.transforms``): uint8 image array → float32 CHW."""
        return self._transform

    def __repr__(self) -> str:
        return (
            f"Model({str(self.path)!r}, threads={self.threads}, engine={self.options.engine!r}, "
            f"classes={len(self.labels)})"
        )

    def preprocess(self, image: Any) -> np.ndarray:
        """Decode ``image`` (path, bytes, PIL image or array), convert it to the model's image mode
        like torchvision's loader, and apply the model's transform: a float32 C×H×W array. For an image
        model (:attr:`takes_images`), the decoded image itself, uint8 H×W×C: its graph does the rest.

        Raises:
            ImageError: the image cannot be decoded, or its tensor does not fit the model's input
                (possible when the preprocessing does not fix the size, e.g. ToTensor alone).
        """
        if self.takes_images:  # the model's input: the image decoded in its mode, as uint8 H×W×C
            decoded = load_image(image, self._metadata.image_mode, max_pixels=self.max_pixels)
            return np.ascontiguousarray(decoded.reshape(decoded.shape[:2] + (-1,)))
        with parallel(self._threads_per_image):
            return preprocess(image, self._metadata, max_pixels=self.max_pixels, transform=self._transform)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw output (e.g. logits) for a preprocessed float32 N×C×H×W batch (an image model:
        a uint8 N×H×W×C batch of decoded images, run one by one).

        Raises:
            ModelError: onnxruntime fails, or the output is not a float [N, classes] tensor.
        """
        if not isinstance(batch, np.ndarray):
            raise TypeError(f"batch must be a NumPy array, got {type(batch).__name__}")
        if self.takes_images:
            if batch.dtype != np.uint8 or batch.ndim != 4:
                raise TypeError(f"an image model runs uint8 N×H×W×C images, got {batch.dtype} {batch.shape}")
            return np.concatenate([self._run_graph(image)[0] for image in batch])
        if batch.dtype != np.float32:
            raise TypeError(f"batch must be float32, got {batch.dtype}")
        expected = self._metadata.input.shape
        if not shape_fits(batch.shape, (None, *expected[1:])):
            raise ValueError(
                f"batch shape {list(batch.shape)} does not match the model's input {shape_str(expected)}"
            )
        output = self._run_graph(batch)[0]
        expected = (batch.shape[0], len(self.labels))
        if not isinstance(output, np.ndarray) or output.dtype.kind != "f" or output.shape != expected:
            got = (
                f"{output.dtype} {shape_str(output.shape)}"
                if isinstance(output, np.ndarray)
                else "not a tensor"
            )
            raise ModelError(
                f"{self.path}: output {self._output_name!r} is {got}; edgeinfer needs a float tensor "
                f"[N, classes] = {shape_str(expected)}"
            )
        return output

    def _run_graph(self, feed: np.ndarray, outputs: Sequence[str] | None = None) -> list[Any]:
        """The session's ``outputs`` (default: the first) for ``feed``."""
        try:
            return self._session.run(list(outputs or [self._output_name]), {self._input_name: feed})
        except Exception as e:  # onnxruntime's pybind errors, allocation failures
            raise ModelError(f"{self.path}: inference failed ({engine_error(e)})") from None

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

        With ``errors="raise"`` the first image that fails raises its error. With ``errors="return"``
        (like ``asyncio.gather(return_exceptions=True)``) each failed image's error, an ImageError
        whatever went wrong (unreadable, wrong kind of object, out of memory, a non-finite model
        output), takes its place in the result list and the other images are still classified.
        Images whose tensors differ in size (models with dynamic height/width) run in separate batches.

        Raises:
            TypeError: ``images`` is a single string or bytes object instead of a list of images.
            ModelError: inference fails or gives an output of the wrong shape (not a per-image error).
        """
        if isinstance(images, (str, bytes, bytearray, memoryview)) or not isinstance(images, Iterable):
            raise TypeError(
                f"images must be a list (or other iterable) of images, got one {type(images).__name__}; "
                "use predict() for a single image"
            )
        positive_int("batch_size", batch_size)
        positive_int("top_k", top_k)
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
        results: list[Any] = []
        for chunk in _chunks(images, batch_size):
            # Tensors grouped by shape, each with its slot in `results`.
            groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
            for image, outcome in zip(chunk, self._preprocess_all(chunk), strict=True):
                if isinstance(outcome, Exception):  # any failure, even MemoryError, belongs to this image
                    if errors == "raise":
                        raise outcome
                    results.append(
                        outcome
                        if isinstance(outcome, ImageError)
                        else ImageError(f"{image_name(image)}: {describe(outcome)}")
                    )
                else:
                    groups.setdefault(outcome.shape, []).append((len(results), outcome))
                    results.append(image)
            for members in groups.values():
                scores = self._scores(self.run(np.stack([tensor for _, tensor in members])))
                finite = np.isfinite(scores).all(axis=1)
                order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
                best = np.take_along_axis(scores, order, axis=1)
                for (slot, _), ok, indices, values in zip(
                    members, finite, order.tolist(), best.tolist(), strict=True
                ):
                    if not ok:
                        e = ImageError(
                            f"{image_name(results[slot])}: the model's output for this image is not finite "
                            f"(NaN or infinite scores), no prediction"
                        )
                        if errors == "raise":
                            raise e
                        results[slot] = e
                        continue
                    top = tuple(zip([self.labels[i] for i in indices], values, strict=True))
                    results[slot] = Prediction(label=top[0][0], index=indices[0], score=values[0], top=top)
        return results

    def _preprocess_all(self, images: list[Any]) -> list[np.ndarray | Exception]:
        """``preprocess`` of each image (or the exception it raised), in order. With several threads,
        images are decoded and preprocessed in parallel: Pillow's decoders and NumPy release the GIL."""

        def outcome(image: Any) -> np.ndarray | Exception:
            try:
                return self.preprocess(image)
            except Exception as e:
                return e

        workers = min(len(images), self.threads or os.cpu_count() or 1)
        if workers <= 1:
            return [outcome(image) for image in images]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="edgeinfer-decode") as pool:
            # One image per thread: the resampler then stays on its thread.
            return list(pool.map(lambda image: self._one_thread(outcome, image), images))

    def _one_thread(self, function: Any, image: Any) -> Any:
        self._local.threads = 1
        return function(image)

    @property
    def _threads_per_image(self) -> int:
        """Threads one image's resampling may use: the Model's threads, or 1 inside a parallel batch."""
        return getattr(self._local, "threads", None) or self.threads or os.cpu_count() or 1

    def verify(self) -> SelfTestResult:
        """Run the self-test stored in the model file at export (see :mod:`edgeinfer.selftest`).

        Raises:
            ModelError: the model carries no self-test.
            MetadataError: its self-test document is malformed.
        """
        document = self.self_test_document()
        if document is None:
            raise ModelError(
                f"{self.path}: the model carries no self-test (export it with export/to_onnx.py to add one)"
            )
        from edgeinfer.selftest import verify

        return verify(_GraphPreprocessing(self) if self.takes_images else self, document)

    def self_test_document(self) -> dict[str, Any] | None:
        """The self-test document stored in the model file at export, validated; None if it has none.

        Raises:
            MetadataError: the document is malformed.
        """
        try:
            from edgeinfer.selftest import read_self_test

            return read_self_test(self._session.get_modelmeta().custom_metadata_map)
        except MetadataError as e:
            raise MetadataError(f"{self.path}: {e}") from None

    def _scores(self, output: np.ndarray) -> np.ndarray:
        """Probabilities per row; rows with NaN, or only -inf logits, come out non-finite."""
        if self._metadata.output == "probabilities":
            return output
        with np.errstate(invalid="ignore", over="ignore"):
            shifted = np.exp(output - output.max(axis=1, keepdims=True))
            scores = shifted / shifted.sum(axis=1, keepdims=True)
        # softmax's limit for +inf logits: the +inf classes share all of the probability.
        posinf = np.isposinf(output)
        rows = posinf.any(axis=1) & ~np.isnan(output).any(axis=1)
        scores[rows] = posinf[rows] / posinf[rows].sum(axis=1, keepdims=True)
        return scores


class _GraphPreprocessing:
    """An image model as the self-test sees a model: ``preprocess`` runs the graph on the decoded image and
    returns its ``preprocessed`` output (what the self-test hashes: the in-graph preprocessing is checked
    bit for bit), ``run`` returns the outputs of that same run."""

    def __init__(self, model: Model) -> None:
        self._model = model
        self._outputs: dict[bytes, np.ndarray] = {}
        self.path, self.metadata = model.path, model.metadata

    def preprocess(self, image: Any) -> np.ndarray:
        model = self._model
        output, tensor = model._run_graph(model.preprocess(image), [model._output_name, "preprocessed"])
        self._outputs[tensor.tobytes()] = output
        return tensor[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return np.concatenate([self._outputs[tensor.tobytes()] for tensor in batch])
        except KeyError:
            raise ModelError(f"{self._model.path}: an image model runs images, not tensors") from None


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


def _open_session(path: Path, options: EngineOptions) -> Any:
    try:
        with open_regular(path) as f:
            empty = os.fstat(f.fileno()).st_size == 0
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not an ONNX file") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: {describe_open_error(e)}") from None
    if empty:
        raise ModelError(f"{path}: empty file, not an ONNX model")
    return open_session(path, options)


def choose_engine(path: Path, options: EngineOptions, **model_args: Any) -> tuple[str, tuple[Any, ...]]:
    """The installed engine with the lowest median batch-1 latency among those where the self-test passes
    (without a self-test, only onnxruntime, the engine the model was exported and checked with, qualifies),
    each run with ``options`` (threads; spinning and optimisation where the engine has them).

    Returns the engine and the measured rows (``edgeinfer._bench.SweepRow``).
    """
    from edgeinfer._bench import sweep

    settings = [dataclasses.replace(options, engine=engine) for engine in available_engines()]
    rows = sweep(Model, path, batch_size=1, runs=30, settings=settings, **model_args)
    eligible = [row for row in rows if row.eligible]
    if not eligible:
        reasons = "; ".join(f"{row.options.engine}: {row.self_test}" for row in rows)
        raise ModelError(f"{path}: no installed engine passes the model's self-test ({reasons})")
    return min(eligible, key=lambda row: row.batch_1_ms).options.engine, tuple(rows)


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
        overrides["labels"] = check_labels(tuple(labels), "labels")
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
                f"cannot infer the image mode from input shape {shape_str(shape)}; pass image_mode"
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
    if not shape_fits(actual_shape, declared.shape):
        raise ModelError(
            f"{path}: input {declared.name!r} has shape {shape_str(actual_shape)} "
            f"but its metadata declares {shape_str(declared.shape)}"
        )
    wanted = "tensor(uint8)" if declared.layout == "HWC" else "tensor(float)"
    if actual.type != wanted:
        raise ModelError(
            f"{path}: input {declared.name!r} is {actual.type}, its metadata declares {declared.dtype}"
        )
    output = session.get_outputs()[0]
    rank = None if output.shape is None else len(output.shape)
    if output.type not in _FLOAT_TENSORS or rank not in (None, 2):
        shape = (
            ""
            if output.shape is None
            else " " + shape_str([d if isinstance(d, int) else None for d in output.shape])
        )
        raise ModelError(
            f"{path}: output {output.name!r} is {output.type}{shape}; edgeinfer needs a float tensor "
            "[N, classes]"
        )
    classes = output.shape[-1] if rank else None
    if isinstance(classes, int) and classes != len(meta.labels):
        raise ModelError(
            f"{path}: the model outputs {classes} classes but its metadata has {len(meta.labels)} labels"
        )
    if declared.layout == "HWC":  # an image model: its preprocessing is in the graph
        return
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
                f"{out.dtype} {shape_str(out.shape)}, the model needs float32 "
                f"{shape_str(declared.shape[1:])}"
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
