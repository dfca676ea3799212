"""The inference engines a Model can run on: onnxruntime (the default dependency) and OpenVINO (an extra).

Both are opened as a "session" with the part of onnxruntime's ``InferenceSession`` interface that Model uses:
``get_inputs()`` / ``get_outputs()`` (objects with ``name``, ``shape``, ``type``),
``get_modelmeta().custom_metadata_map`` and ``run(output_names, feeds)``. Which engine is fastest depends
on the CPU (``edgeinfer bench --sweep`` measures it), so the choice is the user's or a measurement's.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edgeinfer.errors import ModelError, first_line

ENGINES = ("onnxruntime", "openvino")
OPTIMIZATIONS = ("disabled", "basic", "extended", "all")  # onnxruntime's graph optimisation levels
MAX_THREADS = 256  # intra-op threads of a session: more is a typo, not a machine
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # /proc/cpuinfo: int8 dot products with exact int32 sums


@dataclass(frozen=True)
class EngineOptions:
    """How to run a model: the engine, its intra-op threads (None: the engine's default), whether idle
    onnxruntime worker threads spin (off: an idle model costs no CPU), onnxruntime's graph optimisation."""

    engine: str = "onnxruntime"
    threads: int | None = None
    spinning: bool = False
    optimization: str = "all"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES} or 'auto', got {self.engine!r}")
        if self.optimization not in OPTIMIZATIONS:
            raise ValueError(f"optimization must be one of {OPTIMIZATIONS}, got {self.optimization!r}")
        if not isinstance(self.spinning, bool):
            raise TypeError(f"spinning must be a bool, got {self.spinning!r}")

    def describe(self) -> str:
        threads = self.threads or "default"
        if self.engine == "openvino":
            return f"openvino, threads {threads}"
        spin = "on" if self.spinning else "off"
        return f"onnxruntime, threads {threads}, spinning {spin}, optimization {self.optimization}"


def available_engines() -> tuple[str, ...]:
    """The engines installed here: onnxruntime always, OpenVINO with ``pip install 'edgeinfer[openvino]'``."""
    return tuple(e for e in ENGINES if importlib.util.find_spec(e) is not None)


def open_session(path: Path, options: EngineOptions) -> Any:
    """A session of the model file at ``path`` on ``options.engine``.

    Raises:
        ModelError: the engine is not installed or cannot load the model (one line).
    """
    if options.engine not in available_engines():
        extra = options.engine
        raise ModelError(f"{path}: the {extra} engine is not installed (pip install 'edgeinfer[{extra}]')")
    opener = _open_openvino if options.engine == "openvino" else _open_onnxruntime
    return opener(path, options)


@functools.cache
def precise_int8_config() -> dict[str, str]:
    """onnxruntime's ``session.x64quantprecision=1`` on x86 CPUs without VNNI, else nothing.

    Without VNNI (AVX2, AVX-512 before Cascade Lake) onnxruntime multiplies uint8 activations by int8 weights
    in pairs that saturate at 16 bits; the option makes those CPUs compute the exact int32 sums that VNNI,
    SSE4 and ARM compute, so a quantized model's self-test can be exact (edgeinfer/selftest.py; without it an
    emulated AVX2 CPU was 1.93 logits off on EfficientNet-Lite0 INT8). Where the sums are exact anyway it
    changes no output and only costs time (Zen 4 with VNNI: Lite0 INT8 at batch 16, 311 → 477 ms), so it is
    set only where it matters, or where the CPU's flags cannot be read (exact first).
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return {}
    try:
        flags = {f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                 for f in line.split(":", 1)[1].split()}  # fmt: skip
    except OSError:
        flags = set()
    if flags & set(VNNI_FLAGS):
        return {}
    return {"session.x64quantprecision": "1"}


def _open_onnxruntime(path: Path, options: EngineOptions) -> Any:
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    if options.threads is not None:
        session_options.intra_op_num_threads = options.threads
    session_options.inter_op_num_threads = 1
    spin = "1" if options.spinning else "0"
    session_options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    session_options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    for key, value in precise_int8_config().items():
        session_options.add_session_config_entry(key, value)
    level = ort.GraphOptimizationLevel
    session_options.graph_optimization_level = {
        "disabled": level.ORT_DISABLE_ALL,
        "basic": level.ORT_ENABLE_BASIC,
        "extended": level.ORT_ENABLE_EXTENDED,
        "all": level.ORT_ENABLE_ALL,
    }[options.optimization]
    session_options.log_severity_level = 3  # errors only: load-time warnings are not for end users
    try:
        return ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own pybind types (Fail, InvalidProtobuf, ...)
        raise ModelError(f"{path}: not a loadable ONNX model ({engine_error(e)})") from None


def _open_openvino(path: Path, options: EngineOptions) -> Any:
    from edgeinfer.onnxinfo import summarize

    props = summarize(path).metadata_props  # OpenVINO does not expose ONNX metadata_props
    try:
        return _OpenVinoSession(path, options.threads, props)
    except Exception as e:  # OpenVINO raises RuntimeError with multi-line messages
        raise ModelError(f"{path}: OpenVINO cannot load this model ({engine_error(e)})") from None


class _OpenVinoSession:
    """An OpenVINO compiled model behind onnxruntime's session interface. One infer request per thread."""

    def __init__(self, path: Path, threads: int | None, props: dict[str, str]) -> None:
        import openvino as ov

        core = ov.Core()
        # f32: on CPUs with bf16 units OpenVINO would otherwise compute in bf16, far from the exported model.
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self._inputs = [_port(p) for p in self._compiled.inputs]
        self._outputs = [_port(p) for p in self._compiled.outputs]
        self._meta = SimpleNamespace(custom_metadata_map=props)
        self._local = threading.local()

    def get_inputs(self) -> list[SimpleNamespace]:
        return self._inputs

    def get_outputs(self) -> list[SimpleNamespace]:
        return self._outputs

    def get_modelmeta(self) -> SimpleNamespace:
        return self._meta

    def run(self, output_names: list[str] | None, feeds: dict[str, Any]) -> list[Any]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        results = request.infer(feeds)
        names = output_names or [o.name for o in self._outputs]
        # The arrays are views into the request's buffers, which the next call overwrites: copy them out.
        return [results[self._compiled.output(name)].copy() for name in names]


_OV_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "f64": "tensor(double)"}


def _port(port: Any) -> SimpleNamespace:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    kind = port.get_element_type().get_type_name()
    return SimpleNamespace(name=port.any_name, shape=shape, type=_OV_TYPES.get(kind, f"tensor({kind})"))


def engine_error(e: BaseException) -> str:
    """An engine exception's message as one line (onnxruntime's status prefix shortened)."""
    line = first_line(e)
    # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from x failed:Protobuf parsing failed."
    m = re.match(r"\[ONNXRuntimeError\] : \d+ : (\w+) : (?:Load model from .* failed:)?(.*)", line)
    return f"{m.group(1)}: {m.group(2).strip()}" if m else line
