"""Parity of the tensor backend (``Resize(backend="tensor")``, tensor CenterCrop, ``ToDtype``) with
torchvision on tensors: bit-exact on uint8 tensors (v2); on float tensors bit-exact with torch's portable
kernel (``ATEN_CPU_CAPABILITY=default``, run in a subprocess) and within the measured spread of torch's own
kernels of the AVX2 / AVX-512 kernel this process runs.

The grid is the PIL path's (tests/test_transforms.py): the same geometries, 1-4 channels (L, LA, RGB, RGBA
as tensors), real-looking and noise images.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2

import edgeinfer.transforms as E
from edgeinfer.metadata import InputSpec, ModelMetadata
from tests.fixtures import IMAGENET
from tests.test_transforms import RESIZE_GEOMETRIES

TENSOR_INTERPOLATIONS = ["nearest", "nearest-exact", "bilinear", "bicubic"]
CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
# The largest difference between torch's float kernels (portable vs AVX2, measured on this grid and on
# 480×640 photos): what a float32 tensor may differ by between two machines running the same torch.
FLOAT_SPREAD = {"bilinear": 2.4e-7, "bicubic": 1.2e-6, "nearest": 0.0, "nearest-exact": 0.0}


def tensor_image(image_factory, h: int, w: int, mode: str, kind: str) -> np.ndarray:
    """A C×H×W uint8 tensor of the test image (the PIL path's images, channels first)."""
    arr = image_factory(h, w, mode, seed=h * 31 + w, kind=kind)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))


def torch_resize(x: np.ndarray, size, max_size, interpolation: str, v2: bool) -> np.ndarray:
    mode = T.InterpolationMode(interpolation)
    tv = (T2 if v2 else T).Resize(size, mode, max_size=max_size, antialias=True)
    return tv(torch.from_numpy(x)).numpy()


def grid():
    for geometry in RESIZE_GEOMETRIES:
        for mode in CHANNELS:
            for interpolation in TENSOR_INTERPOLATIONS:
                for kind in ("real", "noise"):
                    yield geometry, mode, interpolation, kind


GRID = list(grid())


@pytest.mark.parametrize(("geometry", "mode", "interpolation", "kind"), GRID, ids=str)
def test_uint8_resize_matches_torchvision_v2(parity, geometry, mode, interpolation, kind, image_factory):
    h, w, size, max_size = geometry
    x = tensor_image(image_factory, h, w, mode, kind)
    ours = E.Resize(size, interpolation, max_size, backend="tensor")(x)
    parity.check(ours, torch_resize(x, size, max_size, interpolation, v2=True), f"{geometry} {mode}")


@pytest.mark.parametrize("interpolation", TENSOR_INTERPOLATIONS)
@pytest.mark.parametrize("shape", [(3, 480, 640), (3, 500, 375), (4, 333, 500)], ids=str)
@pytest.mark.parametrize("size", [256, 224, (341, 255), 1000])
def test_uint8_photo_sizes_match_torchvision_v2(parity, shape, interpolation, size, image_factory):
    """Photo sizes, down and up: 0.6-0.8 % of these pixels differ between Pillow's kernel and torch's."""
    x = tensor_image(image_factory, shape[1], shape[2], {3: "RGB", 4: "RGBA"}[shape[0]], "real")
    ours = F_resize(x, size, interpolation)
    parity.check(ours, torch_resize(x, size, None, interpolation, v2=True), f"{shape} → {size}")


def F_resize(x, size, interpolation):
    return E.functional.resize(x, size, interpolation, backend="tensor")


def _float_inputs(image_factory) -> list[tuple[str, np.ndarray, object, object, str]]:
    cases = []
    for dtype in (np.float32, np.float64):
        for geometry, mode, interpolation, kind in GRID:
            h, w, size, max_size = geometry
            x = tensor_image(image_factory, h, w, mode, kind).astype(dtype) / dtype(255)
            what = f"{geometry} {mode} {interpolation} {kind} {x.dtype}"
            cases.append((what, x, size, max_size, interpolation))
    return cases


