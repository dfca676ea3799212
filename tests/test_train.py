"""train/: data, presets, augmentation, checkpoints, a real short training run, Optuna resume, torchrun."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="train/ needs the [train] extra (torch)")
pytest.importorskip("torchvision", reason="train/ needs the [train] extra (torchvision)")

from edgeinfer.errors import MetadataError  # noqa: E402
from edgeinfer.metadata import ModelMetadata  # noqa: E402
from train import augment, engine  # noqa: E402
from train.checkpoint import save_checkpoint  # noqa: E402
from train.config import DataConfig  # noqa: E402
from train.data import CLASSES, DEFAULT_DATA_DIR, VAL_SIZE, load_fashion_mnist  # noqa: E402
from train.models import build_model, count_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HAVE_DATA = (DEFAULT_DATA_DIR / "train-images-idx3-ubyte.gz").is_file()
NO_DATA = f"Fashion-MNIST not installed in {DEFAULT_DATA_DIR} (apt-get install dataset-fashion-mnist)"
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=NO_DATA)
CPU = engine.Dist(rank=0, world_size=1, device=torch.device("cpu"))


def _env() -> dict[str, str]:
    """The environment of a script run from an installed checkout: the repository root on the path."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _run(script: str, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "train" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=timeout)


@pytest.mark.parametrize("script", [["train/train_cnn.py"], ["-m", "train.train_cnn"]])
def test_script_runs_as_a_file_and_as_a_module(script):
    """No sys.path edits: both ways of starting a script find the train package."""
    command = [sys.executable, *script, "--help"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: train_cnn.py [-h] [--preset {baseline,improved}]")
    assert "--optuna-trials N" in result.stdout and "--data DIR" in result.stdout


# --- data ---


@needs_data
def test_splits_partition_the_data_set():
    train_x, train_y = load_fashion_mnist(DEFAULT_DATA_DIR, "train")
    val_x, val_y = load_fashion_mnist(DEFAULT_DATA_DIR, "val")
    test_x, test_y = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    assert train_x.shape == (60000 - VAL_SIZE, 28, 28) and val_x.shape == (VAL_SIZE, 28, 28)
    assert test_x.shape == (10000, 28, 28)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int64
    assert set(np.unique(val_y)) == set(range(len(CLASSES))) == set(np.unique(test_y))
    # Validation is the tail of the training file, disjoint from the training split.
    again_x, _ = load_fashion_mnist(DEFAULT_DATA_DIR, "val")
    assert np.array_equal(val_x, again_x)
    assert not np.shares_memory(train_x, val_x)


def test_missing_data_set_says_how_to_install_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="'validation'"):
        load_fashion_mnist(tmp_path, "validation")


