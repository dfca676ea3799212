"""Hostile and careless inputs (issue 10): bounded cost, nothing that blocks or loops, only raster
formats decoded, output that cannot be forged, strict metadata and outputs, batches that keep every
result, floats read as torchvision reads them, and honest one-line messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image
from torchvision import transforms as T

from edgeinfer import Model, cli
from edgeinfer.decoding import IMAGE_EXTENSIONS, RASTER_FORMATS, load_image
from edgeinfer.errors import ImageError, MetadataError, ModelError
from edgeinfer.metadata import ModelMetadata, parse_document
from edgeinfer.model import MAX_THREADS
from edgeinfer.sources import expand_inputs
from edgeinfer.transforms import MAX_OUTPUT_PIXELS, from_spec
from tests.fixtures import FASHION_MNIST_LABELS, GRAY_SPEC, bare_model, gray_model

ROOT = Path(__file__).resolve().parents[1]
LABELS = [f"c{i}" for i in range(10)]


def _run(*args: object):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _process(*args: object, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """The CLI in its own process (a hang fails the test at ``timeout`` instead of blocking the suite)."""
    kwargs = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.run(
        [sys.executable, "-m", "edgeinfer", *map(str, args)], text=True, cwd=ROOT, timeout=timeout, **kwargs
    )


def _png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


def _metadata(**changes) -> dict:
    d = {
        "schema_version": 1,
        "labels": LABELS,
        "preprocessing": GRAY_SPEC,
        "image_mode": "L",
        "input": {"name": "input", "shape": [None, 1, 28, 28], "layout": "NCHW", "dtype": "float32"},
        "output": "logits",
        "provenance": {"architecture": "test"},
    }
    d.update(changes)
    return d


def _graph_model(
    path: Path,
    nodes: list,
    *,
    initializers: list = (),
    output_type: int = TensorProto.FLOAT,
    output_shape: list | None = None,
    input_shape: tuple = (None, 1, 28, 28),
    metadata: dict | None = None,
) -> Path:
    """An ONNX model from `nodes` (input "input", output "out") carrying edgeinfer metadata as given."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("out", output_type, output_shape)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="edgeinfer", value=json.dumps(metadata or _metadata()))
    path.write_bytes(model.SerializeToString())
    return path


def _logits_model(path: Path, bias: list[float], **kwargs) -> Path:
    """logits = mean pixel × 0 + bias: every image gets `bias` as its logits."""
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"]),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "bias"], ["out"]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.FLOAT, [1, len(bias)], [0.0] * len(bias)),
        helper.make_tensor("bias", TensorProto.FLOAT, [len(bias)], bias),
    ]
    return _graph_model(path, nodes, initializers=inits, output_shape=[None, len(bias)], **kwargs)


