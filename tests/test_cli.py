"""The command line on good input: predict (text, JSON, directories, globs), info, bench, --version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeinfer import Model, __version__
from edgeinfer.cli import main
from tests.fixtures import FASHION_MNIST_LABELS, GRAY_SPEC, bare_model, gray_model


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """photos/a.png, photos/b.jpg, photos/sub/c.PNG, photos/sub/notes.txt, photos/sub/deeper/d.bmp"""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.PNG", "sub/deeper/d.bmp"):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / name)
    (root / "sub" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(gray_model())


def _expected_line(model: Model, path: Path, top_k: int = 1) -> str:
    p = model.predict(path, top_k=top_k)
    return "\t".join([str(path), *(f"{label}\t{score:.4f}" for label, score in p.top)])


def test_predict_one_image_prints_file_label_score(tree, model):
    result = _run("predict", tree / "a.png", "--model", gray_model())
    assert result.exit_code == 0, result.output
    assert result.stdout == _expected_line(model, tree / "a.png") + "\n"
    assert result.stderr == ""


def test_predict_top_k_adds_label_score_pairs(tree, model):
    result = _run("predict", tree / "a.png", "--model", gray_model(), "--top-k", 3)
    assert result.stdout == _expected_line(model, tree / "a.png", top_k=3) + "\n"
    assert len(result.stdout.split("\t")) == 7


def test_predict_json_lines_match_the_library(tree, model):
    result = _run("predict", tree / "a.png", tree / "b.jpg", "--model", gray_model(), "--json", "-k", 2)
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [
        {"file": str(tree / name), **model.predict(tree / name, top_k=2).to_dict()}
        for name in ("a.png", "b.jpg")
    ]


def test_predict_walks_directories_recursively_for_image_files_only(tree, model):
    result = _run("predict", tree, "--model", gray_model(), "--batch-size", 2)
    assert result.exit_code == 0, result.output
    files = ["a.png", "b.jpg", "sub/c.PNG", "sub/deeper/d.bmp"]
    assert result.stdout.splitlines() == [_expected_line(model, tree / f) for f in files]


def test_a_directory_without_images_is_an_error(tree, tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    result = _run("predict", tmp_path, tree / "a.png", "--model", gray_model())
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path}: no image files in this directory\n"
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("count", "stderr_tty", "stdout_tty", "shown"),
    [
        (200, True, False, True),
        (199, True, False, False),
        (500, False, False, False),
        (500, True, True, False),
    ],
)
def test_progress_bar_only_for_long_runs_with_stderr_on_a_terminal(
    monkeypatch, count, stderr_tty, stdout_tty, shown
):
    from edgeinfer import cli

    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: stderr_tty)
    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: stdout_tty)
    with cli.progress_bar(count) as bar:
        assert (bar is not None) == shown


def test_predict_expands_quoted_globs(tree):
    result = _run("predict", str(tree / "**" / "*.png"), "--model", gray_model())
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(tree / "a.png")]
    result = _run("predict", str(tree / "nothing*.png"), tree / "a.png", "--model", gray_model())
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tree / 'nothing*.png'}: no file matches this pattern\n"
    assert len(result.stdout.splitlines()) == 1


def test_predict_batch_size_and_threads_do_not_change_results(tree):
    base = _run("predict", tree, "--model", gray_model(), "--json").stdout
    other = _run("predict", tree, "--model", gray_model(), "--json", "--batch-size", 1, "--threads", 1).stdout
    assert [json.loads(a)["label"] for a in base.splitlines()] == [
        json.loads(b)["label"] for b in other.splitlines()
    ]


def test_predict_with_spec_and_labels_for_a_model_without_metadata(tree, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(GRAY_SPEC))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(FASHION_MNIST_LABELS) + "\n")
    result = _run("predict", tree / "a.png", "--model", bare_model(), "--spec", spec, "--labels", labels)
    assert result.exit_code == 0, result.output
    assert result.stdout == _run("predict", tree / "a.png", "--model", gray_model()).stdout


def test_info_describes_the_model(model):
    result = _run("info", gray_model())
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"model: {gray_model()}" in out
    assert f"({gray_model().stat().st_size} bytes)" in out
    assert "format: ONNX IR " in out and "producer pytorch" in out and "opsets: ai.onnx " in out
    assert "quantization: none" in out
    assert "  input: float32 [batch, 1, 28, 28]" in out
    assert "  logits: float32 [batch, 10]" in out
    assert "Conv ×2" in out
    assert "labels (10): T-shirt/top, Trouser," in out
    assert repr(model.transform).splitlines()[0] in out
    assert "  architecture: fixture-cnn" in out


def test_info_json_carries_the_metadata(model):
    result = _run("info", gray_model(), "--json")
    d = json.loads(result.stdout)
    assert d["metadata"] == model.metadata.to_dict()
    assert d["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 1, 28, 28]}]
    assert d["quantization"] == "none"


def test_info_on_a_model_without_metadata():
    result = _run("info", bare_model())
    assert result.exit_code == 0
    assert (
        result.stdout.splitlines()[-1]
        == "edgeinfer metadata: none (predict needs --spec and --labels for this model)"
    )


def test_info_on_a_model_with_broken_metadata(tmp_path):
    from tests.fixtures import make_model, replace_props

    path = replace_props(make_model(tmp_path / "broken.onnx"), {"edgeinfer": "{not json"})
    result = _run("info", path)
    assert result.exit_code == 1
    assert "  input: float32 [batch, 1, 28, 28]" in result.stdout
    assert result.stdout.splitlines()[-1] == "edgeinfer metadata: invalid (see the error below)"
    assert result.stderr.startswith(
        f"Error: {path}: invalid edgeinfer metadata: edgeinfer metadata is not valid JSON"
    )


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_dynamic, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.random((4, 1, 28, 28), np.float32)} for _ in range(3)])

        def get_next(self):
            return next(self.batches, None)

    d = tmp_path_factory.mktemp("quantized")
    quantize_dynamic(str(gray_model()), str(d / "dynamic.onnx"))
    quantize_static(str(gray_model()), str(d / "qdq.onnx"), Batches(), quant_format=QuantFormat.QDQ)
    return {"none": gray_model(), "dynamic": d / "dynamic.onnx", "static (QDQ)": d / "qdq.onnx"}


@pytest.mark.parametrize("kind", ["none", "dynamic", "static (QDQ)"])
def test_info_recognises_quantized_models(quantized, kind):
    assert json.loads(_run("info", quantized[kind], "--json").stdout)["quantization"] == kind


@pytest.mark.parametrize("kind", ["none", "dynamic", "static (QDQ)"])
def test_info_summary_agrees_with_the_onnx_package(quantized, kind):
    """The hand-read protobuf fields against onnx's own parser."""
    from collections import Counter

    import onnx

    proto = onnx.load(str(quantized[kind]))
    d = json.loads(_run("info", quantized[kind], "--json").stdout)
    assert d["ir_version"] == proto.ir_version
    assert d["producer"] == proto.producer_name
    assert d["opsets"] == {o.domain: o.version for o in proto.opset_import}
    assert d["operators"] == dict(Counter(n.op_type for n in proto.graph.node))
    initializers = {t.name for t in proto.graph.initializer}
    for ours, theirs in [(d["inputs"], proto.graph.input), (d["outputs"], proto.graph.output)]:
        theirs = [v for v in theirs if v.name not in initializers]
        assert [t["name"] for t in ours] == [v.name for v in theirs]
        assert [t["shape"] for t in ours] == [
            [
                dim.dim_value if dim.HasField("dim_value") else dim.dim_param
                for dim in v.type.tensor_type.shape.dim
            ]
            for v in theirs
        ]


