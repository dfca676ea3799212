"""The image model (export/image_model.py): its in-graph preprocessing is bit-identical to edgeinfer's NumPy
transforms (and so to torchvision's PIL path) on onnxruntime and on onnx's reference evaluator; the whole
model predicts as Model.predict on the plain model does; it carries the metadata and passes its self-test."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator
from PIL import Image

from bench.browser import CHROMIUM, page_results, served
from edgeinfer import Model
from edgeinfer.errors import MetadataError
from edgeinfer.metadata import InputSpec, ModelMetadata
from edgeinfer.model import DEFAULT_MODEL
from edgeinfer.transforms import from_spec
from export.image_model import OPERATORS, build_image_model, preprocessing_model
from export.image_preprocessing import UnsupportedStep
from tests.fixtures import FASHION_MNIST_LABELS, make_model

FILTERS = ("bilinear", "bicubic", "lanczos", "box", "hamming", "nearest")
ORDERS = ("pillow13", "pillow12")
# (height, width): landscape, tall (where Pillow 13 runs the vertical pass first), square, degenerate.
SIZES = ((57, 91), (300, 17), (200, 30), (32, 32), (1, 40), (40, 1), (1, 1), (13, 13))
CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
MEAN_STD = {"L": ([0.5], [0.25]), "RGB": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}


def compose(*steps: dict, mode: str = "RGB") -> dict:
    mean, std = MEAN_STD[mode]
    return {"type": "Compose", "transforms": [*steps, {"type": "ToTensor"},
                                              {"type": "Normalize", "mean": mean, "std": std}]}  # fmt: skip


def resize(size, interpolation="bilinear", pass_order="pillow13", max_size=None) -> dict:
    return {"type": "Resize", "size": size, "interpolation": interpolation, "pass_order": pass_order,
            "max_size": max_size}  # fmt: skip


def session(spec: dict, mode: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    model = preprocessing_model(spec, mode)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def numpy_reference(spec: dict, mode: str, image: np.ndarray) -> np.ndarray:
    """What edgeinfer computes: Pillow's convert to the model's mode, then the NumPy transforms."""
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    return from_spec(spec)(np.asarray(pil.convert(mode)))[None]


def hwc(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


@pytest.mark.parametrize("filter", FILTERS)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_resize_grid(filter, mode, image_factory, parity):
    """Every filter × both pass orders × crop / no crop / squash × L, RGB, RGBA inputs × sizes."""
    specs = []
    for order in ORDERS:
        specs += [
            compose(resize(24, filter, order), {"type": "CenterCrop", "size": 24}, mode=mode),
            compose(resize(24, filter, order), mode=mode),
            compose(resize([20, 50], filter, order), mode=mode),
            compose(resize(16, filter, order), {"type": "CenterCrop", "size": [40, 12]}, mode=mode),
        ]
    for spec in specs:
        graph = session(spec, mode)
        for i, (h, w) in enumerate(SIZES):
            channels = (1, 3, 4)[i % 3]
            image = hwc(image_factory(h, w, CHANNELS[channels], seed=i, kind="noise"))
            ours = graph.run(["preprocessed"], {"image": image})[0]
            parity.check(ours, numpy_reference(spec, mode, image), f"{spec} {h}x{w}x{channels}")


@pytest.mark.parametrize(
    "step",
    [
        {"type": "CenterCrop", "size": 20},
        {"type": "CenterCrop", "size": [90, 7]},  # larger than the image on one side: zero padding
        {"type": "CenterCrop", "size": 120},
        {"type": "Pad", "padding": 3, "fill": [10, 200, 300], "padding_mode": "constant"},
        {"type": "Pad", "padding": [2, -3], "fill": 7.9, "padding_mode": "constant"},
        {"type": "Pad", "padding": [1, 40, 2, 3], "padding_mode": "edge"},
        {"type": "Pad", "padding": [70, 2, -1, 45], "padding_mode": "reflect"},
        {"type": "Pad", "padding": [5, 60, 0, 1], "padding_mode": "symmetric"},
        {"type": "Grayscale", "num_output_channels": 3},
        {"type": "Grayscale", "num_output_channels": 1},
    ],
)
def test_crop_pad_grayscale(step, image_factory, parity):
    mode = "RGB" if step["type"] != "Grayscale" or step["num_output_channels"] == 3 else "L"
    spec = compose(step, mode=mode)
    graph = session(spec, "RGB")
    for i, (h, w) in enumerate(((57, 91), (1, 40), (40, 1), (100, 3))):
        image = hwc(image_factory(h, w, CHANNELS[(4, 3, 1, 3)[i]], seed=i))
        try:
            expected = numpy_reference(spec, "RGB", image)
        except ValueError:  # negative padding leaves nothing: edgeinfer refuses the image, a graph cannot
            continue
        parity.check(graph.run(["preprocessed"], {"image": image})[0], expected, f"{step} {h}x{w}")


@pytest.mark.parametrize(
    "steps",
    [
        [resize(30, max_size=40)],
        [resize(None, "bicubic", max_size=33)],
        [resize([30]), {"type": "CenterCrop", "size": 30}],
        [{"type": "ToPILImage"}, resize(25, "lanczos"), {"type": "CenterCrop", "size": 25}],
        [
            {"type": "Grayscale", "num_output_channels": 3},
            resize(21, "hamming"),
            {"type": "Pad", "padding": 2},
        ],
        [
            {"type": "Pad", "padding": 4, "padding_mode": "reflect"},
            resize(19, "box"),
            {"type": "CenterCrop", "size": 23},
        ],
    ],
)
def test_pipelines(steps, image_factory, parity):
    spec = compose(*steps)
    graph = session(spec, "RGB")
    for i, (h, w) in enumerate(((75, 100), (100, 75), (31, 400))):
        image = image_factory(h, w, "RGB", seed=i)
        parity.check(graph.run(["preprocessed"], {"image": image})[0], numpy_reference(spec, "RGB", image),
                     f"{steps} {h}x{w}")  # fmt: skip


def test_against_torchvision(image_factory, parity):
    """A subset compared with torchvision itself (Pillow's resize, its crop, ToTensor, Normalize)."""
    from torchvision import transforms as T

    for filter in FILTERS:
        mode = "L" if filter in ("box", "hamming") else "RGB"
        spec = compose(resize(32, filter), {"type": "CenterCrop", "size": 28}, mode=mode)
        mean, std = MEAN_STD[mode]
        reference = T.Compose([T.Resize(32, T.InterpolationMode(filter)), T.CenterCrop(28), T.ToTensor(),
                               T.Normalize(mean, std)])  # fmt: skip
        graph = session(spec, mode)
        for i, (h, w) in enumerate(((50, 80), (300, 40), (20, 20))):
            image = image_factory(h, w, "RGBA", seed=i)
            expected = reference(Image.fromarray(image).convert(mode)).numpy()[None]
            parity.check(graph.run(["preprocessed"], {"image": image})[0], expected, f"{filter} {h}x{w}")


def photo() -> np.ndarray:
    """A real photo: scikit-image's astronaut if installed, else matplotlib's grace_hopper.jpg."""
    try:
        from skimage import data

        return data.astronaut()
    except ImportError:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("filter", FILTERS)
def test_real_photo(filter, parity):
    image = photo()
    for mode in ("RGB", "L"):
        spec = compose(resize(256, filter), {"type": "CenterCrop", "size": 224}, mode=mode)
        parity.check(session(spec, mode).run(["preprocessed"], {"image": image})[0],
                     numpy_reference(spec, mode, image), f"photo {filter} {mode}")  # fmt: skip


@pytest.mark.slow
def test_large_image(image_factory, parity):
    """A 12 MP (4032×3024) image, as a phone takes it: landscape and portrait, RGB and RGBA."""
    image = image_factory(3024, 4032, "RGB", seed=5)
    spec = compose(resize(256, "bilinear"), {"type": "CenterCrop", "size": 224})
    graph = session(spec, "RGB")
    for pixels in (image, np.ascontiguousarray(image.transpose(1, 0, 2))):
        parity.check(graph.run(["preprocessed"], {"image": pixels})[0], numpy_reference(spec, "RGB", pixels),
                     f"12 MP {pixels.shape}")  # fmt: skip
    spec = compose(resize(28, "bicubic"), {"type": "CenterCrop", "size": 28}, mode="L")
    rgba = np.dstack([image, np.full(image.shape[:2], 128, np.uint8)])
    ours = session(spec, "L").run(["preprocessed"], {"image": rgba})[0]
    parity.check(ours, numpy_reference(spec, "L", rgba), "12 MP RGBA to L")


@pytest.mark.parametrize("filter", FILTERS)
def test_reference_evaluator(filter, image_factory, parity):
    """onnx's own reference evaluator, a second engine, gives the same bits."""
    for mode, order, crop in (("RGB", "pillow13", True), ("L", "pillow12", False)):
        steps = [resize(12, filter, order)] + ([{"type": "CenterCrop", "size": 12}] if crop else [])
        spec = compose(*steps, mode=mode)
        evaluator = ReferenceEvaluator(preprocessing_model(spec, mode))
        for i, (h, w) in enumerate(((40, 23), (90, 11), (1, 7))):
            image = hwc(image_factory(h, w, CHANNELS[(3, 4, 1)[i]], seed=i))
            ours = evaluator.run(["preprocessed"], {"image": image})[0]
            parity.check(ours, numpy_reference(spec, mode, image), f"reference {spec} {h}x{w}")


def test_standard_operators_only():
    model = preprocessing_model(compose(resize(24, "lanczos"), {"type": "Pad", "padding": 1},
                                        {"type": "CenterCrop", "size": 20}), "L")  # fmt: skip
    onnx.checker.check_model(model, full_check=True)
    used = set()
    for graph in [model.graph] + [a.g for node in model.graph.node for a in node.attribute if a.g.node]:
        used |= {(node.domain, node.op_type) for node in graph.node}
    assert {domain for domain, _ in used} == {""}
    assert {op for _, op in used} <= set(OPERATORS)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"type": "PILToTensor"}, "step 0 (PILToTensor): not supported in a graph"),
        ({"type": "ToPILImage", "mode": "L"}, "step 0 (ToPILImage): only a first ToPILImage"),
    ],
)
def test_unsupported_step_is_named(step, message):
    spec = {"type": "Compose", "transforms": [step, {"type": "ToTensor"}]}
    with pytest.raises(
        UnsupportedStep, match="^image model: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        preprocessing_model(spec, "RGB")


@pytest.fixture(scope="module")
def rgb_models(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("image_model")
    plain = make_model(folder / "rgb.onnx", image_mode="RGB", size=32)
    return plain, build_image_model(plain)


def test_predictions_equal_model_predict(rgb_models, image_factory):
    plain, image_model = rgb_models
    assert image_model.name == "rgb.image.onnx"
    reference, model = Model(plain, threads=1), Model(image_model, threads=1)
    assert model.takes_images and model.labels == reference.labels
    session_ = ort.InferenceSession(str(image_model), providers=["CPUExecutionProvider"])
    for i, (h, w) in enumerate(((48, 64), (300, 200), (32, 32))):
        image = image_factory(h, w, "RGB", seed=i)
        logits, probabilities, tensor = session_.run(None, {"image": image})
        np.testing.assert_array_equal(tensor[0], reference.preprocess(image))
        expected = reference.run(tensor)
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(probabilities, reference._scores(expected), rtol=0, atol=1e-6)
        ours, theirs = model.predict(image), reference.predict(image)
        assert ours.label == theirs.label
        np.testing.assert_allclose([s for _, s in ours.top], [s for _, s in theirs.top], rtol=0, atol=1e-6)


def test_metadata_declares_the_image_input(rgb_models):
    plain, image_model = rgb_models
    meta, source = Model(image_model).metadata, Model(plain).metadata
    assert meta.input == InputSpec("image", (None, None, None), layout="HWC", dtype="uint8")
    assert (meta.labels, meta.preprocessing, meta.image_mode) == (source.labels, source.preprocessing, "RGB")
    assert "image_model" in meta.provenance


def test_metadata_layout_rules():
    base = dict(labels=FASHION_MNIST_LABELS, preprocessing=compose(mode="L"), image_mode="L")
    with pytest.raises(MetadataError, match="'input.dtype' must be 'uint8' for layout 'HWC'"):
        ModelMetadata(**base, input=InputSpec("image", (None, None, None), layout="HWC"))
    with pytest.raises(MetadataError, match=r"must be 3 positive ints or nulls \(HWC\)"):
        ModelMetadata(**base, input=InputSpec("image", (None, 1, 28, 28), layout="HWC", dtype="uint8"))
    with pytest.raises(MetadataError, match="'input.dtype' must be 'float32' for layout 'NCHW'"):
        ModelMetadata(**base, input=InputSpec("input", (None, 1, 28, 28), dtype="uint8"))


def test_bundled_image_model_verifies():
    """edgeinfer/models/default.image.onnx: built from default.onnx, passes its self-test (the in-graph
    preprocessing gives the recorded tensors bit for bit), predicts as the plain model, ≤ 100 KB larger."""
    path = DEFAULT_MODEL.with_name("default.image.onnx")
    assert path.stat().st_size <= DEFAULT_MODEL.stat().st_size + 100_000
    model, plain = Model(path), Model()
    result = model.verify()
    assert result.passed, result.reason
    assert all(case.preprocessing_exact for case in result.cases)
    examples = sorted((Path(__file__).parents[1] / "examples").glob("*.png"))
    for ours, theirs in zip(model.predict_batch(examples), plain.predict_batch(examples), strict=True):
        assert ours.label == theirs.label
        assert abs(ours.score - theirs.score) <= 1e-5


def test_self_test_png_cases_run_through_the_graph():
    """The self-test's PNG cases decode to the model's mode and run through the graph as uint8 H×W×1."""
    model = Model(DEFAULT_MODEL.with_name("default.image.onnx"))
    case = next(c for c in model.self_test_document()["cases"] if "png" in c)
    image = model.preprocess(base64.b64decode(case["png"]))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 1
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(case["png"]))).convert("L"))
    np.testing.assert_array_equal(image[:, :, 0], decoded)


