"""Engines: OpenVINO beside onnxruntime, `engine="auto"` by measurement, refusal where the self-test fails,
and `edgeinfer bench --sweep`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeinfer import Model
from edgeinfer.errors import ModelError
from edgeinfer.selftest import SELF_TEST_KEY
from export.self_test import embed_self_test
from tests.fixtures import gray_model, replace_props, rgb_model

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def tested_rgb(tmp_path_factory) -> Path:
    path = shutil.copy(rgb_model(), tmp_path_factory.mktemp("engines") / "rgb.onnx")
    embed_self_test(path)
    return path


def _props(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_openvino_predicts_like_onnxruntime(tested_rgb):
    images = [np.random.default_rng(i).integers(0, 256, (40 + i, 50, 3), dtype=np.uint8) for i in range(6)]
    ort, ov = Model(tested_rgb, threads=1), Model(tested_rgb, threads=1, engine="openvino")
    assert ov.options.engine == "openvino"
    batch = np.stack([ort.preprocess(image) for image in images])
    np.testing.assert_allclose(ov.run(batch), ort.run(batch), rtol=1e-4, atol=1e-5)
    assert [p.index for p in ov.predict_batch(images)] == [p.index for p in ort.predict_batch(images)]
    assert ov.verify().passed


def test_an_engine_where_the_self_test_fails_is_refused(tmp_path, tested_rgb):
    path = shutil.copy(tested_rgb, tmp_path / "skewed.onnx")
    props = _props(path)
    document = json.loads(props[SELF_TEST_KEY])
    document["cases"][0]["output"] = [v + 1.0 for v in document["cases"][0]["output"]]
    replace_props(path, {**props, SELF_TEST_KEY: json.dumps(document)})
    with pytest.raises(ModelError, match=r"refused on openvino, its self-test fails: case 'seeded"):
        Model(path, engine="openvino")
    assert not Model(path).verify().passed  # the reference engine loads; its verify says what is wrong
    with pytest.raises(ModelError, match="no installed engine passes the model's self-test"):
        Model(path, engine="auto")


def test_auto_takes_the_fastest_engine_that_passes(tested_rgb):
    model = Model(tested_rgb, threads=1, engine="auto")
    rows = {row.options.engine: row for row in model.engine_choice}
    assert set(rows) == {"onnxruntime", "openvino"}
    assert all(row.self_test == "pass" and row.batch_1_ms > 0 for row in rows.values())
    assert model.options.engine == min(rows, key=lambda engine: rows[engine].batch_1_ms)


def test_auto_without_a_self_test_keeps_the_reference_engine():
    model = Model(gray_model(), engine="auto")
    assert model.options.engine == "onnxruntime"
    assert {row.options.engine: row.eligible for row in model.engine_choice} == {
        "onnxruntime": True,
        "openvino": False,
    }


def test_a_model_without_a_self_test_is_refused_on_another_engine():
    with pytest.raises(ModelError, match=r"refused on openvino: it carries no self-test to check it there"):
        Model(gray_model(), engine="openvino")


def test_a_missing_engine_is_one_line(monkeypatch):
    import edgeinfer._engines

    monkeypatch.setattr(edgeinfer._engines, "available_engines", lambda: ("onnxruntime",))
    with pytest.raises(
        ModelError, match=r"the openvino engine is not installed \(pip install 'edgeinfer\[openvino\]'\)"
    ):
        Model(engine="openvino")


def test_bench_sweep_prints_settings_the_other_commands_accept(tested_rgb, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgeinfer", "bench", str(tested_rgb), "--sweep", "--runs", "3", "-b", "4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    cores = os.cpu_count() or 1
    assert sum(line.startswith(("onnxruntime ", "openvino ")) for line in lines) == cores * (2 * 3 + 1)
    fastest = [line for line in lines if line.startswith("fastest at ")]
    assert [line.split(":")[0] for line in fastest] == ["fastest at batch 1", "fastest at batch 4"]
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    flags = fastest[0].split(": ", 1)[1].split("  (")[0].split()
    run = subprocess.run(
        [sys.executable, "-m", "edgeinfer", "predict", str(image), "--model", str(tested_rgb), *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0 and run.stdout.startswith(f"{image}\t"), run.stderr


def test_bench_sweep_of_a_model_no_setting_can_load_is_one_line(tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(gray_model().read_bytes()[:1000])
    proc = subprocess.run(
        [sys.executable, "-m", "edgeinfer", "bench", str(truncated), "--sweep", "--runs", "1", "-b", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"Error: {truncated}: not a loadable ONNX model (")
    assert len(proc.stderr.strip().splitlines()) == 1