def test_script_reports_missing_data_in_one_line(tmp_path):
    result = _run("train_cnn.py", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train_cnn.py: error: Fashion-MNIST not found in")
    assert "apt-get install dataset-fashion-mnist" in lines[0]


# --- models ---


def _conv(cin: int, cout: int, bias: bool) -> int:
    return cin * cout * 9 + (cout if bias else 0)


def _linear(fin: int, fout: int, bias: bool = True) -> int:
    return fin * fout + (fout if bias else 0)


def test_presets_build_with_the_expected_parameter_counts():
    from train.train_cnn import parse_args, resolve_config

    baseline = build_model(resolve_config(parse_args(["--preset", "baseline"])))
    improved = build_model(resolve_config(parse_args(["--preset", "improved"])))
    mlp = build_model(resolve_config(parse_args(["--preset", "improved", "--mlp"])))
    assert count_parameters(baseline) == (
        _conv(1, 32, True) + _conv(32, 64, True) + _linear(64 * 7 * 7, 128) + _linear(128, 10)
    )
    batch_norms = 2 * (32 + 32 + 64 + 64 + 128)
    assert count_parameters(improved) == (
        _conv(1, 32, False) + _conv(32, 32, False) + _conv(32, 64, False) + _conv(64, 64, False)
        + batch_norms + _linear(64 * 7 * 7, 128, bias=False) + _linear(128, 10)
    )  # fmt: skip
    assert count_parameters(improved) <= 500_000
    assert count_parameters(mlp) == (
        _linear(784, 512, bias=False) + 2 * 512 + _linear(512, 128, bias=False) + 2 * 128 + _linear(128, 10)
    )
    # "Similar size": the ANN is within 10 % of the improved CNN.
    assert abs(count_parameters(mlp) - count_parameters(improved)) < 0.1 * count_parameters(improved)
    for model in (baseline, improved, mlp):
        assert model.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_arch_is_a_value_error():
    with pytest.raises(ValueError, match="'resnet1800'"):
        build_model({"arch": "resnet1800", "num_classes": 10})


# --- preprocessing and augmentation ---


@needs_data
def test_fast_training_normalisation_equals_the_declared_pipeline():
    from torchvision import transforms as T

    from train.pipelines import eval_pipeline, find
    from train.recipe import array_batches
    from train.train_cnn import PRESETS, prepare_batch

    images, labels = load_fashion_mnist(DEFAULT_DATA_DIR, "val")
    pipeline = eval_pipeline()
    normalize = find(pipeline, T.Normalize)
    config = {**PRESETS["improved"], "flip": False, "shift": 0}

    def prepare(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return prepare_batch(x, config, normalize, generator)

    batches, steps = array_batches((images, labels), 256, 0, CPU, prepare)
    assert steps == len(images) // 256
    x, y = next(iter(batches(0)))
    idx = next(engine.index_batches(len(images), 256, CPU, 0, 0))
    assert torch.equal(y, torch.from_numpy(labels[idx]))
    expected = torch.stack([pipeline(image) for image in images[idx]])
    assert torch.equal(x, expected)  # bit-identical, not close


@needs_data
@pytest.mark.parametrize("name", ["eval_pipeline", "fashion_mnist_backbone_pipeline"])
def test_declared_pipeline_spec_reproduces_torchvision_in_edgeinfer(name):
    """The spec saved in the checkpoint, rebuilt by edgeinfer, gives torchvision's tensors to the bit."""
    from edgeinfer.transforms import from_spec, from_torchvision
    from train import pipelines

    pipeline = getattr(pipelines, name)()
    spec = json.loads(json.dumps(from_torchvision(pipeline).to_spec()))  # as stored: JSON-able
    runtime = from_spec(spec)
    images, _ = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    for image in images[:4]:
        np.testing.assert_array_equal(runtime(image), pipeline(image).numpy())


def test_training_pipelines_put_their_augmentation_where_the_eval_steps_are():
    """Steps are found by type: the augmentation goes before ToTensor, sizes come from the centre crop."""
    from torchvision import transforms as T

    from train import pipelines

    folder = pipelines.eval_pipeline(16, (0.5,), (0.5,), arrays=False)
    augmented = pipelines.train_pipeline(folder, flip=True, shift=2).transforms
    kinds = [T.Resize, T.CenterCrop, T.RandomHorizontalFlip, T.RandomCrop, T.ToTensor, T.Normalize]
    assert [type(t) for t in augmented] == kinds
    assert augmented[3].size == (16, 16) and augmented[3].padding == 2
    assert [type(t) for t in pipelines.train_pipeline(folder, flip=False, shift=0).transforms] == [
        T.Resize, T.CenterCrop, T.ToTensor, T.Normalize
    ]  # fmt: skip
    backbone = T.Compose([T.Resize(73, T.InterpolationMode.BICUBIC), T.CenterCrop(64), T.ToTensor(),
                          T.Normalize(pipelines.IMAGENET_MEAN, pipelines.IMAGENET_STD)])  # fmt: skip
    crop, flip, to_tensor, normalize = pipelines.backbone_train_pipeline(backbone).transforms
    assert isinstance(crop, T.RandomResizedCrop) and crop.size == (64, 64)
    assert crop.interpolation == T.InterpolationMode.BICUBIC and isinstance(flip, T.RandomHorizontalFlip)
    assert to_tensor is backbone.transforms[2] and normalize is backbone.transforms[3]
    with pytest.raises(ValueError, match="the pipeline has no CenterCrop step"):
        pipelines.find(T.Compose([T.ToTensor()]), T.CenterCrop)


def test_data_config_gives_the_input_size_the_pipeline_makes():
    from train import pipelines

    gray = pipelines.data_config("cnn", CLASSES, "L", pipelines.eval_pipeline(), {"kind": "fashion-mnist"})
    assert gray.input_size == (1, 28, 28) and gray.metadata.input.shape == (None, 1, 28, 28)
    replicated = pipelines.data_config("vgg16", CLASSES, "L", pipelines.fashion_mnist_backbone_pipeline(), {})
    assert replicated.input_size == (3, 224, 224) and replicated.image_mode == "L"
    rgb = pipelines.data_config("cnn", CLASSES, "RGB", pipelines.eval_pipeline(20, arrays=False), {})
    assert rgb.input_size == (3, 20, 20)


def test_random_shift_is_a_padded_random_crop_per_image():
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    shifted = augment.random_shift(images, 2, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(images)):
        crops = {(a, b): padded[i, :, a : a + 28, b : b + 28] for a in range(5) for b in range(5)}
        matches = [offset for offset, crop in crops.items() if torch.equal(shifted[i], crop)]
        assert matches, f"image {i} is not a crop of its padded original"
        offsets.add(matches[0])
    assert len(offsets) > 10  # per-image offsets, not one for the batch


def test_random_flip_acts_per_image():
    images = torch.randint(0, 256, (256, 1, 28, 28), dtype=torch.uint8)
    flipped = augment.random_flip(images, torch.Generator().manual_seed(2))
    is_flipped = torch.tensor([torch.equal(f, x.flip(-1)) for f, x in zip(flipped, images, strict=True)])
    assert all(torch.equal(f, x) for f, x, s in zip(flipped, images, is_flipped, strict=True) if not s)
    assert 0.3 < is_flipped.float().mean() < 0.7


# --- checkpoints ---


def test_checkpoint_round_trip(tmp_path):
    from train.train_cnn import parse_args, resolve_config

    config = resolve_config(parse_args(["--preset", "improved"]))
    torch.manual_seed(0)
    model = build_model(config)
    model.train()(torch.randn(8, 1, 28, 28))  # move the batch-norm statistics away from their init
    model.eval()
    spec = {"type": "Compose", "transforms": [{"type": "ToTensor"}]}
    data_config = DataConfig.create("cnn", CLASSES, "L", (1, 28, 28), spec, {"kind": "fashion-mnist"})
    save_checkpoint(tmp_path / "model.pt", model, config, data_config, {"test_accuracy": 0.5})
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(checkpoint) == {"state_dict", "config", "data_config", "metrics"}
    assert json.loads(json.dumps(checkpoint["config"])) == config
    assert json.loads(json.dumps(checkpoint["data_config"])) == checkpoint["data_config"]
    # The model's contract is stored in edgeinfer's metadata schema; architecture and data set beside it.
    assert set(checkpoint["data_config"]) == {"architecture", "metadata", "dataset"}
    assert ModelMetadata.from_dict(checkpoint["data_config"]["metadata"]) == data_config.metadata
    assert DataConfig.from_dict(checkpoint["data_config"]) == data_config
    rebuilt = build_model(checkpoint["config"])
    rebuilt.load_state_dict(checkpoint["state_dict"])
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(rebuilt.eval()(x), model(x))


def test_data_config_reads_the_flat_form_older_checkpoints_hold():
    spec = {"type": "Compose", "transforms": [{"type": "ToTensor"}]}
    flat = {"architecture": "cnn", "labels": list(CLASSES), "image_mode": "L", "input_size": [1, 28, 28],
            "preprocessing": spec, "dataset": {"kind": "fashion-mnist"}}  # fmt: skip
    expected = DataConfig.create("cnn", CLASSES, "L", (1, 28, 28), spec, {"kind": "fashion-mnist"})
    assert DataConfig.from_dict(flat) == expected
    assert DataConfig.from_dict({k: v for k, v in flat.items() if k != "dataset"}).dataset == {}
    with pytest.raises(MetadataError, match=r"missing keys \['image_mode'\], unknown keys \['mode'\]"):
        DataConfig.from_dict({**{k: v for k, v in flat.items() if k != "image_mode"}, "mode": "L"})
    with pytest.raises(MetadataError, match=r"'input_size' must be \[C, H, W\], got \[28, 28\]"):
        DataConfig.from_dict({**flat, "input_size": [28, 28]})
    with pytest.raises(MetadataError, match="edgeinfer metadata 'image_mode' must be one of"):
        DataConfig.from_dict({**flat, "image_mode": "CMYK"})


def test_data_config_to_metadata_adds_the_provenance():
    spec = {"type": "Compose", "transforms": [{"type": "ToTensor"}]}
    config = DataConfig.create("cnn", CLASSES, "L", (1, 28, 28), spec, {"kind": "fashion-mnist"})
    metadata = config.to_metadata({"architecture": "cnn", "test_accuracy": 0.9})
    assert metadata.provenance == {"architecture": "cnn", "test_accuracy": 0.9}
    assert metadata.labels == config.labels == CLASSES and metadata.preprocessing == config.preprocessing
    assert metadata.input.name == "input" and metadata.input.shape == (None, 1, 28, 28)
    assert config.metadata.provenance == {}  # the stored contract is unchanged
    with pytest.raises(MetadataError, match="'architecture' must be a non-empty string"):
        DataConfig("", config.metadata)


# --- real training runs on subsets ---


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    if not HAVE_DATA:
        pytest.skip(NO_DATA)
    out = tmp_path_factory.mktemp("short_run")
    result = _run(
        "train_cnn.py", "--preset", "improved", "--limit", "1000", "--epochs", "3", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return out, result


def test_short_training_run_beats_chance_clearly(short_run):
    out, result = short_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == {"train": 1000, "val": 1000, "test": 1000}
    assert len(metrics["history"]) == 3
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    for name in ("model.pt", "learning_curves.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0
    assert np.array(metrics["test_confusion_matrix"]).sum() == 1000
    assert re.search(r"accuracy  train 0\.\d{4}  val 0\.\d{4}  test 0\.\d{4}", result.stdout)


def test_auto_precision_is_measured_printed_and_stored(short_run):
    """The improved preset asks for "auto": both precisions were timed on the run's first batch, the faster
    kept (bf16 only from BF16_MIN_SPEEDUP), and the choice is in stdout, metrics.json and the checkpoint."""
    from train.precision import BF16_MIN_SPEEDUP

    out, result = short_run
    choice = json.loads((out / "metrics.json").read_text())["precision"]
    times = choice["seconds_per_step"]
    assert choice["requested"] == "auto" and set(times) == {"fp32", "bf16"}
    assert all(t > 0 for t in times.values())
    assert choice["precision"] == ("bf16" if times["fp32"] / times["bf16"] >= BF16_MIN_SPEEDUP else "fp32")
    assert f"precision: {choice['precision']} (measured: a step takes" in result.stdout
    config = torch.load(out / "model.pt", weights_only=True)["config"]
    assert config["precision"] == "auto" and config["precision_choice"] == choice


def test_checkpoint_reproduces_reported_accuracy_through_edgeinfer_preprocessing(short_run):
    """What export/ and the runtime will do: rebuild from the checkpoint, preprocess with its spec."""
    from edgeinfer.transforms import from_spec

    out, _ = short_run
    checkpoint = torch.load(out / "model.pt", weights_only=True)
    model = build_model(checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    data_config = DataConfig.from_dict(checkpoint["data_config"])
    assert data_config.labels == CLASSES and data_config.input_size == (1, 28, 28)
    assert data_config.image_mode == "L" and data_config.dataset["kind"] == "fashion-mnist"
    preprocess = from_spec(data_config.preprocessing)
    images, labels = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    images, labels = images[:1000], labels[:1000]
    with torch.inference_mode():
        x = torch.from_numpy(np.stack([preprocess(image) for image in images]))
        accuracy = (model.eval()(x).argmax(1).numpy() == labels).mean()
    assert accuracy == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-6)


@needs_data
def test_training_is_seeded(tmp_path):
    from train.pipelines import eval_pipeline
    from train.train_cnn import parse_args, resolve_config, train

    # A given precision: "auto" could choose differently between runs on a machine near the threshold.
    args = parse_args(["--preset", "improved", "--epochs", "1", "--limit", "256", "--batch-size", "64",
                       "--precision", "fp32"])  # fmt: skip
    data = {
        split: tuple(a[:256] for a in load_fashion_mnist(DEFAULT_DATA_DIR, split))
        for split in ("train", "val")
    }
    digests = [
        engine.state_dict_digest(train(resolve_config(args), data, eval_pipeline(), CPU)[0]) for _ in range(2)
    ]
    assert digests[0] == digests[1]
    other = train({**resolve_config(args), "seed": 1}, data, eval_pipeline(), CPU)[0]
    assert engine.state_dict_digest(other) != digests[0]


@needs_data
def test_optuna_study_is_stored_and_resumed(tmp_path):
    import optuna

    args = ["--preset", "baseline", "--limit", "256", "--epochs", "1", "--precision", "fp32",
            "--out", str(tmp_path)]  # fmt: skip
    first = _run("train_cnn.py", *args, "--optuna-trials", "2")
    assert first.returncode == 0, first.stderr
    second = _run("train_cnn.py", *args, "--optuna-trials", "3")
    assert second.returncode == 0, second.stderr
    study = optuna.load_study(study_name="train_cnn", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(study.trials) == 3  # the second run added one trial, it did not start over
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    best = study.best_trial.params
    assert checkpoint["config"]["optuna"]["best_params"] == best
    assert checkpoint["config"]["lr"] == best["lr"]
    assert checkpoint["config"]["batch_size"] == best["batch_size"]
    assert checkpoint["config"]["channels"] == [best["channels"], 2 * best["channels"]]


@needs_data
def test_torchrun_ranks_end_with_identical_weights(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "train" / "train_cnn.py"),
        "--preset",
        "improved",
        "--limit",
        "512",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    digests = dict(re.findall(r"rank (\d): weights sha256 ([0-9a-f]{64})", result.stdout))
    assert set(digests) == {"0", "1"}, result.stdout
    assert digests["0"] == digests["1"]
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert checkpoint["config"]["world_size"] == 2
    rebuilt = build_model(checkpoint["config"])
    rebuilt.load_state_dict(checkpoint["state_dict"])
    assert engine.state_dict_digest(rebuilt) == digests["0"]
