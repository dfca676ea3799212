"""The embedding API: Model, Prediction, predict / predict_batch / run, metadata and overrides."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from torchvision import transforms as T

import edgeinfer.model
from edgeinfer import Model, Prediction
from edgeinfer.decoding import load_image
from edgeinfer.errors import ImageError, MetadataError, ModelError
from edgeinfer.metadata import ModelMetadata
from tests.fixtures import FASHION_MNIST_LABELS, GRAY_SPEC, bare_model, build_cnn, gray_model, make_model


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(gray_model(), threads=1)


@pytest.fixture(scope="module")
def torch_cnn() -> torch.nn.Module:
    return build_cnn()  # the same seeded weights that gray_model() exported


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return list(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_predict_matches_torch_on_torchvision_preprocessing(model, torch_cnn):
    images = _images(8)
    reference = T.Compose([T.ToTensor(), T.Normalize([0.2860], [0.3530])])
    with torch.no_grad():
        logits = torch_cnn(torch.stack([reference(Image.fromarray(a)) for a in images]))
    expected = torch.softmax(logits, dim=1).numpy()
    for arr, probs in zip(images, expected, strict=True):
        p = model.predict(arr, top_k=10)
        assert p.index == int(probs.argmax())
        assert p.label == FASHION_MNIST_LABELS[p.index]
        np.testing.assert_allclose([s for _, s in p.top], np.sort(probs)[::-1], rtol=1e-5, atol=1e-6)


def test_run_returns_raw_logits(model, torch_cnn):
    batch = np.stack([model.transform(a) for a in _images(5)])
    with torch.no_grad():
        expected = torch_cnn(torch.from_numpy(batch)).numpy()
    out = model.run(batch)
    assert out.shape == (5, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_every_input_kind_gives_the_same_prediction(model, tmp_path):
    arr = _images(1, seed=3)[0]
    path = tmp_path / "img.png"
    path.write_bytes(_png(arr))
    expected = model.predict(arr)
    assert model.predict(path) == expected
    assert model.predict(str(path)) == expected
    assert model.predict(path.read_bytes()) == expected
    assert model.predict(Image.open(path)) == expected
    assert model.predict(arr[:, :, None]) == expected  # H×W×1 is still grayscale
    # RGB input is converted to L with Pillow's formula, as torchvision's loader would.
    rgb = np.repeat(arr[:, :, None], 3, axis=2)
    assert model.predict(rgb) == expected


def test_prediction_fields(model):
    p = model.predict(_images(1)[0], top_k=3)
    assert isinstance(p, Prediction)
    assert len(p.top) == 3
    assert p.top[0] == (p.label, p.score)
    assert [s for _, s in p.top] == sorted((s for _, s in p.top), reverse=True)
    assert isinstance(p.index, int) and isinstance(p.score, float)
    d = p.to_dict()
    assert d["label"] == p.label and d["top"][0] == {"label": p.label, "score": p.score}


def test_top_k_larger_than_classes_gives_all_classes(model):
    p = model.predict(_images(1)[0], top_k=50)
    assert sorted(label for label, _ in p.top) == sorted(FASHION_MNIST_LABELS)
    assert sum(s for _, s in p.top) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_predict_batch_equals_single_predictions(model, batch_size):
    images = _images(10, seed=1)
    batched = model.predict_batch(iter(images), batch_size=batch_size, top_k=2)
    single = [model.predict(a, top_k=2) for a in images]
    assert [p.label for p in batched] == [p.label for p in single]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose([x for _, x in b.top], [x for _, x in s.top], rtol=1e-6)


def test_predict_batch_returns_errors_in_place(model, tmp_path):
    images = _images(3)
    bad = [tmp_path / "missing.png", b"", b"not an image"]
    mixed = [images[0], bad[0], images[1], bad[1], bad[2], images[2]]
    results = model.predict_batch(mixed, batch_size=2, errors="return")
    kinds = [Prediction, ImageError, Prediction, ImageError, ImageError, Prediction]
    assert [type(r) for r in results] == kinds
    assert results[0] == model.predict(images[0])
    assert results[5] == model.predict(images[2])
    assert str(results[1]) == f"{bad[0]}: no such file"
    with pytest.raises(ImageError, match="no such file"):
        model.predict_batch(mixed, errors="raise")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.lists(st.booleans(), min_size=1, max_size=12), batch_size=st.integers(1, 5))
def test_predict_batch_keeps_order_whatever_fails(model, pattern, batch_size):
    """Any mix of good and bad images, any batch size: each result sits at its input's position."""
    good = _images(len(pattern), seed=5)
    images = [img if ok else b"\x89PNG broken" for img, ok in zip(good, pattern, strict=True)]
    results = model.predict_batch(images, batch_size=batch_size, errors="return")
    for img, ok, result in zip(good, pattern, results, strict=True):
        if ok:
            assert result.label == model.predict(img).label
        else:
            assert isinstance(result, ImageError)


def test_predict_batch_runs_onnxruntime_once_per_batch(model, monkeypatch):
    sizes = []
    real_run = model.run
    monkeypatch.setattr(model, "run", lambda batch: sizes.append(len(batch)) or real_run(batch))
    model.predict_batch(_images(10), batch_size=4)
    assert sizes == [4, 4, 2]


