"""train/transfer.py and the head replacement and freezing in train/models.py; no downloads (none or PATH)."""

from __future__ import annotations

import functools
import urllib.error

import pytest

torch = pytest.importorskip("torch", reason="train/ needs the [train] extra (torch)")
torchvision = pytest.importorskip("torchvision", reason="train/ needs the [train] extra (torchvision)")

from train.config import DataConfig  # noqa: E402
from train.data import DEFAULT_DATA_DIR  # noqa: E402
from train.models import build_model, feature_blocks, freeze, replace_head  # noqa: E402

HAVE_DATA = (DEFAULT_DATA_DIR / "train-images-idx3-ubyte.gz").is_file()


@functools.cache
def _model(arch: str) -> torch.nn.Module:
    """One instance per architecture: freeze() resets every flag, so tests can share it."""
    return build_model({"arch": arch, "num_classes": 10})


def _trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _params_under(model: torch.nn.Module, *prefixes: str) -> set[str]:
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


def test_vgg16_head_is_replaced_and_only_it_gets_gradients():
    torch.manual_seed(0)
    model = torchvision.models.get_model("vgg16", weights=None)
    replace_head(model, 10)
    assert model.classifier[6].out_features == 10 and model.classifier[6].in_features == 4096
    freeze(model)
    assert _trainable(model) == {"classifier.6.weight", "classifier.6.bias"}
    # 32×32 is enough to exercise the whole network (VGG pools adaptively); 224×224 is slow on a CPU.
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("classifier.6."):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


@pytest.mark.parametrize(
    ("arch", "unfreeze", "expected"),
    [
        ("vgg16", 0, ("classifier.6.",)),
        ("vgg16", 3, ("classifier.6.", "classifier.3.", "classifier.0.", "features.28.")),
        ("resnet18", 2, ("fc.", "layer4.1.", "layer4.0.")),
        ("mobilenet_v3_small", 1, ("classifier.3.", "classifier.0.")),
        ("mobilenet_v3_small", 2, ("classifier.3.", "classifier.0.", "features.12.")),
    ],
)
def test_unfreeze_k_trains_exactly_the_head_and_the_last_k_blocks(arch, unfreeze, expected):
    model = _model(arch)
    freeze(model, unfreeze)
    assert _trainable(model) == _params_under(model, *expected)


def test_unfreeze_beyond_the_number_of_blocks_is_a_value_error():
    model = _model("resnet18")
    blocks = len(feature_blocks(model))
    with pytest.raises(ValueError, match=f"between 0 and {blocks} .* got {blocks + 1}"):
        freeze(model, blocks + 1)


def test_imagenet_weights_without_internet_is_one_clear_error(monkeypatch):
    from train.transfer import load_backbone

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    message = r"cannot download .*IMAGENET1K.* pass --weights PATH or none"
    with pytest.raises(ValueError, match=message) as info:
        load_backbone("mobilenet_v3_small", "imagenet")
    assert "\n" not in str(info.value)


def test_weights_file_of_another_model_is_rejected(tmp_path):
    from train.transfer import load_backbone

    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.get_model("resnet18", weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="is not a state_dict of torchvision's mobilenet_v3_small"):
        load_backbone("mobilenet_v3_small", str(path))
    with pytest.raises(ValueError, match="does not exist"):
        load_backbone("mobilenet_v3_small", str(tmp_path / "missing.pt"))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")  # torch.load raises EOFError with an empty message
    message = f"^{empty} is not a state_dict of torchvision's mobilenet_v3_small: EOFError$"
    with pytest.raises(ValueError, match=message):
        load_backbone("mobilenet_v3_small", str(empty))


@pytest.mark.skipif(not HAVE_DATA, reason=f"Fashion-MNIST not installed in {DEFAULT_DATA_DIR}")
def test_transfer_run_from_a_weights_file_keeps_frozen_weights(tmp_path):
    from train.transfer import main, parse_args

    torch.manual_seed(1)
    backbone = torchvision.models.get_model("mobilenet_v3_small", weights=None)
    torch.save(backbone.state_dict(), tmp_path / "backbone.pt")
    out = tmp_path / "run"
    main(
        parse_args(
            [
                "--arch",
                "mobilenet_v3_small",
                "--weights",
                str(tmp_path / "backbone.pt"),
                "--unfreeze",
                "1",
                "--limit",
                "16",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--precision",
                "fp32",
                "--out",
                str(out),
            ]
        )
    )

    checkpoint = torch.load(out / "model.pt", weights_only=True)
    data_config = DataConfig.from_dict(checkpoint["data_config"])
    assert data_config.input_size == (3, 224, 224) and data_config.image_mode == "L"
    assert data_config.architecture == "mobilenet_v3_small" and len(data_config.labels) == 10
    steps = [t["type"] for t in data_config.preprocessing["transforms"]]
    assert steps == ["ToPILImage", "Grayscale", "Resize", "CenterCrop", "ToTensor", "Normalize"]
    model = build_model(checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    original = backbone.state_dict()
    trained = checkpoint["state_dict"]
    # Frozen: weights and batch-norm statistics exactly as loaded. Unfrozen block and new head: trained.
    for name in ("features.0.0.weight", "features.12.0.weight", "features.12.1.running_mean"):
        assert torch.equal(trained[name], original[name]), name
    assert not torch.equal(trained["classifier.0.weight"], original["classifier.0.weight"])
    assert trained["classifier.3.weight"].shape == (10, 1024)