def test_bench_reports_preprocessing_and_inference(tree):
    result = _run("bench", gray_model(), "--runs", 5, "--batch-size", 4, "--image", tree / "a.png", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["stage"], r["batch"]) for r in rows] == [("preprocess", 1), ("inference", 1), ("inference", 4)]
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["images_per_second"] > 0
    text = _run("bench", gray_model(), "--runs", 5, "--threads", 1).stdout
    assert text.splitlines()[1].split() == [
        "stage",
        "batch",
        "p50",
        "ms",
        "p90",
        "ms",
        "p99",
        "ms",
        "images/s",
    ]


@pytest.mark.parametrize("command", [["predict", "img.png"], ["info"], ["bench"]])
def test_missing_bundled_model_is_one_error_line(monkeypatch, tmp_path, command):
    import edgeinfer.model

    monkeypatch.setattr(edgeinfer.model, "DEFAULT_MODEL", tmp_path / "default.onnx")
    result = _run(*command)
    assert result.exit_code == 1
    expected = (
        f"Error: {tmp_path / 'default.onnx'}: the bundled default model is not installed; pass a model path\n"
    )
    assert result.stderr == expected


def test_version_and_help():
    assert _run("--version").stdout == f"edgeinfer {__version__}\n"
    for command in ([], ["predict"], ["info"], ["bench"]):
        result = _run(*command, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.stdout