# --- 1. the budget: huge intermediates are refused, not attempted -----------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        {"type": "Pad", "padding": 10**7},
        {"type": "Pad", "padding": [0, 10**8]},
        {"type": "CenterCrop", "size": 100000},
        {"type": "Resize", "size": [100000, 100000]},
        {"type": "Resize", "size": 10**5},
        {"type": "Resize", "size": None, "max_size": 10**9},
    ],
)
def test_spec_needing_a_huge_intermediate_is_refused_from_its_values(step):
    spec = {"type": "Compose", "transforms": [step, {"type": "ToTensor"}]}
    with pytest.raises(ValueError, match=rf"over edgeinfer's budget of {MAX_OUTPUT_PIXELS} pixels"):
        from_spec(spec)
    document = json.dumps(_metadata(preprocessing=spec))
    with pytest.raises(MetadataError, match=r"^edgeinfer metadata 'preprocessing' is not a valid .*budget"):
        ModelMetadata.from_json(document)


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"type": "Pad", "padding": 1, "fill": float("inf")}, "Pad fill must be finite"),
        ({"type": "Normalize", "mean": [0.5], "std": [float("nan")]}, "Normalize std must be finite"),
        ({"type": "Normalize", "mean": [10**400], "std": [1]}, "Normalize mean must be finite float32"),
        ({"type": "Pad", "padding": -(10**100)}, "Pad padding must be >="),
    ],
)
def test_spec_numbers_must_be_finite_and_bounded(step, problem):
    with pytest.raises(ValueError, match=problem):
        from_spec(step)


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        # Resize(28) of a 1×3,000,000 image without a crop: 28×84,000,000 pixels.
        (
            [{"type": "Resize", "size": 28}],
            r"Resize\(size=28\) of a 1×3000000 image would make a 28×84000000",
        ),
        (
            [{"type": "Pad", "padding": 20}, {"type": "CenterCrop", "size": 28}],
            r"Pad \[20, 20, 20, 20\] of a 1×3000000 image would make a 41×3000040",
        ),
    ],
)
def test_run_time_sizes_over_the_budget_are_one_image_error(tmp_path, steps, problem):
    wide = _png(tmp_path / "wide.png", np.zeros((1, 3_000_000), np.uint8))  # 3 kB on disk
    good = _png(tmp_path / "good.png", np.full((28, 28), 9, np.uint8))
    spec = {"type": "Compose", "transforms": [*steps, {"type": "ToTensor"}]}
    model = Model(bare_model(), preprocessing=spec, labels=LABELS)
    results = model.predict_batch([wide, good], errors="return")
    assert isinstance(results[0], ImageError)
    budget = rf"over edgeinfer's budget of {MAX_OUTPUT_PIXELS} pixels per transform output"
    assert re.fullmatch(
        rf"{wide}: preprocessing failed: {problem} image \(\d+ pixels\), {budget}", str(results[0])
    )
    assert results[1].label in LABELS


