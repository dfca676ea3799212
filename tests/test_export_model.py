"""export_model (a network train/ never saw) and ``quantize="auto"``: the runtime predicts exactly as torch.

The oracle is torch with torchvision's own loader and the caller's own Compose; the exported model is read
back through ``edgeinfer.Model`` (the runtime) and, for auto's decision, the measured table is re-checked
here against the criteria, independently of export/selection.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch", reason="export/ needs the [train] extra (torch)")
torchvision = pytest.importorskip("torchvision", reason="export/ needs the [train] extra (torchvision)")

from torchvision import transforms as T  # noqa: E402
from torchvision.datasets.folder import pil_loader  # noqa: E402

from edgeinfer import Model  # noqa: E402
from export import export_model  # noqa: E402
from tests.fixtures import qualifies, write_photo_folder  # noqa: E402

CLASSES = ("cat", "dog", "fox")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory, image_factory) -> Path:
    """24 photo-like images in three class folders."""
    return write_photo_folder(tmp_path_factory.mktemp("data") / "photos", CLASSES, 8, image_factory)


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*/*"))


def _torch_logits(module: torch.nn.Module, transform: T.Compose, files: list[str]) -> np.ndarray:
    """What a torchvision user computes: ``pil_loader`` (RGB), the Compose, the network."""
    batch = torch.stack([transform(pil_loader(f)) for f in files])
    with torch.inference_mode():
        return module(batch).numpy()


@pytest.fixture(scope="module")
def squeezenet(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """torchvision's SqueezeNet 1.1 (random weights, 3 classes) at 64×64, exported with export_model."""
    torch.manual_seed(0)
    module = torchvision.models.squeezenet1_1(num_classes=len(CLASSES)).eval()
    transform = T.Compose([T.Resize(72), T.CenterCrop(64), T.ToTensor(), T.Normalize(MEAN, STD)])
    out = tmp_path_factory.mktemp("squeezenet") / "model.onnx"
    report = export_model(
        module, out, transform=transform, labels=CLASSES, image_mode="RGB", verify=photo_folder,
        quantize="none", repeats=3,
    )  # fmt: skip
    return module, transform, out, report


def test_export_model_predicts_like_torch_on_every_image(squeezenet, photo_folder: Path, parity) -> None:
    module, transform, out, report = squeezenet
    files = _files(photo_folder)
    model = Model(out)
    assert model.labels == CLASSES and model.metadata.image_mode == "RGB"
    assert model.metadata.input.shape == (None, 3, 64, 64)
    for f in files:  # the runtime's tensor is torchvision's, to the bit
        parity.check(model.preprocess(f), transform(pil_loader(f)).numpy(), f)
    expected = _torch_logits(module, transform, files)
    predicted = [p.index for p in model.predict_batch(files, batch_size=7)]
    assert predicted == expected.argmax(1).tolist()
    assert report["verification"]["fp32_top1_agreement"] == 1.0
    assert report["verification"]["batch_sizes"] == [1, 2, 7]


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_export_model_runs_at_batch_size(squeezenet, photo_folder: Path, batch: int) -> None:
    module, transform, out, _ = squeezenet
    files = _files(photo_folder)[3 : 3 + batch]
    model = Model(out)
    logits = model.run(np.stack([model.preprocess(f) for f in files]))
    expected = _torch_logits(module, transform, files)
    assert logits.shape == (batch, len(CLASSES))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_export_model_records_the_data_contract(squeezenet, photo_folder: Path) -> None:
    from edgeinfer.transforms import from_torchvision

    module, transform, out, report = squeezenet
    meta = Model(out).metadata
    assert meta.preprocessing == from_torchvision(transform).to_spec()
    assert meta.provenance["architecture"] == "SqueezeNet"
    assert meta.provenance["parameters"] == sum(p.numel() for p in module.parameters())
    assert meta.provenance["quantization"] == {"mode": "none"}
    assert report["models"]["fp32"]["images"] == len(_files(photo_folder))
    assert json.loads(out.with_suffix(".json").read_text())["metadata"] == meta.to_dict()