def test_predict_batch_of_nothing(model):
    assert model.predict_batch([]) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be positive, got 0"),
        ({"top_k": 0}, ValueError, "top_k must be positive, got 0"),
        ({"top_k": "3"}, TypeError, r"top_k must be an int, got '3' \(str\)"),
        ({"batch_size": 2.0}, TypeError, r"batch_size must be an int, got 2.0 \(float\)"),
        ({"errors": "ignore"}, ValueError, "errors must be 'raise' or 'return', got 'ignore'"),
    ],
)
def test_predict_batch_rejects_bad_arguments(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        model.predict_batch(_images(1), **kwargs)


def test_run_rejects_wrong_batches(model):
    with pytest.raises(TypeError, match="float32, got float64"):
        model.run(np.zeros((1, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"batch shape \[1, 28, 28\] does not match .* \[\?, 1, 28, 28\]"):
        model.run(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(TypeError, match="NumPy array, got list"):
        model.run([[0.0]])


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.zeros((28, 28), np.complex64), TypeError, "dtype complex64"),
        (np.zeros((0, 28), np.uint8), ValueError, r"shape \(0, 28\)"),
        (np.zeros((2, 28, 28, 3), np.uint8), ValueError, r"shape \(2, 28, 28, 3\)"),
        (12, TypeError, "got int"),
        (np.zeros((30, 28), np.uint8), ImageError, r"tensor of shape \[1, 30, 28\], the model needs \[1, 28"),
    ],
)
def test_predict_rejects_unusable_arrays(model, image, error, message):
    with pytest.raises(error, match=message):
        model.predict(image)


@settings(max_examples=60, deadline=None)
@given(
    arr=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 9), st.integers(1, 9)).flatmap(
            lambda hw: st.sampled_from([hw, (*hw, 1), (*hw, 2), (*hw, 3), (*hw, 4)])
        ),
    ),
    mode=st.sampled_from(["L", "RGB"]),
)
def test_arrays_and_encoded_images_decode_like_pillow_convert(arr, mode):
    """An array is read as Image.fromarray(arr); converting and PNG round trips match Pillow exactly."""
    pil = Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    expected = np.asarray(pil.convert(mode))
    assert np.array_equal(load_image(arr, mode), expected)
    assert np.array_equal(load_image(pil, mode), expected)
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    assert np.array_equal(load_image(buf.getvalue(), mode), expected)


def test_properties(model):
    assert model.labels == FASHION_MNIST_LABELS
    assert isinstance(model.metadata, ModelMetadata)
    assert model.metadata.image_mode == "L"
    assert model.transform.to_spec()["transforms"][0]["type"] == "ToTensor"
    assert "gray.onnx" in repr(model)


def test_session_runs_with_requested_threads_and_no_spinning():
    m = Model(gray_model(), threads=2)
    options = m._session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


@pytest.mark.parametrize(("threads", "error"), [(0, ValueError), ("2", TypeError), (True, TypeError)])
def test_threads_are_validated(threads, error):
    with pytest.raises(error, match="threads"):
        Model(gray_model(), threads=threads)


def test_model_without_metadata_needs_explicit_preprocessing_and_labels(model):
    with pytest.raises(MetadataError, match=rf"^{bare_model()}: the model has no edgeinfer metadata"):
        Model(bare_model())
    bare = Model(bare_model(), preprocessing=GRAY_SPEC, labels=FASHION_MNIST_LABELS)
    assert bare.metadata.image_mode == "L"  # from the input's single channel
    assert bare.metadata.input.shape == (None, 1, 28, 28)
    images = _images(4)
    assert bare.predict_batch(images) == model.predict_batch(images)


def test_explicit_arguments_override_the_metadata(model):
    labels = [f"class {i}" for i in range(10)]
    m = Model(gray_model(), labels=labels, output="probabilities")
    arr = _images(1)[0]
    p = m.predict(arr)
    assert p.label == f"class {p.index}" and p.index == model.predict(arr).index
    # "probabilities": scores are the raw outputs, no softmax.
    assert p.score == pytest.approx(float(m.run(m.transform(arr)[None]).max()), rel=1e-6)


def test_label_count_must_match_the_output(tmp_path):
    with pytest.raises(ModelError, match=r"outputs 10 classes but its metadata has 3 labels"):
        Model(gray_model(), labels=["a", "b", "c"])


def test_input_shape_must_match_the_metadata(tmp_path):
    path = make_model(tmp_path / "liar.onnx", declared_shape=[None, 1, 32, 32])
    message = (
        rf"^{path}: input 'input' has shape \[\?, 1, 28, 28\] but its metadata declares \[\?, 1, 32, 32\]"
    )
    with pytest.raises(ModelError, match=message):
        Model(path)


def test_preprocessing_must_produce_the_input_shape(tmp_path):
    spec = {"type": "Compose", "transforms": [{"type": "Resize", "size": 32}, {"type": "ToTensor"}]}
    with pytest.raises(ModelError, match=r"preprocessing turns a L 28x28 image into float32 \[1, 32, 32\]"):
        Model(gray_model(), preprocessing=spec)


def test_missing_bundled_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(edgeinfer.model, "DEFAULT_MODEL", tmp_path / "default.onnx")
    with pytest.raises(ModelError, match="bundled default model is not installed; pass a model path"):
        Model()


@pytest.mark.skipif(not edgeinfer.model.DEFAULT_MODEL.exists(), reason="the bundled model is not built yet")
def test_bundled_model_loads_and_predicts():
    m = Model()
    p = m.predict(np.zeros(m.metadata.input.shape[2:], np.uint8))
    assert p.label in m.labels
