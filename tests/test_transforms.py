"""Parity of edgeinfer.transforms with the real torchvision (v1 on PIL images, v2 spot checks).

Every comparison goes through the ``parity`` fixture: same dtype, same shape, identical values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import edgeinfer.transforms as E
from tests.fixtures import IMAGENET, INTERPOLATIONS, MODES_8BIT, MODES_ALL, TENSORS, as_numpy, to_pil


def check_both(parity, ours, theirs, img: np.ndarray, what: str) -> None:
    """edgeinfer on the array and on the PIL image both equal torchvision on the PIL image."""
    expected = as_numpy(theirs(to_pil(img)))
    parity.check(ours(img), expected, what)
    parity.check(ours(to_pil(img)), expected, what + " (PIL input)")


# --------------------------------------------------------------------------------------------------
# Resize

RESIZE_GEOMETRIES = [
    # (height, width, size, max_size)
    (1, 1, 5, None),  # 1 px up
    (1, 17, 4, None),  # 1×N
    (23, 1, 3, None),  # N×1
    (1, 9, (1, 1), None),
    (31, 47, 16, None),  # downscale
    (13, 17, 40, None),  # upscale
    (60, 20, (7, 50), None),  # down one axis, up the other
    (90, 20, (10, 18), None),  # tall downscale: Pillow 13 runs the vertical pass first
    (37, 29, 29, None),  # same size: unchanged
    (40, 30, 12, 14),  # max_size caps the longer side
]


@pytest.mark.parametrize("kind", ["real", "noise"])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mode", MODES_8BIT)
@pytest.mark.parametrize("geometry", RESIZE_GEOMETRIES, ids=str)
def test_resize_matches_torchvision(parity, geometry, mode, interpolation, kind, image_factory):
    h, w, size, max_size = geometry
    img = image_factory(h, w, mode, seed=h * 131 + w, kind=kind)
    ours = E.Resize(size, interpolation, max_size=max_size)
    theirs = T.Resize(size, T.InterpolationMode(interpolation), max_size=max_size)
    check_both(parity, ours, theirs, img, f"Resize{geometry} {mode} {interpolation} {kind}")


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mode", ["I", "F"])
@pytest.mark.parametrize("geometry", [(9, 14, 5, None), (6, 5, (13, 3), None), (1, 7, 3, None)], ids=str)
def test_resize_32bit_modes_match_torchvision(parity, geometry, mode, interpolation, image_factory):
    h, w, size, max_size = geometry
    img = image_factory(h, w, mode, seed=w)
    ours = E.Resize(size, interpolation)
    check_both(parity, ours, T.Resize(size, T.InterpolationMode(interpolation)), img, f"Resize {mode}")


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "lanczos", "nearest"])
@pytest.mark.parametrize("shape", [(480, 640, 3), (500, 375, 4)])
def test_resize_photo_sizes_match_torchvision(parity, shape, interpolation, image_factory):
    mode = {3: "RGB", 4: "RGBA"}[shape[2]]
    img = image_factory(shape[0], shape[1], mode, seed=7)
    ours, theirs = E.Resize(256, interpolation), T.Resize(256, T.InterpolationMode(interpolation))
    check_both(parity, ours, theirs, img, f"Resize(256) {shape} {interpolation}")


def test_resize_interpolation_forms_agree(parity, image_factory):
    img = image_factory(20, 30, "RGB", seed=3)
    expected = as_numpy(T.Resize(11, T.InterpolationMode.BICUBIC)(to_pil(img)))
    for form in ("bicubic", "BICUBIC", T.InterpolationMode.BICUBIC, Image.Resampling.BICUBIC, 3):
        parity.check(E.Resize(11, form)(img), expected, f"interpolation given as {form!r}")


def test_resize_same_size_returns_the_image_unchanged(image_factory):
    img = image_factory(8, 6, "RGB")
    assert E.Resize(6)(img) is img
    assert E.Resize((8, 6), "lanczos")(img) is img


def test_resize_v2_matches(parity, image_factory):
    img = image_factory(45, 70, "RGBA", seed=11)
    for size in (32, [32], (20, 90)):
        check_both(
            parity, E.Resize(size, "hamming"), T2.Resize(size, T2.InterpolationMode.HAMMING), img, "v2"
        )
    check_both(parity, E.Resize(None, max_size=40), T2.Resize(None, max_size=40), img, "v2 size=None")


def test_resize_pillow12_pass_order_matches_recorded_pillow12(parity):
    """Resize(pass_order="pillow12"), also as read back from its spec, against outputs a real Pillow 12
    recorded (tests/data)."""
    data = np.load(Path(__file__).parent / "data" / "pillow12_resize.npz")
    differing = 0
    for i in range(sum(1 for key in data.files if key.startswith("in_"))):
        img, (h, w), want = data[f"in_{i}"], data[f"size_{i}"].tolist(), data[f"out_{i}"]
        name = Image.Resampling(int(data[f"filter_{i}"])).name.lower()
        out12 = E.from_spec(
            {"type": "Resize", "size": [h, w], "interpolation": name, "pass_order": "pillow12"}
        )(img)
        parity.check(out12, want, f"pillow12 {img.shape} {name}")
        differing += not np.array_equal(E.Resize((h, w), name)(img), want)
    assert differing >= 8  # tall downscales: the two Pillow generations differ, so the option matters


# --------------------------------------------------------------------------------------------------
# CenterCrop, Pad, Grayscale


@pytest.mark.parametrize("crop", [1, 3, (4, 6), 8, (12, 2), (2, 12), 15, [5]], ids=str)
@pytest.mark.parametrize("mode", MODES_ALL)
@pytest.mark.parametrize("shape", [(7, 9), (8, 8), (1, 5), (10, 3)], ids=str)
def test_center_crop_matches_torchvision(parity, shape, mode, crop, image_factory):
    img = image_factory(*shape, mode, seed=shape[0])
    check_both(parity, E.CenterCrop(crop), T.CenterCrop(crop), img, f"CenterCrop({crop}) {shape} {mode}")


def test_center_crop_uses_bankers_rounding(parity, image_factory):
    for h in (256, 257, 258, 259, 225, 227):
        img = image_factory(h, 230, "L", seed=h, kind="noise")
        check_both(parity, E.CenterCrop(224), T.CenterCrop(224), img, f"CenterCrop(224) from height {h}")


PADDINGS = [1, (2, 0), (1, 2, 3, 4), (0, 0, 0, 0), (-1, 2, 0, -2), [3], (7, 1)]


@pytest.mark.parametrize("padding_mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("mode", MODES_ALL)
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
def test_pad_matches_torchvision(parity, padding, mode, padding_mode, image_factory):
    img = image_factory(5, 6, mode, seed=len(str(padding)))
    channels = {"LA": 2, "RGB": 3, "RGBA": 4}.get(mode, 1)
    fills = [0, 7, 300, 5.9, -3, tuple(10 * c + 5.5 for c in range(1, channels + 1))]
    for fill in fills if padding_mode == "constant" else [0]:
        ours, theirs = E.Pad(padding, fill, padding_mode), T.Pad(padding, fill, padding_mode)
        check_both(parity, ours, theirs, img, f"Pad({padding}, {fill}, {padding_mode}) {mode}")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["real", "noise"])
@pytest.mark.parametrize("mode", MODES_ALL)
def test_grayscale_matches_torchvision(parity, mode, kind, channels, image_factory):
    img = image_factory(17, 23, mode, seed=channels, kind=kind)
    check_both(parity, E.Grayscale(channels), T.Grayscale(channels), img, f"Grayscale({channels}) {mode}")


def test_grayscale_every_rgb_value(parity):
    # 2**24 colours would be slow; every R and G with a sweep of B covers the L24 rounding.
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(0, 256, 5), indexing="ij")
    img = np.stack([r, g, b], axis=-1).reshape(256, -1, 3).astype(np.uint8)
    check_both(parity, E.Grayscale(), T.Grayscale(), img, "Grayscale over all R, G")


# --------------------------------------------------------------------------------------------------
# Tensors: ToTensor, PILToTensor, ConvertImageDtype, Normalize, ToPILImage


@pytest.mark.parametrize("mode", MODES_ALL)
def test_to_tensor_and_pil_to_tensor_match_torchvision(parity, mode, image_factory):
    img = image_factory(6, 11, mode, seed=2, kind="noise")
    check_both(parity, E.ToTensor(), T.ToTensor(), img, f"ToTensor {mode}")
    check_both(parity, E.PILToTensor(), T.PILToTensor(), img, f"PILToTensor {mode}")


def test_to_tensor_every_byte_value(parity):
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    check_both(parity, E.ToTensor(), T.ToTensor(), img, "ToTensor 0..255")


CONVERSIONS = [
    ("uint8", "float32"),
    ("uint8", "float64"),
    ("float32", "uint8"),
    ("float64", "uint8"),
    ("float32", "float64"),
    ("float64", "float32"),
    ("uint8", "int32"),
    ("int32", "uint8"),
    ("int16", "uint8"),
    ("uint8", "int16"),
    ("int16", "float32"),
    ("float32", "int16"),
    ("int64", "int16"),
    ("uint8", "int8"),
    ("float32", "int8"),
]


@pytest.mark.parametrize(("src", "dst"), CONVERSIONS)
def test_convert_image_dtype_matches_torchvision(parity, src, dst):
    rng = np.random.default_rng(4)
    if np.dtype(src).kind == "f":
        x = np.concatenate([rng.uniform(0, 1, 3000), np.arange(256) / 255, [0.0, 1.0]]).astype(src)
    else:
        info = np.iinfo(src)
        x = rng.integers(max(info.min, 0), info.max, 3000, endpoint=True).astype(src)
        x = np.concatenate([x, [0, info.max]]).astype(src)
    x = x.reshape(1, 1, -1)
    expected = T.ConvertImageDtype(getattr(torch, dst))(torch.from_numpy(x)).numpy()
    parity.check(E.ConvertImageDtype(dst)(x), expected, f"ConvertImageDtype {src}→{dst}")


@pytest.mark.parametrize(
    ("mean", "std", "shape"),
    [
        (*IMAGENET, (3, 7, 9)),
        ([0.5], [0.5], (3, 4, 4)),
        ([0.2860], [0.3530], (1, 28, 28)),
        ([0.1, 0.2], [0.3, 0.7], (2, 5, 5)),
        ([0.5], [0.1, 0.2, 0.3], (3, 4, 2)),
        (*IMAGENET, (4, 3, 6, 5)),  # a batch
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_matches_torchvision(parity, mean, std, shape, dtype):
    x = np.random.default_rng(5).uniform(-0.2, 1.2, shape).astype(dtype)
    expected = T.Normalize(mean, std)(torch.from_numpy(x)).numpy()
    parity.check(E.Normalize(mean, std)(x), expected, f"Normalize {mean} {std} {dtype.__name__}")


def test_normalize_inplace_writes_into_the_input(parity):
    x = np.random.default_rng(6).uniform(0, 1, (3, 4, 4)).astype(np.float32)
    expected = T.Normalize(*IMAGENET)(torch.from_numpy(x)).numpy()
    out = E.Normalize(*IMAGENET, inplace=True)(x)
    assert out is x
    parity.check(x, expected, "Normalize inplace")


@pytest.mark.parametrize(("name", "make", "mode"), TENSORS, ids=[t[0] for t in TENSORS])
def test_to_pil_image_matches_torchvision(parity, name, make, mode):
    x = make(np.random.default_rng(8))
    expected = as_numpy(T.ToPILImage(mode)(torch.from_numpy(x)))
    parity.check(E.ToPILImage(mode)(x), expected, f"ToPILImage {name}")


@pytest.mark.parametrize("mode", MODES_8BIT)
def test_uint8_round_trip_through_tensor_matches_torchvision(parity, mode, image_factory):
    img = image_factory(9, 7, mode, kind="noise")
    ours, theirs = E.Compose([E.ToTensor(), E.ToPILImage()]), T.Compose([T.ToTensor(), T.ToPILImage()])
    check_both(parity, ours, theirs, img, f"ToTensor then ToPILImage {mode}")


# --------------------------------------------------------------------------------------------------
# Pipelines


def issue_pipeline(T_):
    return [
        T_.ToPILImage(),
        T_.Grayscale(3),
        T_.Resize(256),
        T_.CenterCrop(224),
        T_.ToTensor(),
        T_.Normalize(*IMAGENET),
    ]


def test_issue_pipeline_on_fashion_mnist(parity, fashion_mnist_images):
    theirs = T.Compose(issue_pipeline(T))
    ours = E.from_torchvision(theirs)
    for i, img in enumerate(fashion_mnist_images):
        parity.check(ours(img), theirs(img).numpy(), f"issue pipeline on Fashion-MNIST test image {i}")


@pytest.mark.parametrize("kind", ["real", "noise"])
def test_issue_pipeline_on_synthetic_digits(parity, kind, image_factory):
    theirs = T.Compose(issue_pipeline(T))
    ours = E.Compose(issue_pipeline(E))
    for seed in range(6):
        img = image_factory(28, 28, "L", seed=seed, kind=kind)
        parity.check(ours(img), theirs(img).numpy(), f"issue pipeline {kind} {seed}")


@pytest.mark.parametrize("mode", ["RGB", "L"])  # what the runtime's loader converts every image to
def test_pipeline_starting_with_to_pil_image_reads_image_arrays_channels_last(parity, mode, image_factory):
    """An array loader + [ToPILImage, ...] (train/transfer.py's folder pipeline): torchvision reads the
    ndarray as H×W×C, and so must edgeinfer when the runtime feeds it the decoded image."""
    mean, std = IMAGENET if mode == "RGB" else ([0.5], [0.25])
    theirs = T.Compose([T.ToPILImage(), T.Resize(72), T.CenterCrop(64), T.ToTensor(), T.Normalize(mean, std)])
    ours = E.from_torchvision(theirs)
    for seed, (h, w) in enumerate([(90, 70), (64, 201), (5, 3)]):
        img = image_factory(h, w, mode, seed=seed)
        parity.check(ours(img), theirs(img).numpy(), f"ToPILImage-first {mode} {h}x{w}")


PIPELINES = {
    "imagenet": lambda T_: [T_.Resize(256), T_.CenterCrop(224), T_.ToTensor(), T_.Normalize(*IMAGENET)],
    "crop larger": lambda T_: [
        T_.Resize(20, T_.InterpolationMode.BICUBIC),
        T_.CenterCrop((40, 18)),
        T_.ToTensor(),
    ],
    "gray3 pad": lambda T_: [
        T_.Grayscale(3),
        T_.Pad((3, 1), fill=9, padding_mode="constant"),
        T_.Resize(31),
        T_.CenterCrop(29),
        T_.ToTensor(),
        T_.Normalize([0.5], [0.25]),
    ],
    "gray3 colour pad": lambda T_: [T_.Grayscale(3), T_.Pad(2, fill=(1, 2, 3)), T_.PILToTensor()],
    "gray3 reflect": lambda T_: [
        T_.Grayscale(3),
        T_.Pad((2, 1, 0, 4), padding_mode="reflect"),
        T_.Grayscale(1),
        T_.Resize((9, 13), T_.InterpolationMode.LANCZOS),
        T_.ToTensor(),
    ],
    "gray3 image out": lambda T_: [T_.Grayscale(3), T_.Resize(12, T_.InterpolationMode.BOX)],
    "pil to tensor": lambda T_: [
        T_.Resize(17, T_.InterpolationMode.HAMMING),
        T_.CenterCrop(15),
        T_.PILToTensor(),
        T_.ConvertImageDtype(torch.float32),
        T_.Normalize(*IMAGENET),
    ],
    "round trip": lambda T_: [
        T_.ToTensor(),
        T_.ToPILImage(),
        T_.Resize(8, T_.InterpolationMode.NEAREST),
        T_.Pad(1, padding_mode="symmetric"),
        T_.ToTensor(),
    ],
}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipelines_match_torchvision(parity, name, mode, image_factory):
    tv = T.Compose(PIPELINES[name](T))
    ours = E.from_torchvision(tv)
    steps = [E.from_torchvision(t) for t in tv.transforms]
    for seed, (h, w) in enumerate([(300, 260), (19, 33), (1, 12)]):
        img = image_factory(h, w, mode, seed=seed, kind="real" if seed % 2 == 0 else "noise")
        try:
            expected = as_numpy(tv(to_pil(img)))
        except (ValueError, TypeError, RuntimeError) as e:  # e.g. colour fill on an L image
            with pytest.raises(type(e) if not isinstance(e, RuntimeError) else ValueError):
                ours(img)
            continue
        parity.check(ours(img), expected, f"pipeline {name} {mode} {h}×{w}")
        one_by_one = img
        for step in steps:
            one_by_one = step(one_by_one)
        parity.check(one_by_one, expected, f"pipeline {name} {mode} {h}×{w} one by one")


@pytest.mark.filterwarnings("ignore:The transform `ToTensor\\(\\)` is deprecated")
def test_v2_pipeline_spot_checks(parity, image_factory):
    img = image_factory(120, 90, "RGB", seed=12)
    v2 = T2.Compose(
        [T2.Resize(64, antialias=True), T2.CenterCrop(56), T2.Pad(2, fill=3), T2.Grayscale(3), T2.ToImage()]
    )
    parity.check(E.from_torchvision(v2)(img), v2(to_pil(img)).numpy(), "v2 ToImage pipeline")
    v2 = T2.Compose([T2.Resize(64), T2.CenterCrop(56), T2.ToTensor(), T2.Normalize(*IMAGENET)])
    parity.check(E.from_torchvision(v2)(img), v2(to_pil(img)).numpy(), "v2 ToTensor pipeline")


# --------------------------------------------------------------------------------------------------
# Random pipelines (hypothesis)


@st.composite
def random_pipelines(draw):
    mode = draw(st.sampled_from(MODES_8BIT + ("I", "F")))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    steps = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["resize", "crop", "pad", "gray"]))
        if kind == "resize":
            size = draw(st.one_of(st.integers(1, 48), st.tuples(st.integers(1, 48), st.integers(1, 48))))
            steps.append(("Resize", (size, draw(st.sampled_from(INTERPOLATIONS)))))
        elif kind == "crop":
            steps.append(
                ("CenterCrop", (draw(st.one_of(st.integers(1, 48), st.tuples(*[st.integers(1, 48)] * 2))),))
            )
        elif kind == "pad":
            padding = draw(st.one_of(st.integers(0, 5), st.tuples(*[st.integers(0, 5)] * 4)))
            padding_mode = draw(st.sampled_from(["constant", "edge", "reflect", "symmetric"]))
            steps.append(("Pad", (padding, draw(st.integers(0, 255)), padding_mode)))
        else:
            steps.append(("Grayscale", (draw(st.sampled_from([1, 3])),)))
    ending = draw(st.sampled_from(["image", "tensor", "normalize"]))
    seed = draw(st.integers(0, 2**16))
    return mode, h, w, steps, ending, seed, draw(st.sampled_from(["real", "noise"]))


def build(T_, steps, ending):
    out = []
    for name, args in steps:
        if name == "Resize":
            out.append(T_.Resize(args[0], T.InterpolationMode(args[1])))
        else:
            out.append(getattr(T_, name)(*args))
    if ending != "image":
        out.append(T_.ToTensor())
    if ending == "normalize":
        out.append(T_.Normalize([0.3], [0.7]))
    return out


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=random_pipelines())
def test_random_pipelines_match_torchvision(parity, case, image_factory):
    mode, h, w, steps, ending, seed, kind = case
    img = image_factory(h, w, mode, seed=seed, kind=kind)
    ours = E.Compose(build(E, steps, ending))
    try:
        expected = as_numpy(T.Compose(build(T, steps, ending))(to_pil(img)))
    except (TypeError, ValueError) as e:  # e.g. Normalize on the int32 tensor of an I image
        with pytest.raises(type(e)):
            ours(img)
        return
    parity.check(ours(img), expected, f"random pipeline {case}")


# --------------------------------------------------------------------------------------------------
# Bad arguments and inputs


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: E.Resize(-3), ValueError, "-3"),
        (lambda: E.Resize(0), ValueError, "0"),
        (lambda: E.Resize((10, 0)), ValueError, "0"),
        (lambda: E.Resize((1, 2, 3)), ValueError, r"\(1, 2, 3\)"),
        (lambda: E.Resize(2.5), TypeError, "2.5"),
        (lambda: E.Resize(10, "cubic"), ValueError, "cubic"),
        (lambda: E.Resize(10, 9), ValueError, "9"),
        (lambda: E.Resize(10, max_size=10), ValueError, "10"),
        (lambda: E.Resize((10, 12), max_size=20), ValueError, "max_size"),
        (lambda: E.Resize(10, pass_order="pillow11"), ValueError, "pillow11"),
        (lambda: E.CenterCrop(-1), ValueError, "-1"),
        (lambda: E.CenterCrop((1, 2, 3)), ValueError, r"\(1, 2, 3\)"),
        (lambda: E.CenterCrop("a"), TypeError, "'a'"),
        (lambda: E.Pad((1, 2, 3)), ValueError, r"\(1, 2, 3\)"),
        (lambda: E.Pad(1.5), TypeError, "1.5"),
        (lambda: E.Pad(1, fill="red"), TypeError, "red"),
        (lambda: E.Pad(1, padding_mode="wrap"), ValueError, "wrap"),
        (lambda: E.Grayscale(2), ValueError, "2"),
        (lambda: E.Normalize([0.5, 0.5], [0.1, 0.2, 0.3]), ValueError, "0.3"),
        (lambda: E.Normalize([], []), TypeError, r"\[\]"),
        (lambda: E.Normalize([0.5], [0.0]), ValueError, "0.0"),
        (lambda: E.ConvertImageDtype("complex64"), ValueError, "complex64"),
        (lambda: E.ConvertImageDtype(object()), TypeError, "object"),
        (lambda: E.ToPILImage(3), TypeError, "3"),
        (lambda: E.Compose([T.ToTensor()]), TypeError, "ToTensor"),
        (lambda: E.Compose([E.ToTensor(), E.Resize(5)]), ValueError, "Resize"),
        (lambda: E.Compose([E.Resize(5), E.Normalize([0.5], [0.5])]), ValueError, "Normalize"),
    ],
)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("transform", "img", "error", "match"),
    [
        (E.Resize(5), np.zeros((0, 4), np.uint8), ValueError, "empty"),
        (E.CenterCrop(2), np.zeros((4, 4, 0), np.uint8), ValueError, "empty"),
        (E.Resize(5), np.zeros((4, 4), np.float64), TypeError, "float64"),
        (E.Resize(5), np.zeros((4, 4, 3), np.float32), TypeError, "float32"),
        (E.ToTensor(), np.zeros((4, 4, 5), np.uint8), ValueError, r"\(4, 4, 5\)"),
        (E.ToTensor(), np.zeros((4, 4, 1), np.uint8), ValueError, r"img\[\.\.\., 0\]"),
        (E.Grayscale(), np.zeros((2, 4, 4, 3), np.uint8), ValueError, r"\(2, 4, 4, 3\)"),
        (E.Resize(5), [[1, 2]], TypeError, "list"),
        (E.Normalize([0.5], [0.5]), np.zeros((3, 4, 4), np.uint8), TypeError, "uint8"),
        (E.Normalize([0.5], [0.5]), np.zeros((4, 4), np.float32), ValueError, r"\(4, 4\)"),
        (E.Normalize(*IMAGENET), np.zeros((2, 4, 4), np.float32), ValueError, "2 channels"),
        (E.Normalize([0.5], [0.5]), Image.new("L", (3, 3)), TypeError, "ToTensor"),
        (E.ToPILImage(), np.zeros((5, 4, 4), np.uint8), ValueError, "5"),
        (E.ToPILImage(), np.zeros((1, 4, 4), np.uint16), TypeError, "uint16"),
        (E.ToPILImage("CMYK"), np.zeros((4, 4, 4), np.uint8), ValueError, "CMYK"),
        (E.ConvertImageDtype("int32"), np.zeros((1, 2, 2), np.float32), ValueError, "float32"),
        (E.Pad(-3), np.zeros((4, 4), np.uint8), ValueError, "-3"),
        (E.Pad(1, fill=(1, 2)), np.zeros((4, 4, 3), np.uint8), ValueError, r"2 != 3"),
        (E.Resize(5), np.zeros((4, 4), np.uint16), ValueError, "I;16"),
    ],
)
def test_bad_inputs_raise(transform, img, error, match):
    with pytest.raises(error, match=match):
        transform(img)


@pytest.mark.parametrize(
    ("mode", "hint"), [("1", "'L'"), ("P", "'RGB'"), ("CMYK", "'RGB'"), ("YCbCr", "'RGB'"), ("I;16B", "'I'")]
)
def test_unsupported_pil_modes_raise_with_a_hint(mode, hint):
    img = Image.new(mode, (4, 3))
    with pytest.raises(ValueError, match=f"{mode!r}.*{hint}"):
        E.ToTensor()(img)


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::-1],
        lambda a: a[:, ::2],
        lambda a: a[..., :3],
        lambda a: a[..., 0],
        lambda a: a[3:40, 5:80, 1:3],
    ],
    ids=["flipped", "every other column", "RGB of RGBA", "one channel", "LA window"],
)
def test_non_contiguous_arrays_match_torchvision(parity, image_factory, view):
    img = view(image_factory(60, 90, "RGBA", seed=9))
    tv = T.Compose(
        [T.Resize(37, T.InterpolationMode.BICUBIC), T.CenterCrop(30), T.ToTensor(), T.Normalize([0.5], [0.2])]
    )
    parity.check(
        E.from_torchvision(tv)(img), tv(to_pil(np.ascontiguousarray(img))).numpy(), "non-contiguous input"
    )


def test_nested_and_empty_compose(parity, image_factory):
    img = image_factory(20, 30, "RGB", seed=4)
    nested = E.Compose(
        [E.Compose([E.Grayscale(3), E.Resize(12)]), E.Compose([E.CenterCrop(10), E.ToTensor()])]
    )
    flat = T.Compose([T.Grayscale(3), T.Resize(12), T.CenterCrop(10), T.ToTensor()])
    parity.check(nested(img), flat(to_pil(img)).numpy(), "nested Compose")
    assert E.Compose([])(img) is img


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I", "F"])
def test_pil_images_are_read_only_where_needed_and_match_torchvision(parity, mode, image_factory):
    """A Compose starting with Resize reads the PIL image's pixels itself (a window of them, or the picked
    rows for NEAREST); a 2100×2100 RGB image is past the 16 MB Pillow keeps in one block."""
    for (h, w), interpolations in (((37, 53), INTERPOLATIONS), ((2100, 2100), ("nearest", "bilinear"))):
        if (h, w) == (2100, 2100) and mode != "RGB":
            continue
        pil = Image.fromarray(image_factory(h, w, mode, seed=h))
        for interpolation in interpolations:
            mode_tv = T.InterpolationMode(interpolation)
            for steps in ([T.Resize(24, mode_tv), T.CenterCrop(20)], [T.Resize((19, 29), mode_tv)]):
                tv = T.Compose(steps)
                parity.check(E.from_torchvision(tv)(pil), np.asarray(tv(pil)), f"{mode} {interpolation}")