_DEFAULT_KERNEL = """
import pickle, sys, torch, torchvision.transforms as T
cases = pickle.load(sys.stdin.buffer)
out = [T.Resize(size, T.InterpolationMode(i), max_size=m, antialias=True)(torch.from_numpy(x)).numpy()
       for _, x, size, m, i in cases]
sys.stdout.buffer.write(pickle.dumps((torch.backends.cpu.get_cpu_capability(), out)))
"""


@pytest.fixture(scope="module")
def float_cases(image_factory):
    """The float grid, with torch's outputs from its portable kernel (a subprocess with
    ATEN_CPU_CAPABILITY=default) and from the kernel this process runs."""
    cases = _float_inputs(image_factory)
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    done = subprocess.run(
        [sys.executable, "-c", _DEFAULT_KERNEL],
        input=pickle.dumps(cases),
        env=env,
        capture_output=True,
        check=True,
    )
    capability, portable = pickle.loads(done.stdout)
    assert capability == "DEFAULT"
    native = [torch_resize(x, size, m, i, v2=False) for _, x, size, m, i in cases]
    return cases, portable, native


def test_float_resize_matches_torchs_portable_kernel_exactly(parity, float_cases):
    """v1 F.resize on float32 / float64 tensors (ToTensor, then Resize): torch's portable build, exactly."""
    cases, portable, _ = float_cases
    for (what, x, size, max_size, interpolation), expected in zip(cases, portable, strict=True):
        parity.check(E.Resize(size, interpolation, max_size, backend="tensor")(x), expected, what)


def test_float_resize_is_within_torchs_own_kernel_spread(float_cases):
    """Against the SIMD kernel of this machine: no further than torch's kernels are from each other."""
    cases, portable, native = float_cases
    worst = dict.fromkeys(FLOAT_SPREAD, 0.0)
    for (what, x, size, max_size, interpolation), theirs, simd in zip(cases, portable, native, strict=True):
        ours = E.Resize(size, interpolation, max_size, backend="tensor")(x)
        error = float(np.abs(ours.astype(np.float64) - simd).max())
        spread = float(np.abs(theirs.astype(np.float64) - simd).max())
        assert error <= spread <= FLOAT_SPREAD[interpolation], what
        worst[interpolation] = max(worst[interpolation], error)
    assert worst["nearest"] == worst["nearest-exact"] == 0.0


def test_v2_float_resize_is_v1s(parity, image_factory):
    x = tensor_image(image_factory, 45, 70, "RGB", "real").astype(np.float32) / np.float32(255)
    for interpolation in TENSOR_INTERPOLATIONS:
        v1 = torch_resize(x, 31, None, interpolation, v2=False)
        parity.check(torch_resize(x, 31, None, interpolation, v2=True), v1, interpolation)


# --------------------------------------------------------------------------------------------------
# CenterCrop, ToDtype, pipelines


@pytest.mark.parametrize("crop", [1, 3, (4, 6), 8, (12, 2), (2, 12), 15, [5]], ids=str)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(7, 9), (8, 8), (1, 5), (10, 3)], ids=str)
def test_tensor_center_crop_matches_torchvision_v2(parity, shape, channels, dtype, crop):
    x = np.random.default_rng(sum(shape)).integers(1, 256, (channels, *shape)).astype(dtype)
    ours = E.functional.center_crop(x, crop, backend="tensor")
    parity.check(ours, T2.CenterCrop(crop)(torch.from_numpy(x)).numpy(), f"{shape} {crop}")