NODE_EXAMPLE = Path(__file__).parents[1] / "examples" / "node"


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_EXAMPLE / "node_modules" / "onnxruntime-node").is_dir(),
    reason="needs node and `npm install --ignore-scripts` in examples/node",
)
def test_node_example_predicts_as_edgeinfer():
    """examples/node (onnxruntime-node + pngjs, RGBA pixels in): the classes of `edgeinfer predict` on the
    bundled examples, scores within 1e-5."""
    examples = sorted((Path(__file__).parents[1] / "examples").glob("*.png"))
    out = subprocess.run(
        ["node", str(NODE_EXAMPLE / "predict.mjs"), *map(str, examples)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    expected = Model().predict_batch(examples)
    assert len(rows) == len(expected) == len(examples)
    for row, prediction in zip(rows, expected, strict=True):
        assert [t["label"] for t in row["top"]] == [label for label, _ in prediction.top]
        np.testing.assert_allclose(
            [t["score"] for t in row["top"]], [s for _, s in prediction.top], rtol=0, atol=1e-5
        )


def test_command_writes_the_image_model(rgb_models, tmp_path, capsys):
    from export.image_model import main

    plain, _ = rgb_models
    out = tmp_path / "made.onnx"
    assert main([str(plain), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert Model(out).takes_images


def test_command_names_the_step_it_cannot_embed(tmp_path, capsys):
    from export.image_model import main

    spec = {
        "type": "Compose",
        "transforms": [{"type": "PILToTensor"}, {"type": "ConvertImageDtype", "dtype": "float32"}],
    }
    plain = make_model(tmp_path / "gray.onnx", spec=spec)
    assert main([str(plain)]) == 1
    err = capsys.readouterr().err
    assert (
        err == "error: image model: step 0 (PILToTensor): not supported in a graph (supported: "
        "ToPILImage (first, no mode change), Resize, CenterCrop, Pad, Grayscale, ToTensor, Normalize)\n"
    )
    assert not (tmp_path / "gray.image.onnx").exists()


ROOT = Path(__file__).parents[1]
WEB = ROOT / "examples" / "web"
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or not (WEB / "node_modules" / "onnxruntime-web").is_dir(),
    reason="needs Chromium (Debian's chromium) and `npm install --ignore-scripts` in examples/web",
)


def browser_check(rows: list[dict], reference: Model, examples: list[Path], atol: float) -> None:
    from edgeinfer.selftest import tensor_sha256

    expected = reference.predict_batch(examples)
    assert len(rows) == len(examples)
    for row, path, prediction in zip(rows, examples, expected, strict=True):
        assert row["preprocessed_sha256"] == tensor_sha256(reference.preprocess(path)), path.name
        assert row["top"][0]["label"] == prediction.label
        scores = dict(prediction.top)
        for t in row["top"]:
            assert abs(t["score"] - scores[t["label"]]) <= atol, (path.name, t)


@needs_browser
def test_browser_page_fp32_model(rgb_models):
    """An FP32 image model in the page (the examples' PNGs decoded by Chromium, RGBA → RGB in the graph):
    the preprocessed tensor is edgeinfer's bit for bit, the classes are edgeinfer's, scores within 1e-5."""
    plain, image_model = rgb_models
    examples = sorted((ROOT / "examples").glob("*.png"))
    with served(image_model.parent) as (base, posted):
        images = ",".join(f"/examples/{p.name}" for p in examples)
        rows = page_results(base, posted, f"model=/fixture/{image_model.name}&images={images}", timeout=240)
    browser_check(rows, Model(plain), examples, atol=1e-5)


@needs_browser
def test_browser_page_bundled_model():
    """The bundled INT8 image model in the page: the preprocessed tensor is edgeinfer's bit for bit and the
    top-1 classes are edgeinfer's; the scores agree within the model's self-test tolerance (onnxruntime-web's
    WASM int8 kernels round inside the network differently from x86's: the preprocessing is exact)."""
    examples = sorted((ROOT / "examples").glob("*.png"))
    reference = Model()
    tolerance = reference.self_test_document()["tolerance"]
    with served(ROOT) as (base, posted):
        rows = page_results(base, posted, "images=" + ",".join(f"/examples/{p.name}" for p in examples))
    browser_check(rows, reference, examples, atol=tolerance)


def test_export_model_writes_the_image_model(tmp_path, image_factory):
    """export_model(..., image_model=True): the exported model and its image model, which carries the
    export's self-test and passes it (its graph's tensors are the NumPy ones, bit for bit)."""
    import torch
    from torchvision import transforms as T

    from export import export_model
    from tests.fixtures import write_photo_folder

    classes = ("cat", "dog", "fox")
    folder = write_photo_folder(tmp_path / "photos", classes, 4, image_factory)
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    )
    transform = T.Compose([T.Resize(36, T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                           T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])  # fmt: skip
    lines: list[str] = []
    export_model(module, tmp_path / "m.onnx", transform=transform, labels=classes, verify=folder,
                 quantize="none", repeats=2, image_model=True, progress=lines.append)  # fmt: skip
    assert lines[-1] == f"wrote {tmp_path / 'm.image.onnx'} (image model)"
    model = Model(tmp_path / "m.image.onnx")
    result = model.verify()
    assert result.passed and len(result.cases) == len(
        Model(tmp_path / "m.onnx").self_test_document()["cases"]
    )
