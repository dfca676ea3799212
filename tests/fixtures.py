"""Fixture models for the runtime tests and benchmarks: a small torch CNN exported by export/conversion.py.

The network has the classic layout of the product's CNN (conv → pool → conv → pool → fully
connected); ``width`` scales the channel counts (width=32 gives ≈ 420k parameters, the size of the
real Fashion-MNIST model; the default 8 keeps tests fast). Weights are random but seeded.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# Fashion-MNIST pixel statistics, the usual Normalize for a 28×28 grayscale model.
GRAY_SPEC = {
    "type": "Compose",
    "transforms": [{"type": "ToTensor"}, {"type": "Normalize", "mean": [0.2860], "std": [0.3530]}],
}


def rgb_spec(size: int) -> dict[str, Any]:
    """Resize(size) → CenterCrop(size) → ToTensor → Normalize(ImageNet): a typical RGB eval pipeline."""
    return {
        "type": "Compose",
        "transforms": [
            {
                "type": "Resize",
                "size": size,
                "interpolation": "bilinear",
                "max_size": None,
                "antialias": True,
            },
            {"type": "CenterCrop", "size": [size, size]},
            {"type": "ToTensor"},
            {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        ],
    }


def build_cnn(channels: int = 1, size: int = 28, classes: int = 10, width: int = 8, seed: int = 0) -> Any:
    """conv(3×3) → ReLU → maxpool → conv(3×3) → ReLU → maxpool → linear(4·width·(size/4)²) → linear."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (size // 4) ** 2, 4 * width),
        nn.ReLU(),
        nn.Linear(4 * width, classes),
    ).eval()


def make_model(
    path: Path,
    *,
    image_mode: str = "L",
    size: int = 28,
    width: int = 8,
    spec: dict[str, Any] | None = None,
    labels: tuple[str, ...] = FASHION_MNIST_LABELS,
    metadata: bool = True,
    declared_shape: list[int | None] | None = None,
) -> Path:
    """Build a fixture CNN and export it with export/'s writer: edgeinfer metadata unless ``metadata=False``.

    ``declared_shape`` writes a different input shape into the metadata than the network has, to
    make a model whose input does not match its metadata.
    """
    from edgeinfer.metadata import InputSpec, ModelMetadata
    from export.conversion import export_onnx, rewrite_metadata

    channels = 1 if image_mode == "L" else 3
    module = build_cnn(channels=channels, size=size, classes=len(labels), width=width)
    meta = ModelMetadata(
        labels=labels,
        preprocessing=spec or (GRAY_SPEC if image_mode == "L" else rgb_spec(size)),
        image_mode=image_mode,
        input=InputSpec(name="input", shape=(None, channels, size, size)),
        output="logits",
        provenance={"architecture": "fixture-cnn", "dataset": "random weights"},
    )
    export_onnx(module, path, meta)
    if not metadata:
        return replace_props(path, {})
    if declared_shape:
        # export_onnx refuses a metadata shape unlike the graph's, so the mismatch is written afterwards.
        rewrite_metadata(path, dataclasses.replace(meta, input=InputSpec("input", tuple(declared_shape))))
    return path


def replace_props(path: Path, props: dict[str, str]) -> Path:
    """Replace the ONNX file's ``metadata_props`` with ``props`` as given, bypassing the metadata schema.

    For models the real writer cannot produce: no edgeinfer metadata at all, or broken metadata.
    """
    import onnx

    from export.conversion import save_model

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    save_model(model, path)
    return path


@functools.cache
def _session_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="edgeinfer-fixtures-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def gray_model() -> Path:
    """The 28×28 grayscale fixture model, exported once per test session."""
    return make_model(_session_dir() / "gray.onnx")


@functools.cache
def rgb_model() -> Path:
    """A 32×32 RGB fixture model with Resize + CenterCrop preprocessing, exported once per session."""
    return make_model(_session_dir() / "rgb.onnx", image_mode="RGB", size=32)


@functools.cache
def bare_model() -> Path:
    """The grayscale fixture network exported without edgeinfer metadata."""
    return make_model(_session_dir() / "bare.onnx", metadata=False)


def qualifies(row: dict, fp32: dict) -> bool:
    """``--quantize auto``'s bar for a measured row, written out independently of export/selection.py:
    top-1 agreement >= 99 %, accuracy drop <= 0.5 points, not slower than FP32 at batch 1 nor 64, smaller."""
    return (
        "latency" in row  # measured at all: a candidate that could not be built has no numbers
        and row["size_bytes"] < fp32["size_bytes"]
        and row["agreement_with_fp32"] >= 0.99
        and row["accuracy"] is not None
        and fp32["accuracy"] - row["accuracy"] <= 0.005
        and row["latency"]["batch_1_ms"] <= fp32["latency"]["batch_1_ms"]
        and row["latency"]["batch_64_ms"] <= fp32["latency"]["batch_64_ms"]
    )


def write_photo_folder(root: Path, classes: tuple[str, ...], per_class: int, make_image: Any) -> Path:
    """An ImageFolder of photo-like images (``make_image``: conftest's ``image_factory``): JPEG and PNG files,
    RGB, RGBA and grayscale, mixed sizes and aspect ratios."""
    from PIL import Image

    kinds = [("RGB", "jpg"), ("RGBA", "png"), ("L", "jpg"), ("RGB", "png")]
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            mode, ext = kinds[i % len(kinds)]
            array = make_image(48 + 5 * i, 80 - 3 * i, mode, seed=1000 * c + i)
            Image.fromarray(array).save(root / name / f"{name}_{i}.{ext}")
    return root