def test_tensor_center_crop_rounds_half_to_even(parity):
    """top = int(round((H - ch) / 2)): (9 - 2) / 2 = 3.5 → 4 and (11 - 2) / 2 = 4.5 → 4."""
    for h in (9, 11):
        x = np.arange(h * 3, dtype=np.uint8).reshape(1, h, 3)
        ours = E.functional.center_crop(x, (2, 3), backend="tensor")
        parity.check(ours, T2.CenterCrop((2, 3))(torch.from_numpy(x)).numpy(), f"h={h}")
        assert ours[0, 0, 0] == 4 * 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [True, False])
def test_to_dtype_every_byte_matches_torchvision_v2(parity, dtype, scale):
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    theirs = T2.ToDtype(getattr(torch, dtype), scale=scale)(torch.from_numpy(x)).numpy()
    parity.check(E.ToDtype(dtype, scale)(x), theirs, f"{dtype} scale={scale}")


def test_to_dtype_is_not_to_tensor():
    """v2 multiplies by float32(1/255), v1 divides by 255: 126 of the 256 values differ by an ulp."""
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.count_nonzero(E.ToDtype("float32", True)(x) != E.ConvertImageDtype("float32")(x)) == 126


def v2_pipeline(size, crop, interpolation):
    mode = T2.InterpolationMode(interpolation)
    return T2.Compose(
        [
            T2.ToImage(),
            T2.Resize(size, mode, antialias=True),
            T2.CenterCrop(crop),
            T2.ToDtype(torch.float32, scale=True),
            T2.Normalize(*IMAGENET),
        ]
    )


@pytest.mark.parametrize("interpolation", TENSOR_INTERPOLATIONS)
@pytest.mark.parametrize(
    ("shape", "size", "crop"), [((480, 640), 256, 224), ((37, 23), 16, 15), ((9, 12), 20, 18)]
)
def test_v2_pipeline_is_detected_and_exact(parity, shape, size, crop, interpolation, image_factory):
    """ToImage before Resize: the Compose says it runs on tensors; the runtime's decoded image goes in."""
    tv = v2_pipeline(size, crop, interpolation)
    ours = E.from_torchvision(tv)
    assert [s.get("backend") for s in ours.to_spec()["transforms"] if s["type"] == "Resize"] == ["tensor"]
    img = image_factory(*shape, "RGB", seed=3)
    parity.check(ours(img), tv(PIL.Image.fromarray(img)).numpy(), f"{shape} {interpolation}")


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_backend_tensor_for_a_compose_fed_decoded_tensors(parity, interpolation, image_factory):
    """A Compose without ToImage, given decode_image's uint8 tensors: backend="tensor" says so."""
    mode = T2.InterpolationMode(interpolation)
    tv = T2.Compose([T2.Resize(50, mode), T2.CenterCrop(48), T2.ToDtype(torch.float32, scale=True)])
    ours = E.from_torchvision(tv, backend="tensor")
    with pytest.raises(ValueError, match="ToDtype .* needs a tensor"):  # read as fed PIL images
        E.from_torchvision(tv, backend="pil")
    img = image_factory(90, 120, "RGB", seed=4)
    parity.check(ours(img), tv(torch.from_numpy(img.transpose(2, 0, 1).copy())).numpy(), interpolation)


def test_v1_float_pipeline_is_within_the_spread(image_factory):
    """ToTensor, then Resize (v1's tensor path on float32): within torch's own kernel spread."""
    tv = T.Compose([T.ToTensor(), T.Resize(64, antialias=True), T.CenterCrop(60), T.Normalize(*IMAGENET)])
    ours = E.from_torchvision(tv)
    img = image_factory(100, 140, "RGB", seed=5)
    error = np.abs(ours(img) - tv(PIL.Image.fromarray(img)).numpy()).max()
    assert error <= FLOAT_SPREAD["bilinear"] / min(IMAGENET[1])


