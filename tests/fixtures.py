"""Shared test helpers: fixture models, test images and the parity checks against torchvision and Pillow.

Fixture models: a small torch CNN exported by export/conversion.py. The network has the classic layout of
the product's CNN (conv → pool → conv → pool → fully connected); ``width`` scales the channel counts
(width=32 gives ≈ 420k parameters, the size of the real Fashion-MNIST model; the default 8 keeps tests
fast). Weights are random but seeded.

conftest.py registers the fixtures built from these (``image_factory``, ``fashion_mnist_images``,
``parity``).
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode

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


def export_rgb_network(module: Any, path: Path, size: int, architecture: str) -> Any:
    """Export ``module`` (RGB ``size``×``size`` in, 10 classes out) with export/'s writer; its metadata."""
    from edgeinfer.metadata import InputSpec, ModelMetadata
    from export.conversion import export_onnx

    meta = ModelMetadata(
        labels=tuple(f"class {i}" for i in range(10)), preprocessing=rgb_spec(size), image_mode="RGB",
        input=InputSpec(name="input", shape=(None, 3, size, size)), output="logits",
        provenance={"architecture": architecture, "dataset": "seeded images"},
    )  # fmt: skip
    export_onnx(module, path, meta)
    return meta


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


def qualifies(row: dict, fp32: dict, measured_on: dict | None = None) -> bool:
    """``--quantize auto``'s bar for a measured row, written out independently of export/selection.py:
    top-1 agreement >= 99 % and accuracy drop <= 0.5 points, each lowered to what FP32 itself keeps under ±1
    pixel level of noise when ``measured_on`` records that (``fp32_noise_floor``), on the images where FP32
    is confident 97 %, lowered the same way (accuracy only on labelled images); not slower than FP32 at
    batch 1 nor 64; smaller."""
    floor = (measured_on or {}).get("fp32_noise_floor") or {}
    agreement_bar = min(0.99, floor.get("overall", 1.0))
    confident_floor = floor.get("confident", 1.0)  # None: no confident image, no bar
    confident_bar = None if confident_floor is None else min(0.97, confident_floor)
    accuracy_bar = fp32["accuracy"] - 0.005 if fp32["accuracy"] is not None else None
    if accuracy_bar is not None and floor.get("accuracy") is not None:
        accuracy_bar = min(accuracy_bar, floor["accuracy"])
    return (
        "latency" in row  # measured at all: a candidate that could not be built has no numbers
        and row["size_bytes"] < fp32["size_bytes"]
        and row["agreement_with_fp32"] >= agreement_bar
        and (
            confident_bar is None
            or row.get("agreement_confident") is None
            or row["agreement_confident"] >= confident_bar
        )
        and (row["accuracy"] is None or row["accuracy"] >= accuracy_bar - 1e-9)
        and row["latency"]["batch_1_ms"] <= fp32["latency"]["batch_1_ms"]
        and row["latency"]["batch_64_ms"] <= fp32["latency"]["batch_64_ms"]
    )


def write_photo_folder(root: Path, classes: tuple[str, ...], per_class: int, make_image: Any) -> Path:
    """An ImageFolder of photo-like images (``make_image``: conftest's ``image_factory``): JPEG and PNG files,
    RGB, RGBA and grayscale, mixed sizes and aspect ratios."""
    kinds = [("RGB", "jpg"), ("RGBA", "png"), ("L", "jpg"), ("RGB", "png")]
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            mode, ext = kinds[i % len(kinds)]
            array = make_image(48 + 5 * i, 80 - 3 * i, mode, seed=1000 * c + i)
            Image.fromarray(array).save(root / name / f"{name}_{i}.{ext}")
    return root


# --------------------------------------------------------------------------------------------------
# Test images

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CHANNELS = {"L": 0, "LA": 2, "RGB": 3, "RGBA": 4}


def real_looking_image(h: int, w: int, mode: str, seed: int) -> np.ndarray:
    """A photo-like image array: smooth gradients, a few hard edges and mild sensor noise.

    For LA/RGBA the alpha mixes fully transparent, fully opaque and partial areas, so alpha
    premultiplication matters.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = y / max(h - 1, 1), x / max(w - 1, 1)
    colour_planes = 1 if mode in ("L", "LA") else 3
    planes = []
    for _ in range(colour_planes):
        a, b, c = rng.uniform(-120, 120, 3)
        fx, fy = rng.uniform(1, 6, 2)
        plane = 128 + a * x + b * y + c * np.sin(fx * x * np.pi + fy * y * np.pi)
        # Hard edges: a rectangle and a diagonal half-plane with their own brightness.
        y0, y1 = sorted(rng.uniform(0, 1, 2))
        x0, x1 = sorted(rng.uniform(0, 1, 2))
        plane += rng.uniform(-90, 90) * ((y >= y0) & (y <= y1) & (x >= x0) & (x <= x1))
        plane += rng.uniform(-60, 60) * (x + y > rng.uniform(0.5, 1.5))
        plane += rng.normal(0, 6, (h, w))
        planes.append(plane)
    if mode in ("LA", "RGBA"):
        alpha = 255 * (0.2 + 0.8 * x) * (y > 0.15)
        alpha[(x > 0.7) & (y > 0.5)] = 255
        alpha += rng.normal(0, 20, (h, w))
        planes.append(alpha)
    arr = np.clip(np.rint(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)
    return arr[:, :, 0] if mode == "L" else arr


def noise_image(h: int, w: int, mode: str, seed: int) -> np.ndarray:
    """Uniform noise over the full 8-bit range (worst case for rounding and clipping)."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if mode == "L" else (h, w, CHANNELS[mode])
    return rng.integers(0, 256, shape, dtype=np.uint8)