def test_auto_keeps_fp32_where_int8_does_not_pay(photo_folder: Path, tmp_path: Path) -> None:
    """A network INT8 cannot carry: one channel of the first conv's output is 10^4 times larger than the
    others and the next layer ignores it. Per-tensor uint8 activations then get a step of ~40, which rounds
    the informative channels to zero: the quantized logits stop depending on the image."""
    from torch import nn

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, len(CLASSES)),
    ).eval()  # fmt: skip
    with torch.no_grad():
        module[0].weight[0] = module[0].weight[0].abs() * 1e4  # always positive, huge
        module[0].bias[0] = 1e4
        module[2].weight[:, 0] = 0  # ... and ignored downstream
        module[6].weight.mul_(10)  # spread the FP32 logits so that its own top-1 is not a near-tie
    transform = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])
    out = tmp_path / "narrow.onnx"
    report = export_model(
        module, out, transform=transform, labels=CLASSES, calibration=photo_folder, verify=photo_folder,
        quantize="auto", repeats=30, progress=lambda line: None,
    )  # fmt: skip
    auto = report["quantization"]["auto"]
    table = auto["candidates"]
    assert auto["chosen"] == "fp32" and report["quantization"]["kept"] == "fp32"
    assert {"int8", "int8-fc4"} <= set(table), "static INT8 candidates were measured"
    for name, row in table.items():
        if name != "fp32":
            assert not qualifies(row, table["fp32"]), f"{name} met the bar yet FP32 was kept: {row}"
            assert row["failed"] and not row["qualifies"]
            assert row["agreement_with_fp32"] < 0.99, "INT8 should lose the informative channels"
    assert "no quantized variant qualifies" in auto["reason"]
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" not in ops and "MatMulNBits" not in ops
    recorded = Model(out).metadata.provenance["quantization"]
    assert recorded["mode"] == "none" and recorded["auto"]["candidates"] == table
    expected = _torch_logits(module, transform, _files(photo_folder))
    assert [p.index for p in Model(out).predict_batch(_files(photo_folder))] == expected.argmax(1).tolist()


def _row(size: int, b1: float, b64: float, agreement: float = 1.0, accuracy: float = 0.9) -> dict:
    return {"size_bytes": size, "size_ratio_to_fp32": size / 1000, "agreement_with_fp32": agreement,
            "accuracy": accuracy, "latency": {"batch_1_ms": b1, "batch_64_ms": b64}}  # fmt: skip


def test_decide_keeps_the_smallest_qualifying_candidate_and_says_why_the_others_lost() -> None:
    from export.selection import decide

    table = {
        "fp32": _row(1000, 1.0, 10.0),
        "big": _row(600, 0.5, 5.0),
        "small": _row(300, 0.9, 9.0),
        "smallest-but-slow": _row(200, 1.1, 4.0),
        "smallest-but-wrong": _row(200, 0.5, 4.0, agreement=0.985),
        "smallest-but-worse": _row(200, 0.5, 4.0, accuracy=0.894),
        "larger": _row(1000, 0.5, 4.0),
    }
    chosen, reason = decide(table)
    assert chosen == "small" and reason.startswith("small qualifies")
    assert [n for n, row in table.items() if row["qualifies"]] == ["fp32", "big", "small"]
    assert table["smallest-but-slow"]["failed"] == ["slower at batch 1: 1.1 ms vs FP32 1 ms"]
    assert table["smallest-but-wrong"]["failed"] == ["top-1 agreement 98.50% < 99%"]
    assert table["smallest-but-worse"]["failed"] == ["accuracy 89.40% vs FP32 90.00%"]
    assert table["larger"]["failed"] == ["not smaller: 1,000 bytes vs FP32 1,000"]
    for row in table.values():
        assert row["qualifies"] == qualifies(row, table["fp32"]) or row is table["fp32"]


