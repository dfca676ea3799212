"""Shared fixtures: test images and the parity counter reported at the end of the run."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

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


@pytest.fixture(scope="session")
def image_factory():
    """``image_factory(h, w, mode, seed=0, kind="real")`` → image array (see :func:`make_image`)."""
    return make_image


def _read_idx_images(path: Path, count: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        header = f.read(16)
        n, rows, cols = (int.from_bytes(header[i : i + 4], "big") for i in (4, 8, 12))
        data = f.read(min(n, count) * rows * cols)
    return np.frombuffer(data, np.uint8).reshape(-1, rows, cols)


@pytest.fixture(scope="session")
def fashion_mnist_images() -> np.ndarray:
    """The first 64 Fashion-MNIST test images (uint8 N×28×28); skips when the dataset is not installed."""
    path = FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(
            f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} (Debian package dataset-fashion-mnist)"
        )
    return _read_idx_images(path, 64)


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


_PARITY = ParityCounter()


@pytest.fixture(scope="session")
def parity() -> ParityCounter:
    """The session's parity counter; its totals are printed in the test summary."""
    return _PARITY


def pytest_terminal_summary(terminalreporter) -> None:
    if _PARITY.run:
        terminalreporter.write_line(
            f"parity vs torchvision/Pillow: {_PARITY.run} cases run, {_PARITY.exact} bit-exact"
        )


# CI runs hypothesis derandomized, so a red run is reproducible and a green main stays green.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