def make_image(h: int, w: int, mode: str, seed: int = 0, kind: str = "real") -> np.ndarray:
    """An image array of ``mode`` (L, LA, RGB, RGBA, I, F, I;16), photo-like ("real") or "noise"."""
    if mode == "I":
        return np.random.default_rng(seed).integers(-300, 70000, (h, w), dtype=np.int32)
    if mode == "F":
        return np.random.default_rng(seed).uniform(-50, 300, (h, w)).astype(np.float32)
    if mode == "I;16":
        return np.random.default_rng(seed).integers(0, 65536, (h, w), dtype=np.uint16)
    return (real_looking_image if kind == "real" else noise_image)(h, w, mode, seed)


def read_idx_images(path: Path, count: int) -> np.ndarray:
    """The first ``count`` images of an IDX file (the MNIST format, gzipped) as uint8 N×H×W."""
    with gzip.open(path, "rb") as f:
        header = f.read(16)
        n, rows, cols = (int.from_bytes(header[i : i + 4], "big") for i in (4, 8, 12))
        data = f.read(min(n, count) * rows * cols)
    return np.frombuffer(data, np.uint8).reshape(-1, rows, cols)


# --------------------------------------------------------------------------------------------------
# Parity with torchvision and Pillow

MODES_8BIT = ("L", "LA", "RGB", "RGBA")
MODES_ALL = MODES_8BIT + ("I", "F", "I;16")
INTERPOLATIONS = tuple(mode.value for mode in InterpolationMode)  # all seven, named as torchvision does
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def to_pil(arr: np.ndarray) -> Image.Image:
    img = Image.fromarray(arr)
    assert img.mode in MODES_ALL, img.mode
    return img


def as_numpy(x) -> np.ndarray:
    """torchvision's output as an array: tensors as they are, PIL images as edgeinfer holds them."""
    if isinstance(x, torch.Tensor):
        return x.numpy()
    arr = np.asarray(x)
    return arr.astype(np.uint16) if x.mode == "I;16" else arr


# Tensors to convert to images: (name, maker from a NumPy Generator, mode given to to_pil_image).
TENSORS = [
    ("float32 1ch", lambda r: r.uniform(0, 1, (1, 5, 6)).astype(np.float32), None),
    ("float32 out of range", lambda r: r.uniform(-0.5, 1.5, (3, 5, 6)).astype(np.float32), None),
    ("float64 4ch", lambda r: r.uniform(0, 1, (4, 5, 6)), None),
    ("float32 2-D", lambda r: r.uniform(0, 1, (5, 6)).astype(np.float32), None),
    ("float32 mode F", lambda r: r.uniform(-9, 9, (1, 5, 6)).astype(np.float32), "F"),
    ("uint8 2ch", lambda r: r.integers(0, 256, (2, 5, 6), dtype=np.uint8), None),
    ("uint8 3ch RGB", lambda r: r.integers(0, 256, (3, 5, 6), dtype=np.uint8), "RGB"),
    ("uint8 1ch L", lambda r: r.integers(0, 256, (1, 5, 6), dtype=np.uint8), "L"),
    ("int16", lambda r: r.integers(-(2**15), 2**15, (1, 5, 6), dtype=np.int16), None),
    ("int32", lambda r: r.integers(-(2**31), 2**31, (1, 5, 6), dtype=np.int32), None),
]


class ParityCounter:
    """Counts comparisons against the reference libraries and how many were bit-identical."""

    def __init__(self) -> None:
        self.run = 0
        self.exact = 0

    def check(self, ours: np.ndarray, theirs: np.ndarray, what: str = "") -> None:
        """Assert ``ours`` equals ``theirs`` bit for bit (same dtype, shape and values), and count it."""
        self.run += 1
        assert isinstance(ours, np.ndarray), f"{what}: edgeinfer returned {type(ours).__name__}"
        assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} != reference {theirs.dtype}"
        assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != reference {theirs.shape}"
        if not np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f"):
            diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
            raise AssertionError(
                f"{what}: {np.count_nonzero(diff)} values differ, max abs difference {diff.max()}"
            )
        self.exact += 1
