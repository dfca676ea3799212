"""End to end on a folder of images: transfer.py --data → to_onnx.py --quantize auto → edgeinfer predict.

The oracle is torch with torchvision's ImageFolder (its own loader) and the backbone's eval Compose as
train/transfer.py declares it — not the spec stored in the checkpoint, which is what is under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="train/ and export/ need the [train] extra (torch)")
pytest.importorskip("torchvision", reason="train/ and export/ need the [train] extra (torchvision)")

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("apple", "boat", "cloud")
ARCH, IMAGE_SIZE = "mobilenet_v3_small", 64


# The scripts import their packages from the repository root, as an installed checkout puts it on sys.path.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, image_factory) -> Path:
    """36 photo-like images in three class folders."""
    from tests.fixtures import write_photo_folder

    return write_photo_folder(tmp_path_factory.mktemp("data") / "photos", CLASSES, 12, image_factory)


@pytest.fixture(scope="module")
def exported(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    run = tmp_path_factory.mktemp("run")
    _run(sys.executable, "train/transfer.py", "--data", str(photos), "--arch", ARCH, "--weights", "none",
         "--image-size", str(IMAGE_SIZE), "--epochs", "1", "--batch-size", "8", "--threads", "1",
         "--out", str(run))  # fmt: skip
    out = run / "model.onnx"
    printed = _run(sys.executable, "export/to_onnx.py", str(run / "model.pt"), "--out", str(out),
                   "--quantize", "auto", "--calibration-size", "16", "--repeats", "5").stdout  # fmt: skip
    return run / "model.pt", out, printed


def _torch_predictions(checkpoint: Path, photos: Path) -> tuple[list[str], np.ndarray]:
    """torch's logits for every file, loaded by torchvision's ImageFolder with the backbone's eval Compose."""
    from torchvision.datasets import ImageFolder

    from export import checkpoint as checkpoints
    from export.inputs import pil_callable
    from train.pipelines import backbone_pipeline

    ckpt = checkpoints.load_checkpoint(checkpoint)
    network = checkpoints.build_network(ckpt)
    transform = pil_callable(backbone_pipeline(ARCH, network, IMAGE_SIZE))
    folder = ImageFolder(str(photos), transform=transform)
    assert tuple(folder.classes) == CLASSES
    with torch.inference_mode():
        logits = network(torch.stack([x for x, _ in folder])).numpy()
    return [path for path, _ in folder.samples], logits


def test_fp32_export_agrees_with_torch_on_every_image(exported) -> None:
    _, out, printed = exported
    report = json.loads(out.with_suffix(".json").read_text())
    check = report["verification"]
    assert check["fp32_top1_agreement"] == 1.0
    assert check["fp32_max_abs_logit_diff"] <= 1e-3
    assert check["batch_sizes"] == [1, 2, 7]
    assert f"max |logit diff| {check['fp32_max_abs_logit_diff']:.3g}" in printed  # reported


def test_auto_decision_is_recorded_with_its_measurements(exported) -> None:
    from tests.fixtures import qualifies

    _, out, printed = exported
    report = json.loads(out.with_suffix(".json").read_text())
    auto = report["quantization"]["auto"]
    table = auto["candidates"]
    assert auto["chosen"] in table and f"kept: {auto['reason']}" in printed
    kept = table[auto["chosen"]]
    if auto["chosen"] == "fp32":
        assert not any(qualifies(row, table["fp32"], auto["measured_on"]) for name, row in table.items()
                       if name != "fp32")  # fmt: skip
    else:
        assert qualifies(kept, table["fp32"], auto["measured_on"])
    from edgeinfer import Model

    assert Model(out).metadata.provenance["quantization"]["auto"]["chosen"] == auto["chosen"]


def test_edgeinfer_predict_gives_torchs_classes(exported, photos: Path) -> None:
    """The CLI on the folder's image files vs torch with torchvision's ImageFolder: the same class on every
    image, whichever model auto kept."""
    ckpt, out, _ = exported
    files, logits = _torch_predictions(ckpt, photos)
    result = _run(sys.executable, "-m", "edgeinfer", "predict", "--model", str(out), "--json", *files)
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["file"] for p in predicted] == files
    assert [p["label"] for p in predicted] == [CLASSES[i] for i in logits.argmax(1)]


def test_data_folder_with_other_classes_is_one_line_error(exported, tmp_path: Path, image_factory) -> None:
    from tests.fixtures import write_photo_folder

    ckpt, _, _ = exported
    other = write_photo_folder(tmp_path / "other", ("apple", "bird", "cloud"), 10, image_factory)
    command = [sys.executable, "export/to_onnx.py", str(ckpt), "--out", str(tmp_path / "m.onnx"),
               "--data", str(other)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {other}: class folders ['apple', 'bird', 'cloud'] are not the model's labels "
        "['apple', 'boat', 'cloud']\n"
    )
    assert not (tmp_path / "m.onnx").exists()


def test_exported_model_matches_torch_logits_on_every_file(exported, photos: Path) -> None:
    """Every image of the folder (not only the verification sample) through the runtime vs torch."""
    from edgeinfer import Model

    ckpt, out, _ = exported
    files, expected = _torch_predictions(ckpt, photos)
    model = Model(out)
    logits = model.run(np.stack([model.preprocess(f) for f in files]))
    assert (logits.argmax(1) == expected.argmax(1)).all()
    if model.metadata.provenance["quantization"]["mode"] == "none":  # FP32 kept
        diff = float(np.abs(logits - expected).max())
        print(f"FP32 max |logit difference| over {len(files)} files: {diff:.3g}")
        assert diff <= 1e-3