def _tiny_export(tmp_path: Path, verify: Path, labels, **kwargs) -> dict:
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    )
    transform = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])
    kwargs.setdefault("progress", lambda line: None)
    return export_model(
        module, tmp_path / "m.onnx", transform=transform, labels=labels, verify=verify, quantize="none",
        repeats=2, **kwargs,
    )  # fmt: skip


def test_export_model_prints_the_steps_numbered_in_order(tmp_path: Path, photo_folder: Path) -> None:
    from export.steps import STEPS

    lines: list[str] = []
    _tiny_export(tmp_path, photo_folder, CLASSES, progress=lines.append)
    numbered = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] + "]" for line in numbered] == [f"[{n}/6]" for n in range(1, 7)]
    assert len(STEPS) == 6
    assert numbered[0] == "[1/6] 3 labels, image mode RGB, 24 verify images, 0 calibration images"
    assert numbered[4] == "[5/6] quantization: none"
    assert lines[-1] == f"wrote {tmp_path / 'm.onnx'} and {tmp_path / 'm.json'}"


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        ("cdf", "must be a list of strings, got str"),  # a string is not three labels
        (["cat", "cat", "dog"], "repeats the label"),
        ([1, 2, 3], "must be a non-empty string"),
    ],
)
def test_export_model_refuses_bad_labels_before_any_work(tmp_path: Path, photo_folder: Path, labels, error):
    with pytest.raises(ValueError, match=error):
        _tiny_export(tmp_path, photo_folder, labels)
    assert not (tmp_path / "m.onnx").exists()


def test_export_model_skips_a_corrupt_image_in_the_verify_folder(
    tmp_path: Path, photo_folder: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    folder = Path(shutil.copytree(photo_folder, tmp_path / "photos"))
    (folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    summary = _tiny_export(tmp_path, folder, CLASSES)
    assert summary["verification"]["images"] == len(_files(photo_folder))
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(
        f"warning: skipping unreadable image {folder}/dog/broken.png"
    )


def test_export_model_of_a_timm_network_uses_its_own_transform(
    tmp_path: Path, photo_folder: Path, parity
) -> None:
    """No transform for a timm network: its pretrained_cfg's, through timm's create_transform (here its
    "border" crop mode at 96×128, so timm's own ResizeKeepRatio and CenterCropOrPad); the exported model's
    spec is that transform's and the runtime computes its tensors. Other networks must be given one."""
    timm = pytest.importorskip("timm", reason="timm comes with the [train] extra")
    from timm.data import create_transform, resolve_data_config

    from edgeinfer.transforms import from_torchvision

    torch.manual_seed(0)
    module = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=len(CLASSES))
    module.pretrained_cfg = {**module.pretrained_cfg, "input_size": (3, 96, 128), "crop_mode": "border"}
    theirs = create_transform(**resolve_data_config({}, model=module))
    out = tmp_path / "timm.onnx"
    report = export_model(
        module, out, labels=CLASSES, verify=photo_folder, quantize="none", repeats=2,
        progress=lambda line: None,
    )  # fmt: skip
    model = Model(out)
    spec = model.metadata.preprocessing
    assert spec == from_torchvision(theirs).to_spec()
    kinds = ["ResizeKeepRatio", "CenterCropOrPad", "ToTensor", "Normalize"]
    assert [t["type"] for t in spec["transforms"]] == kinds
    assert model.metadata.input.shape == (None, 3, 96, 128)
    for f in _files(photo_folder):
        parity.check(model.preprocess(f), theirs(pil_loader(f)).numpy(), f)
    assert report["verification"]["fp32_top1_agreement"] == 1.0
    with pytest.raises(ValueError, match=r"^export_model needs transform= for Sequential: only a timm"):
        export_model(torch.nn.Sequential(), tmp_path / "x.onnx", labels=CLASSES, verify=photo_folder)