@pytest.mark.parametrize("interpolation", TENSOR_INTERPOLATIONS)
def test_to_torchvision_of_a_tensor_spec_is_the_oracle(parity, interpolation, image_factory):
    """What export verifies against: to_torchvision rebuilds v2's Resize and ToDtype for tensor specs."""
    ours = E.from_torchvision(v2_pipeline(40, 36, interpolation))
    oracle = E.to_torchvision(ours.to_spec(), T)
    img = image_factory(61, 83, "RGB", seed=8)
    parity.check(ours(img), oracle(PIL.Image.fromarray(img)).numpy(), interpolation)


def test_pil_path_specs_are_unchanged():
    """PIL-path pipelines: no backend key, the spec of before."""
    spec = E.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])).to_spec()
    assert spec["transforms"][0] == {
        "type": "Resize",
        "size": 256,
        "interpolation": "bilinear",
        "max_size": None,
        "antialias": True,
        "pass_order": spec["transforms"][0]["pass_order"],
    }


def test_model_metadata_records_the_backend(parity, image_factory):
    """The spec in a model's metadata keeps backend="tensor", and the runtime rebuilds the tensor path."""
    tv = v2_pipeline(64, 56, "bicubic")
    spec = E.from_torchvision(tv).to_spec()
    meta = ModelMetadata(
        labels=("a", "b"),
        preprocessing=spec,
        image_mode="RGB",
        input=InputSpec(name="input", shape=(None, 3, 56, 56)),
        output="logits",
        provenance={},
    )
    back = ModelMetadata.from_props(meta.to_props())
    assert json.dumps(back.preprocessing, sort_keys=True) == json.dumps(spec, sort_keys=True)
    resize = next(s for s in back.preprocessing["transforms"] if s["type"] == "Resize")
    assert resize["backend"] == "tensor"
    img = image_factory(80, 100, "RGB", seed=6)
    parity.check(E.from_spec(back.preprocessing)(img), tv(PIL.Image.fromarray(img)).numpy(), "metadata")


def test_model_file_records_the_backend(parity, tmp_path, image_factory):
    """Exported into an ONNX file, the tensor backend comes back from the file and drives preprocessing."""
    from edgeinfer import Model
    from tests.fixtures import make_model

    tv = v2_pipeline(64, 56, "bilinear")
    path = make_model(tmp_path / "m.onnx", image_mode="RGB", size=56, spec=E.from_torchvision(tv).to_spec())
    model = Model(path)
    assert [s.get("backend") for s in model.metadata.preprocessing["transforms"]][1] == "tensor"
    img = image_factory(70, 90, "RGB", seed=7)
    parity.check(model.preprocess(img), tv(PIL.Image.fromarray(img)).numpy(), "model file")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: E.Resize(5, "box", backend="tensor"), ValueError, "backend 'tensor' supports interpolation"),
        (lambda: E.Resize(5, antialias=False, backend="tensor"), ValueError, "antialiased kernels only"),
        (lambda: E.Resize(5, backend="cuda"), ValueError, "backend must be one of"),
        (lambda: E.Compose([E.ToTensor(), E.Resize(5)]), ValueError, "backend='tensor'"),
        (
            lambda: E.from_torchvision(T.Compose([T.PILToTensor(), T.Resize(5)])),
            ValueError,
            "v1: float32 kernel",
        ),
        (lambda: E.from_torchvision(T2.ToDtype({torch.Tensor: torch.float32})), ValueError, "per-type dtype"),
        (lambda: E.from_torchvision(T2.Compose([T2.ToImage(), T2.Grayscale()])), ValueError, "on a tensor"),
        (lambda: E.from_torchvision(T2.Resize(5), backend="gpu"), ValueError, "backend must be one of"),
        (lambda: E.ToDtype("float32", scale=1), TypeError, "scale must be a bool"),
        (lambda: E.functional.resize(np.zeros((2, 2), np.int32), 4, backend="tensor"), TypeError, "dtype"),
    ],
)
def test_refusals(make, error, match):
    with pytest.raises(error, match=match):
        make()
