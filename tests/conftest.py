"""Registers the shared fixtures (built from tests/fixtures.py), the parity total printed at the end of the
run and the CI hypothesis profile."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

from tests.fixtures import FASHION_MNIST_DIR, ParityCounter, make_image, read_idx_images


@pytest.fixture(scope="session")
def image_factory():
    """``image_factory(h, w, mode, seed=0, kind="real")`` → an image array (``tests.fixtures.make_image``)."""
    return make_image


@pytest.fixture(scope="session")
def fashion_mnist_images() -> np.ndarray:
    """The first 64 Fashion-MNIST test images (uint8 N×28×28); skips when the dataset is not installed."""
    path = FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(
            f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} (Debian package dataset-fashion-mnist)"
        )
    return read_idx_images(path, 64)


_PARITY = ParityCounter()


@pytest.fixture(scope="session")
def parity() -> ParityCounter:
    """The session's parity counter; its totals are printed in the test summary."""
    return _PARITY


def pytest_sessionfinish(session) -> None:
    """Under pytest-xdist each worker counts its own cases: it hands them to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["parity"] = (_PARITY.run, _PARITY.exact)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """The controller adds up the cases its workers counted (pytest-xdist's hook)."""
    run, exact = getattr(node, "workeroutput", {}).get("parity", (0, 0))
    _PARITY.run += run
    _PARITY.exact += exact


def pytest_terminal_summary(terminalreporter) -> None:
    if _PARITY.run:
        terminalreporter.write_line(
            f"parity vs torchvision/Pillow: {_PARITY.run} cases run, {_PARITY.exact} bit-exact"
        )


# CI runs hypothesis derandomized, so a red run is reproducible and a green main stays green.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
