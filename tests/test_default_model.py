"""The bundled default model (edgeinfer/models/default.onnx) and the example images, checked on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeinfer import Model
from export.examples import file_name
from train.data import CLASSES, DEFAULT_DATA_DIR, load_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
# The README's figure: default.onnx classifies 9,435 of the 10,000 test images correctly through edgeinfer
# (94.35 %; this test's computation when the model was built, as in edgeinfer/models/default.json).
STATED_CORRECT = 9435


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    if not (DEFAULT_DATA_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST is not installed in {DEFAULT_DATA_DIR} (Debian: dataset-fashion-mnist)")
    return load_fashion_mnist(DEFAULT_DATA_DIR, "test")


def test_bundled_model_accuracy_on_all_test_images(test_set) -> None:
    images, labels = test_set
    predictions = Model().predict_batch(list(images), batch_size=500)
    correct = int(np.sum(np.array([p.index for p in predictions]) == labels))
    assert len(predictions) == 10_000
    assert correct >= STATED_CORRECT, f"{correct} of 10,000 right; the README states {STATED_CORRECT}"


def test_bundled_model_is_the_small_quantized_cnn() -> None:
    model = Model()
    about = model.metadata.provenance
    assert model.labels == CLASSES
    assert about["architecture"] == "cnn" and about["dataset"] == "fashion-mnist"
    assert about["quantization"]["mode"] == "int8"
    assert model.path.stat().st_size < 500_000


def test_examples_are_the_first_test_image_of_each_class(test_set) -> None:
    from PIL import Image

    images, labels = test_set
    for index, label in enumerate(CLASSES):
        path = ROOT / "examples" / file_name(label)
        first = int((labels == index).argmax())
        np.testing.assert_array_equal(np.asarray(Image.open(path)), images[first], err_msg=str(path))