def test_budget_refusals_finish_under_an_address_space_limit(tmp_path):
    """Resize without a crop of a 3 kB 1×3,000,000 PNG, and Pad(10**7) in a spec, under a 1 GB limit."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    wide = _png(tmp_path / "wide.png", np.zeros((1, 3_000_000), np.uint8))
    good = _png(tmp_path / "good.png", np.full((28, 28), 9, np.uint8))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS))
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"type": "Compose", "transforms": [{"type": "Resize", "size": 28}, {"type": "ToTensor"}]})
    )
    args = ["--model", bare_model(), "--spec", spec, "--labels", labels]
    proc = _process("predict", wide, good, *args, preexec_fn=limit)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"Error: {wide}: preprocessing failed: Resize(size=28) of a 1×3000000 image"
    )
    assert proc.stderr.count("\n") == 1
    assert proc.stdout.startswith(f"{good}\t")
    spec.write_text(
        json.dumps(
            {"type": "Compose", "transforms": [{"type": "Pad", "padding": 10**7}, {"type": "ToTensor"}]}
        )
    )
    proc = _process("predict", good, *args, preexec_fn=limit)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith(
        f"Error: Invalid value for '--spec': {spec}: not a valid transforms"
    )
    assert "budget" in proc.stderr and "Traceback" not in proc.stderr


# --- 2. nothing hangs: regular files only, walks that end, bounded threads --------------------------------


def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    (tmp_path / "d").mkdir()
    fifo = tmp_path / "d" / "fifo.png"
    os.mkfifo(fifo)
    good = _png(tmp_path / "d" / "good.png", np.zeros((28, 28), np.uint8))
    proc = _process("predict", tmp_path / "d", fifo, "/dev/null", "--model", gray_model(), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"Error: {fifo}: not a regular file (a FIFO or pipe, e.g. a process substitution)",
        f"Error: {fifo}: not a regular file (a FIFO or pipe, e.g. a process substitution)",
        "Error: /dev/null: not a regular file (a character device)",
    ]
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [str(good)]


@pytest.mark.parametrize("option", ["--model", "--spec", "--labels"])
def test_a_fifo_as_model_spec_or_labels_is_refused_without_blocking(tmp_path, option):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    good = _png(tmp_path / "good.png", np.zeros((28, 28), np.uint8))
    proc = _process("predict", good, option, fifo, timeout=60)
    assert proc.returncode in (1, 2)
    assert "Traceback" not in proc.stderr
    assert (
        f"{fifo}: not a regular file (a FIFO or pipe, e.g. a process substitution)"
        in proc.stderr.splitlines()[-1]
    )


def test_info_on_a_fifo_or_device_is_one_line_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    for path, kind in (
        (fifo, "a FIFO or pipe, e.g. a process substitution"),
        ("/dev/zero", "a character device"),
    ):
        proc = _process("info", path, timeout=60)
        assert proc.returncode == 1
        assert proc.stderr == f"Error: {path}: not a regular file ({kind})\n"


def test_process_substitution_is_not_called_an_empty_file():
    proc = subprocess.run(
        ["bash", "-c", f'exec "{sys.executable}" -m edgeinfer predict <(printf x) --model "{gray_model()}"'],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    problem = r"not a regular file \(a FIFO or pipe, e.g. a process substitution\)"
    assert re.fullmatch(rf"Error: /dev/fd/\d+: {problem}\n", proc.stderr)


def test_recursive_glob_and_walk_never_loop_through_symlinked_directories(tmp_path):
    top = tmp_path / "dir"
    (top / "sub").mkdir(parents=True)
    files = [
        _png(top / "a.png", np.zeros((28, 28), np.uint8)),
        _png(top / "sub" / "b.png", np.zeros((28, 28), np.uint8)),
    ]
    (top / "sub" / "up").symlink_to("..")
    (top / "up2").symlink_to("..")
    patterns = [f"{top}/**/*.png", f"{top}/**", str(top)]
    proc = _process("predict", *patterns, "--model", gray_model(), timeout=60)  # one process: hangs fail
    assert proc.returncode == 0, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [str(f) for f in files] * 3


def test_relative_glob_patterns_still_match_like_glob(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("x/a.png", "x/y/b.png", ".hidden/c.png", "x/.d.png"):
        (tmp_path / name).write_bytes(b"")
    assert list(expand_inputs(["x/**/*.png"])) == ["x/a.png", "x/y/b.png"]
    assert list(expand_inputs(["**/*.png"])) == ["x/a.png", "x/y/b.png"]
    assert list(expand_inputs(["x/.*.png"])) == ["x/.d.png"]
    assert list(expand_inputs([f"{tmp_path}/x/*/b.png"])) == [f"{tmp_path}/x/y/b.png"]


def test_threads_have_an_upper_bound():
    with pytest.raises(ValueError, match=rf"threads must be at most {MAX_THREADS}, got 1000000"):
        Model(gray_model(), threads=10**6)
    result = _run("predict", "x.png", "--threads", MAX_THREADS + 1)
    assert result.exit_code == 2
    assert f"{MAX_THREADS + 1} is not in the range 1<=x<={MAX_THREADS}" in result.stderr


# --- 3. only raster formats are decoded -------------------------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nnewpath 0 0 moveto 28 28 lineto stroke\nshowpage\n"


def test_eps_named_png_is_never_handed_to_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    fake = tmp_path / "x.png"
    fake.write_bytes(EPS)
    with Image.open(fake) as img:  # what Pillow alone would do: read it as EPS and rasterize with gs
        assert img.format == "EPS"
    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a))
    with pytest.raises(
        ImageError, match=rf"^{fake}: not an image in a format edgeinfer decodes \(PNG, JPEG, "
    ):
        Model(gray_model()).predict(fake)
    with pytest.raises(ImageError, match="not an image in a format edgeinfer decodes"):
        Model(gray_model()).predict(EPS)
    assert calls == []
    assert "EPS" not in RASTER_FORMATS and ".eps" not in IMAGE_EXTENSIONS
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".webp"} <= IMAGE_EXTENSIONS


# --- 4. output that cannot be forged ----------------------------------------------------------------------


def test_file_names_with_control_characters_stay_one_escaped_line(tmp_path):
    evil = tmp_path / "a\tb\nForged\t0.99\x1b[2J\u202e\\.png"
    _png(evil, np.zeros((28, 28), np.uint8))
    broken = tmp_path / "broken\nError: x\x07.png"
    broken.write_bytes(b"not an image")
    result = _run("predict", evil, broken, "--model", gray_model())
    assert result.exit_code == 1
    escaped = str(tmp_path) + "/a\\tb\\nForged\\t0.99\\x1b[2J\\u202e\\\\.png"
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.split("\t")[0] == escaped
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: {tmp_path}/broken\\nError: x\\x07.png: not an image")
    assert "\x1b" not in result.output and "\x07" not in result.output
    lines = _run("predict", evil, "--model", gray_model(), "--json").stdout.splitlines()
    assert json.loads(lines[0])["file"] == str(evil)


def test_escape_is_reversible_and_leaves_printable_text_alone():
    assert cli.escape("Ankle boot — ×2 ünï") == "Ankle boot — ×2 ünï"
    samples = ["\t", "\n", "\r", "\\", "\x00", "\x7f", "\u2028", "\u202e", "\udcff", "\U000e0001"]
    escaped = [cli.escape(s) for s in samples]
    assert escaped == [
        "\\t",
        "\\n",
        "\\r",
        "\\\\",
        "\\x00",
        "\\x7f",
        "\\u2028",
        "\\u202e",
        "\\udcff",
        "\\U000e0001",
    ]
    assert all(e.isprintable() for e in escaped)


def test_info_escapes_provenance_and_labels_cannot_hold_control_characters(tmp_path):
    meta = _metadata(provenance={"note\x1b[2J": "line1\nline2\tx", "n": [1, 2]})
    model = _logits_model(tmp_path / "m.onnx", [0.0] * 10, metadata=meta)
    result = _run("info", model)
    assert result.exit_code == 0, result.output
    assert "  note\\x1b[2J: line1\\nline2\\tx" in result.stdout.splitlines()
    assert "\x1b" not in result.stdout
    assert json.loads(_run("info", model, "--json").stdout)["metadata"]["provenance"]["n"] == [1, 2]
    for label in ("a\tb", "new\nline", "\x1b[31mred", "para\u2029"):
        bad = _logits_model(
            tmp_path / "bad.onnx", [0.0] * 10, metadata=_metadata(labels=[label, *LABELS[1:]])
        )
        with pytest.raises(MetadataError, match=r"'labels'\[0\] holds control characters"):
            Model(bad)


# --- 5. strict metadata -----------------------------------------------------------------------------------

NORMALIZE_INF = (
    '{"type": "Compose", "transforms": [{"type": "ToTensor"}, {"type": "Normalize", "mean": [0.5], '
    '"std": [%s]}]}'
)
STRICT = {
    "std Infinity": (NORMALIZE_INF % "Infinity", "Infinity is not a JSON number"),
    "std NaN": (NORMALIZE_INF % "NaN", "NaN is not a JSON number"),
    "std 1e999": (NORMALIZE_INF % "1e999", "1e999 overflows a float"),
    "std 1e300": (NORMALIZE_INF % "1e300", "Normalize std must be finite float32 numbers"),
    "pad fill inf": (None, "Infinity is not a JSON number"),
    "labels as a string": ('"abc"', "'labels' must be a JSON array, got str"),
    "labels repeated": ('["a", "b", "a"]', r"'labels'\[2\] repeats the label 'a'"),
    "labels empty string": ('["a", ""]', r"'labels'\[1\] must be a non-empty string"),
    "labels not strings": ("[1, 2]", r"'labels'\[0\] must be a non-empty string, got 1"),
    "provenance a list": ("[1]", "'provenance' must be a JSON object, got list"),
    "provenance a string": ('"x"', "'provenance' must be a JSON object, got str"),
    "schema_version true": ("true", "unsupported edgeinfer metadata schema_version True"),
    "schema_version 1.0": ("1.0", None),
    "schema_version '1'": ('"1"', "unsupported edgeinfer metadata schema_version '1'"),
    "input shape bool": (None, "'input.shape' must be 4 positive ints or nulls"),
    "input shape huge": (None, r"'input.shape' must be 4 positive ints or nulls \(NCHW\) with C×H×W within"),
    "900 nested Compose": (None, "nested"),
    "deep provenance": (None, "nested too deeply"),
    "long string": (None, "a string of 20000 characters"),
    "unknown key": (None, r"unknown keys: \['extra'\]"),
    "huge int": (None, "not valid JSON"),
}


def _strict_document(case: str) -> str:
    value, _ = STRICT[case]
    field = {"std": "preprocessing", "lab": "labels", "pro": "provenance", "sch": "schema_version"}.get(
        case[:3]
    )
    if value is not None:
        return json.dumps(_metadata()).replace(
            json.dumps(_metadata()[field]) if field != "schema_version" else '"schema_version": 1',
            value if field != "schema_version" else f'"schema_version": {value}',
        )
    d = _metadata()
    if case == "pad fill inf":
        d["preprocessing"] = {
            "type": "Compose",
            "transforms": [{"type": "Pad", "padding": 1, "fill": 1e308 * 10}],
        }
        return json.dumps(d)  # json.dumps writes Infinity; the reader must refuse it
    if case == "input shape bool":
        d["input"]["shape"] = [None, True, 28, 28]
    elif case == "input shape huge":
        d["input"]["shape"] = [None, 1, 10**5, 10**5]
    elif case == "900 nested Compose":
        spec = '{"type": "Compose", "transforms": [' * 900 + '{"type": "ToTensor"}' + "]}" * 900
        return json.dumps(d).replace(json.dumps(GRAY_SPEC), spec)
    elif case == "deep provenance":
        return json.dumps(d).replace('"test"', "[" * 100_000 + "]" * 100_000)
    elif case == "long string":
        d["provenance"]["note"] = "x" * 20_000
    elif case == "unknown key":
        d["extra"] = 1
    elif case == "huge int":
        return json.dumps(d).replace('"test"', "9" * 5000)
    return json.dumps(d)


@pytest.mark.parametrize("case", sorted(STRICT))
def test_strict_metadata_is_one_metadata_error_line(case):
    document = _strict_document(case)
    assert json.dumps(_metadata()) != document
    with pytest.raises(MetadataError) as info:
        ModelMetadata.from_json(document)
    message = str(info.value)
    assert "\n" not in message and len(message) < 2000
    if STRICT[case][1]:
        assert re.search(STRICT[case][1], message), message


def test_std_infinity_in_a_model_file_is_refused_at_load(tmp_path):
    model = _logits_model(tmp_path / "m.onnx", [0.0] * 10)
    proto = onnx.load(str(model))
    proto.metadata_props[0].value = _strict_document("std Infinity")
    model.write_bytes(proto.SerializeToString())
    result = _run("predict", _png(tmp_path / "a.png", np.zeros((28, 28), np.uint8)), "--model", model)
    assert result.exit_code == 1
    problem = "edgeinfer metadata is not valid JSON: Infinity is not a JSON number (RFC 8259)"
    assert result.stderr == f"Error: {model}: {problem}\n"


def test_labels_file_byte_order_mark_is_ignored_and_labels_are_checked(tmp_path):
    good = _png(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
    labels = tmp_path / "labels.txt"
    labels.write_bytes("\n".join(FASHION_MNIST_LABELS).encode("utf-8-sig"))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(GRAY_SPEC))
    result = _run("predict", good, "--model", bare_model(), "--spec", spec, "--labels", labels, "--top-k", 10)
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.split("\t")[1::2]) == sorted(FASHION_MNIST_LABELS)
    labels.write_text("a\nb\na\n")
    result = _run("predict", good, "--model", bare_model(), "--spec", spec, "--labels", labels)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--labels': {labels}: labels[2] repeats the label 'a'"
    )


def test_labels_given_as_a_string_are_refused():
    with pytest.raises(TypeError, match="labels must be a sequence of strings, got str"):
        Model(bare_model(), preprocessing=GRAY_SPEC, labels="0123456789")


# --- 6. strict outputs ------------------------------------------------------------------------------------


def test_one_infinite_logit_is_a_certain_class_and_json_stays_valid(tmp_path):
    model_path = _logits_model(
        tmp_path / "m.onnx", [0.0, 1.0, float("inf"), 2.0, float("-inf"), 0, 0, 0, 0, 0]
    )
    p = Model(model_path).predict(np.zeros((28, 28), np.uint8), top_k=3)
    assert (p.label, p.index, p.score) == ("c2", 2, 1.0)
    assert [score for _, score in p.top] == [1.0, 0.0, 0.0]
    image = _png(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
    line = _run("predict", image, "--model", model_path, "--json", "--top-k", 10).stdout
    parsed = json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in --json output"))
    assert parsed["label"] == "c2" and parsed["score"] == 1.0


@pytest.mark.parametrize("bias", [[float("nan")] + [0.0] * 9, [float("-inf")] * 10])
def test_non_finite_outputs_are_an_error_for_that_image(tmp_path, bias):
    model = Model(_logits_model(tmp_path / "m.onnx", bias))
    results = model.predict_batch([np.zeros((28, 28), np.uint8)], errors="return")
    assert isinstance(results[0], ImageError)
    problem = "the model's output for this image is not finite (NaN or infinite scores), no prediction"
    assert str(results[0]) == f"ndarray image: {problem}"
    with pytest.raises(ImageError, match="not finite"):
        model.predict(np.zeros((28, 28), np.uint8))


def test_wrong_output_kind_or_shape_is_refused_at_load(tmp_path):
    flat = [helper.make_node("Flatten", ["input"], ["out"])]
    argmax = [
        helper.make_node("Flatten", ["input"], ["f"]),
        helper.make_node("ArgMax", ["f"], ["out"], axis=1),
    ]
    identity = [helper.make_node("Identity", ["input"], ["out"])]
    needs = r"edgeinfer needs a float tensor \[N, classes\]"
    cases = {
        "int64 output": (
            argmax,
            TensorProto.INT64,
            [None, 1],
            rf"'out' is tensor\(int64\) \[\?, 1\]; {needs}",
        ),
        "784 classes": (flat, TensorProto.FLOAT, [None, 784], "outputs 784 classes but its metadata has 10"),
        "rank 4": (identity, TensorProto.FLOAT, [None, 1, 28, 28], rf"\[\?, 1, 28, 28\]; {needs}"),
    }
    for name, (nodes, kind, shape, message) in cases.items():
        path = _graph_model(tmp_path / "m.onnx", nodes, output_type=kind, output_shape=shape)
        with pytest.raises(ModelError, match=message):
            Model(path)
        result = _run("predict", "x.png", "--model", path)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, name


def test_wrong_output_at_run_time_is_a_model_error_not_an_index_error(tmp_path):
    model = Model(gray_model())

    class Session:
        def __init__(self, output):
            self.output = output

        def run(self, names, feeds):
            return [self.output]

    for output in (np.zeros(1, np.float32), np.zeros((1, 3), np.float32), np.zeros((1, 10), np.int64)):
        model._session = Session(output)
        with pytest.raises(ModelError, match=r"edgeinfer needs a float tensor \[N, classes\] = \[1, 10\]"):
            model.predict_batch([np.zeros((28, 28), np.uint8)], errors="return")


# --- 7. a batch never loses its other results -------------------------------------------------------------


def test_every_per_item_failure_takes_its_slot(monkeypatch):
    model = Model(gray_model())
    good = np.full((28, 28), 7, np.uint8)
    items = [good, None, np.zeros(5, np.uint8), "a\0b.png", b"", 3.5, good]
    results = model.predict_batch(items, errors="return")
    assert [type(r).__name__ for r in results] == ["Prediction", *["ImageError"] * 5, "Prediction"]
    assert str(results[1]).startswith("NoneType image: TypeError: image must be a path")
    assert str(results[3]) == "a\0b.png: invalid path (embedded null byte)"
    real = model.preprocess

    def preprocess(image):
        if image is None:
            raise MemoryError("simulated")
        return real(image)

    monkeypatch.setattr(model, "preprocess", preprocess)
    results = model.predict_batch([good, None, good], errors="return")
    assert str(results[1]) == "NoneType image: MemoryError: simulated"
    assert results[0] == results[2] == model.predict(good)
    with pytest.raises(MemoryError):
        model.predict_batch([good, None], errors="raise")


@pytest.mark.parametrize("images", ["shoe.png", b"\x89PNG", bytearray(b"x")])
def test_a_single_string_is_not_a_list_of_images(images):
    with pytest.raises(TypeError, match="images must be a list"):
        Model(gray_model()).predict_batch(images, errors="return")


def test_dynamic_size_models_get_mixed_sizes_in_one_call(tmp_path):
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["out"]),
    ]
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 10], np.linspace(-1, 1, 10).tolist())
    meta = _metadata(input={"name": "input", "shape": [None, 1, None, None]})
    model = Model(_graph_model(tmp_path / "dyn.onnx", nodes, initializers=[w], output_shape=[None, 10],
                               input_shape=(None, 1, None, None), metadata=meta))  # fmt: skip
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(20, 20), (30, 17), (20, 20), (5, 9)]]
    together = model.predict_batch(images, batch_size=3)
    assert together == [model.predict(image) for image in images]


# --- 8. float arrays are read as torchvision's ToPILImage reads float tensors -----------------------------


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 1), (6, 7, 3), (6, 7, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_arrays_in_0_1_equal_torchvision_to_pil_image(shape, dtype):
    rng = np.random.default_rng(3)
    a = rng.random(shape).astype(dtype)
    a.flat[:2] = [0.0, 1.0]
    chw = torch.from_numpy(a if a.ndim == 3 else a[:, :, None]).permute(2, 0, 1)
    pil = T.ToPILImage()(chw)  # float tensors: mul(255).byte(), for every channel count
    for mode in ("L", "RGB"):
        assert np.array_equal(load_image(a, mode), np.asarray(pil.convert(mode))), mode
    assert load_image(a, "L").max() > 0  # not the black image mode F used to give


@pytest.mark.parametrize(
    ("values", "problem"),
    [([[0.0, 1.5]], "holds values from 0 to 1.5"), ([[0.0, np.nan]], "holds NaN or infinity"),
     ([[-1.0, 1.0]], "holds values from -1 to 1")],
)  # fmt: skip
def test_float_arrays_outside_0_1_are_refused_with_the_rule(values, problem):
    with pytest.raises(ValueError, match=rf"float image arrays must hold values in \[0, 1\] .*{problem}"):
        load_image(np.array(values, np.float32), "L")


# --- 9. honest messages -----------------------------------------------------------------------------------


def test_max_pixels_above_pillows_limit_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    big = _png(tmp_path / "big.png", np.full((50, 50), 200, np.uint8))  # 2500 px > 2 × Pillow's limit
    with pytest.raises(ImageError, match=r"refused, too many pixels"):
        Model(gray_model(), max_pixels=1000).predict(big)
    result = Model(bare_model(), max_pixels=10_000, preprocessing={"type": "Compose", "transforms": [
        {"type": "Resize", "size": 28}, {"type": "ToTensor"}]}, labels=LABELS).predict(big)  # fmt: skip
    assert result.label in LABELS
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the guarded open
    assert Model(gray_model(), max_pixels=None).preprocess(np.zeros((28, 28), np.uint8)).shape == (1, 28, 28)


def test_too_long_model_path_is_one_line():
    path = "m" * 5000 + ".onnx"
    with pytest.raises(ModelError, match=r"cannot open \(File name too long\)$"):
        Model(path)
    result = _run("predict", "x.png", "--model", path)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "File name too long" in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_one_line(tmp_path):
    image = _png(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
    with open("/dev/full", "w") as full:
        proc = _process("predict", image, "--model", gray_model(), stdout=full)
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write the output: No space left on device\n"


def test_bench_batch_size_too_large_is_one_line():
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    proc = _process("bench", gray_model(), "--batch-size", 10**7, "--runs", 1, preexec_fn=limit)
    assert proc.returncode == 1
    assert proc.stderr == ("Error: --batch-size 10000000: not enough memory for a batch of 10000000 images\n")


def test_documents_parse_strictly():
    assert parse_document('{"a": [1, 2.5, null, true, "x"]}', "doc") == {"a": [1, 2.5, None, True, "x"]}
    with pytest.raises(MetadataError, match="^doc is too large"):
        parse_document(" " * (4 * 2**20 + 1), "doc")
