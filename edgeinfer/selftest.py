"""A model file that tests itself: golden vectors written at export, checked on the device.

Export stores a second JSON document in the ONNX file's ``metadata_props``, under the key
``"edgeinfer.self_test"`` (its own ``version``, independent of the main metadata's ``schema_version``)::

    {
      "version": 1,
      "generator": "splitmix64-gradient-v1",   # how seeded cases are drawn (see generate_image)
      "tolerance": 0.0372,                      # max |output - expected| allowed per value
      "tolerance_basis": "output quantization step",
      "output_std": 1.15,                       # optional (since 2026-12): mean over the cases of the
                                                # standard deviation of a case's outputs, for scale
      "made_with": {"machine": "x86_64", "onnxruntime": "1.32.0", ...},
      "cases": [
        {"name": "seeded 28x28", "seed": 1, "size": [28, 28],          # or "png": base64 of a real image
         "sha256": "...",                        # of the preprocessed float32 C×H×W tensor (little-endian)
         "output": [...], "top1": 3, "margin": 1.25}
      ]
    }

On the device, :func:`verify` regenerates every input (integer arithmetic only, so every platform and NumPy
version draws the same pixels), runs the model's own image path and the model, and checks that the
preprocessing is bit-exact, the outputs are within the tolerance, and the top-1 class is the same wherever the
expected margin between the two best classes exceeds twice the tolerance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeinfer.errors import ImageError, MetadataError, ModelError
from edgeinfer.metadata import ModelMetadata
from edgeinfer.pipeline import DYNAMIC_SIDE

SELF_TEST_KEY = "edgeinfer.self_test"
SELF_TEST_VERSION = 1
GENERATOR = "splitmix64-gradient-v1"
_MAX_SIDE = 4096
_MAX_CASES = 64
_MAX_PNG_BYTES = 1 << 16
_MAX_OUTPUTS = 1 << 16
_CHUNK = 1 << 16  # values per band in generate_image
_MAX_TEXT = 200  # printed by `edgeinfer verify`: printable characters only, no terminal escapes


class Classifier(Protocol):
    """What the self-test uses of a model; :class:`edgeinfer.Model` is one. The model is given to it, so
    this module never imports the Model whose ``verify()`` calls it."""

    @property
    def path(self) -> Path: ...

    @property
    def metadata(self) -> ModelMetadata: ...

    def preprocess(self, image: Any) -> np.ndarray: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def generate_image(seed: int, height: int, width: int, mode: str) -> np.ndarray:
    """A seeded test image: diagonal gradients with one hard wrap-around edge, plus noise of ±16.

    Only integer arithmetic (splitmix64 on uint64, which wraps), so the pixels are the same on every platform
    and NumPy version, unlike NumPy's random generators whose streams may change between releases.
    """
    channels = 1 if mode == "L" else 3
    pixels = np.empty((height, width, channels), np.uint8)
    rows = max(1, _CHUNK // (width * channels))  # in bands: the uint64 temporaries stay small
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        start, stop = top * width * channels, bottom * width * channels
        z = np.arange(start, stop, dtype=np.uint64).reshape(bottom - top, width, channels)
        z += np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        noise = (z >> np.uint64(59)).astype(np.int64) - 16  # top 5 bits: [-16, 15]
        y, x, c = np.indices((bottom - top, width, channels), dtype=np.int64)
        gradient = ((y + top) * 256 // height + x * 512 // width + c * 85) % 256
        pixels[top:bottom] = np.clip(gradient + noise, 0, 255)
    return pixels[:, :, 0] if mode == "L" else pixels


def case_sizes(height: int | None, width: int | None) -> list[tuple[int, int]]:
    """Input sizes around the model's: exact, down- and upscaled, tall, wide (to exercise Resize and Crop)."""
    h, w = height or DYNAMIC_SIDE, width or DYNAMIC_SIDE
    sizes = [(h, w), (2 * h + 5, 3 * w + 1), (h // 2 + 1, w // 2 + 3), (4 * h + 3, w + 7), (h + 2, 5 * w)]
    return [(min(a, _MAX_SIDE), min(b, _MAX_SIDE)) for a, b in sizes]


def tensor_sha256(tensor: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor, dtype="<f4").tobytes()).hexdigest()


def build_self_test(
    model: Classifier,
    *,
    output_step: float | None = None,
    images: Sequence[bytes] = (),
    seed: int = 1,
    probes: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> dict[str, Any]:
    """The self-test document of ``model`` (whose metadata is final), measured on this machine.

    Args:
        model: the exported model, loaded with the runtime.
        output_step: the quantization step of the model's output, when the output is quantized.
        images: encoded images (e.g. small PNGs from the calibration data) to include as real cases.
        seed: the first seed of the generated cases.
        probes: other computations of the model's outputs from a batch of its input tensors, by name, that
            another platform may match instead (export's: activations kept in float, moved by one ulp).

    Raises:
        ModelError: the preprocessing accepts none of the generated sizes (nor any of ``images``).

    The tolerance is the largest of:

    - the output step (a quantized output);
    - twice the largest difference between this session and the same file on onnxruntime's other CPU
      kernels: 2 threads; 4-bit weights (MatMulNBits) computed in float32, as CPUs without int8 dot
      products do; for a float model only, an unoptimised single-threaded session (other float kernels);
    - twice the largest output change under the smallest input noise (4, 64 or 1024 float32 ulps) that
      changes the output (another CPU rounds float operations differently, and in a quantized network one
      flipped rounding inside moves the output by a whole internal step);
    - twice the largest difference from each of ``probes``;
    - 1e-5 of the largest output.

    A quantized model is not compared with an unoptimised session: that one computes every QDQ group as
    float (dequantize, float operator, quantize) and keeps float-kept convolutions in float, while every
    optimised onnxruntime session, on any CPU, runs int8 kernels and quantizes such a convolution's weights
    at load. On EfficientNet-Lite0 INT8 that reference differed by 1.13 (1.11 from the load-time weight
    quantization alone) against outputs whose standard deviation is 1.53: twice that let a network with a
    whole weight tensor off by one step pass. The int8 kernels themselves agreed exactly on the CPUs measured
    (AVX-512 VNNI; AVX2 and SSE4 under QEMU) once CPUs without VNNI are told to compute exact products
    (edgeinfer's sessions do), and on ARM (cortex-a72 under QEMU) once residual Adds share one scale (export
    does that), so a network quantized throughout gets a tolerance of 1e-5 of its largest output, small
    against the spread of its outputs (recorded as ``output_std``).
    """
    _, _, height, width = model.metadata.input.shape
    cases: list[dict[str, Any]] = [
        {"name": f"seeded {w}x{h}", "seed": seed + i, "size": [h, w]}
        for i, (h, w) in enumerate(case_sizes(height, width))
    ]
    cases += [
        {"name": f"image {i}", "png": base64.b64encode(data).decode("ascii")} for i, data in enumerate(images)
    ]
    tensors = []
    for case in list(cases):
        try:
            tensors.append(model.preprocess(_case_image(case, model.metadata.image_mode)))
        except ImageError:  # a pipeline that does not fix the size accepts only some input sizes
            cases.remove(case)
    if not cases:
        raise ModelError(f"{model.path}: its preprocessing accepts none of the self-test input sizes")
    outputs = [model.run(t[None])[0].astype(np.float64) for t in tensors]
    kernel, spread = _kernel_difference(model, tensors, outputs)
    ulps, sensitivity = _rounding_sensitivity(model, tensors, outputs)
    largest = max(float(np.max(np.abs(o))) for o in outputs)
    candidates = {
        "output quantization step": output_step or 0.0,
        f"measured difference from {kernel} x2": 2 * spread,
        f"measured change under {ulps}-ulp input noise x2": 2 * sensitivity,
        "1e-5 of the largest output": 1e-5 * max(largest, 1.0),
    }
    for probe, run in (probes or {}).items():
        pairs = zip(tensors, outputs, strict=True)
        difference = max(float(np.max(np.abs(run(t[None])[0] - o))) for t, o in pairs)
        candidates[f"measured difference from {probe} x2"] = 2 * difference
    basis = max(candidates, key=lambda k: candidates[k])
    for case, tensor, output in zip(cases, tensors, outputs, strict=True):
        order = np.argsort(-output, kind="stable")
        margin = float(output[order[0]] - output[order[1]]) if output.size > 1 else float("inf")
        case.update(
            sha256=tensor_sha256(tensor),
            output=[float(v) for v in output],
            top1=int(order[0]),
            margin=margin if np.isfinite(margin) else 1e308,
        )
    import onnxruntime

    return {
        "version": SELF_TEST_VERSION,
        "generator": GENERATOR,
        # Plus the float32 rounding of differences between dequantized values.
        "tolerance": candidates[basis] * (1 + 2**-16),
        "tolerance_basis": basis,
        "output_std": float(np.mean([np.std(o) for o in outputs])),
        "made_with": {
            "machine": platform.machine(),
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
        },
        "cases": cases,
    }


@dataclass(frozen=True)
class CaseResult:
    name: str
    preprocessing_exact: bool
    max_difference: float
    expected_top1: int
    top1: int
    top1_checked: bool

    def passed(self, tolerance: float) -> bool:
        top1_ok = not self.top1_checked or self.top1 == self.expected_top1
        return self.preprocessing_exact and self.max_difference <= tolerance and top1_ok


@dataclass(frozen=True)
class SelfTestResult:
    """What :func:`verify` found: one row per case; ``reason`` is None when everything passed."""

    cases: tuple[CaseResult, ...]
    tolerance: float
    tolerance_basis: str
    made_with: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.reason is None

    @property
    def reason(self) -> str | None:
        for c in self.cases:
            if not c.preprocessing_exact:
                return f"case {c.name!r}: the preprocessed tensor differs from the one recorded at export"
            if c.max_difference > self.tolerance:
                return (
                    f"case {c.name!r}: outputs differ by up to {c.max_difference:.6g}, "
                    f"more than the tolerance {self.tolerance:.6g}"
                )
            if c.top1_checked and c.top1 != c.expected_top1:
                return f"case {c.name!r}: top-1 class {c.top1}, expected {c.expected_top1}"
        return None


def read_self_test(props: Mapping[str, str]) -> dict[str, Any] | None:
    """The validated self-test document from a model's metadata_props, or None when there is none.

    Raises:
        MetadataError: the document is present but malformed.
    """
    if SELF_TEST_KEY not in props:
        return None
    try:
        doc = json.loads(props[SELF_TEST_KEY])
    except (json.JSONDecodeError, RecursionError) as e:
        raise MetadataError(f"{SELF_TEST_KEY} is not valid JSON: {e}") from None
    _validate(doc)
    return doc


def verify(model: Classifier, doc: Mapping[str, Any]) -> SelfTestResult:
    """Check ``model`` on this platform against its self-test document (see the module docs)."""
    tolerance = float(doc["tolerance"])
    rows = []
    for i, case in enumerate(doc["cases"]):
        try:
            tensor = model.preprocess(_case_image(case, model.metadata.image_mode))
        except ImageError as e:  # export kept only cases the preprocessing accepts: the document is wrong
            raise MetadataError(f"{model.path}: {SELF_TEST_KEY}: case {i}: {e}") from None
        output = model.run(tensor[None])[0].astype(np.float64)
        expected = np.array(case["output"], np.float64)
        difference = float(np.max(np.abs(output - expected))) if output.shape == expected.shape else np.inf
        rows.append(
            CaseResult(
                name=case["name"],
                preprocessing_exact=tensor_sha256(tensor) == case["sha256"],
                max_difference=difference if np.isfinite(difference) else float("inf"),
                expected_top1=case["top1"],
                top1=int(np.argmax(output)),
                top1_checked=case["margin"] > 2 * tolerance,
            )
        )
    return SelfTestResult(tuple(rows), tolerance, str(doc["tolerance_basis"]), dict(doc["made_with"]))


def _case_image(case: Mapping[str, Any], mode: str) -> Any:
    if "png" in case:
        return base64.b64decode(case["png"], validate=True)
    h, w = case["size"]
    return generate_image(case["seed"], h, w, mode)


def _rounding_sensitivity(
    model: Classifier, tensors: Sequence[np.ndarray], outputs: Sequence[np.ndarray], trials: int = 8
) -> tuple[int, float]:
    """The largest output change under seeded uniform input noise of the smallest amplitude (4, 64 or 1024
    float32 ulps) that changes any output at all, and that amplitude.

    A float network's output moves in proportion to the noise, so 4 ulps already shows it; a quantized one
    does not move until the noise flips a rounding somewhere inside, and then by a whole internal step.
    """
    rng = np.random.default_rng(0)
    largest = 0.0
    for ulps in (4, 64, 1024):
        for tensor, output in zip(tensors, outputs, strict=True):
            amplitude = ulps * np.spacing(np.abs(tensor))
            for _ in range(trials):
                noisy = (tensor + rng.uniform(-1, 1, tensor.shape) * amplitude).astype(np.float32)
                changed = model.run(noisy[None])[0].astype(np.float64)
                largest = max(largest, float(np.max(np.abs(changed - output))))
        if largest > 0:
            return ulps, largest
    return 0, 0.0


def _kernel_difference(
    model: Classifier, tensors: Sequence[np.ndarray], outputs: Sequence[np.ndarray]
) -> tuple[str, float]:
    """The largest difference between ``outputs`` and the same inputs through other onnxruntime CPU kernels
    (see :func:`build_self_test`), and which kernels."""
    import onnxruntime as ort

    from edgeinfer._engines import precise_int8_config
    from edgeinfer.onnxinfo import summarize

    variants: dict[str, tuple[int, bool, dict[str, str]]] = {  # threads, optimised, session config
        "2 threads": (2, True, {}),
        "4-bit weights computed in float": (1, True, {"mlas.qnbit.force_fp32": "1"}),
    }
    if summarize(model.path).quantization == "none":
        variants["an unoptimised session"] = (1, False, {})
    name = model.metadata.input.name
    largest: tuple[str, float] = ("2 threads", 0.0)
    for variant, (threads, optimised, config) in variants.items():
        options = ort.SessionOptions()
        if not optimised:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        for key, value in {**precise_int8_config(), **config}.items():
            options.add_session_config_entry(key, value)
        session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        for tensor, output in zip(tensors, outputs, strict=True):
            other = session.run(None, {name: tensor[None]})[0][0].astype(np.float64)
            difference = float(np.max(np.abs(other - output)))
            if difference > largest[1]:
                largest = (variant, difference)
    return largest


def _validate(doc: Any) -> None:
    def fail(what: str) -> None:
        raise MetadataError(f"{SELF_TEST_KEY}: {what}")

    if not isinstance(doc, dict):
        fail(f"must be a JSON object, got {type(doc).__name__}")
    if doc.get("version") != SELF_TEST_VERSION or isinstance(doc.get("version"), bool):
        fail(f"unsupported version {doc.get('version')!r} (this edgeinfer reads {SELF_TEST_VERSION})")
    if doc.get("generator") != GENERATOR:
        fail(f"unknown generator {doc.get('generator')!r} (this edgeinfer knows {GENERATOR!r})")
    tolerance = doc.get("tolerance")
    if not _is_finite_number(tolerance) or tolerance < 0:
        fail(f"'tolerance' must be a finite number >= 0, got {tolerance!r}")
    if "output_std" in doc and (not _is_finite_number(doc["output_std"]) or doc["output_std"] < 0):
        fail(f"'output_std' must be a finite number >= 0, got {doc['output_std']!r}")
    made_with = doc.get("made_with")
    texts = [doc.get("tolerance_basis")]
    if isinstance(made_with, dict):
        texts += [*made_with, *made_with.values()]
    if not isinstance(made_with, dict) or not all(_is_text(t) for t in texts):
        fail(f"'tolerance_basis' and 'made_with' must be printable text of at most {_MAX_TEXT} characters")
    cases = doc.get("cases")
    if not isinstance(cases, list) or not 0 < len(cases) <= _MAX_CASES:
        fail(f"'cases' must be a list of 1 to {_MAX_CASES} cases")
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not _is_text(case.get("name")):
            fail(f"case {i} must be an object with a 'name' of printable text")
        if "png" in case:
            if not isinstance(case["png"], str) or len(case["png"]) > _MAX_PNG_BYTES * 4 // 3 + 4:
                fail(f"case {i}: 'png' must be base64 text of at most {_MAX_PNG_BYTES} bytes")
            try:
                base64.b64decode(case["png"], validate=True)
            except binascii.Error as e:
                fail(f"case {i}: 'png' is not base64 ({e})")
        else:
            size, seed = case.get("size"), case.get("seed")
            if not _is_int(seed) or seed < 0 or seed >= 2**63:
                fail(f"case {i}: 'seed' must be an int in [0, 2**63), got {seed!r}")
            sides_ok = isinstance(size, list) and len(size) == 2
            if not sides_ok or not all(_is_int(s) and 0 < s <= _MAX_SIDE for s in size):
                fail(f"case {i}: 'size' must be [height, width], each 1 to {_MAX_SIDE}, got {size!r}")
        sha, output = case.get("sha256"), case.get("output")
        if not isinstance(sha, str) or len(sha) != 64:
            fail(f"case {i}: 'sha256' must be 64 hex digits")
        if not isinstance(output, list) or not 0 < len(output) <= _MAX_OUTPUTS:
            fail(f"case {i}: 'output' must be a non-empty list of numbers")
        if not all(_is_finite_number(v) for v in output):
            fail(f"case {i}: 'output' must hold finite numbers only")
        if not _is_int(case.get("top1")) or not 0 <= case["top1"] < len(output):
            fail(f"case {i}: 'top1' must index 'output'")
        if not _is_finite_number(case.get("margin")):
            fail(f"case {i}: 'margin' must be a finite number")


def _is_text(x: Any) -> bool:
    return isinstance(x, str) and len(x) <= _MAX_TEXT and x.isprintable()


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and bool(np.isfinite(x))
