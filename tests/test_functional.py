"""edgeinfer.transforms.functional against torchvision.transforms.functional on the same pixels, exact.

Each function takes the arguments torchvision's function of the same name takes; images go in as arrays
and as PIL images, tensors as arrays (torch tensors for torchvision).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from edgeinfer.transforms import functional as F
from tests.fixtures import IMAGENET, INTERPOLATIONS, MODES_8BIT, MODES_ALL, TENSORS, as_numpy, to_pil


def check_image_function(parity, ours, theirs, img: np.ndarray, what: str) -> None:
    """``ours`` on the array and on the PIL image both equal ``theirs`` (torchvision) on the PIL image."""
    expected = as_numpy(theirs(to_pil(img)))
    parity.check(ours(img), expected, what)
    parity.check(ours(to_pil(img)), expected, what + " (PIL input)")


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mode", MODES_8BIT + ("I", "F"))
def test_resize(parity, image_factory, mode, interpolation):
    theirs = TF.InterpolationMode(interpolation)
    for size, max_size in [(5, None), ([12], None), ((9, 4), None), (6, 8), ((17, 11), None)]:
        check_image_function(
            parity,
            lambda x, size=size, max_size=max_size: F.resize(x, size, interpolation, max_size),
            lambda x, size=size, max_size=max_size: TF.resize(x, size, theirs, max_size),
            image_factory(17, 11, mode, seed=len(str(size))),
            f"resize {size} {max_size} {mode} {interpolation}",
        )


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize(
    ("shape", "size", "region"),
    [
        ((13, 19), (24, 30), (0, 0, 24, 30)),  # the whole output
        ((13, 19), (24, 30), (5, 7, 1, 1)),
        ((40, 50), (9, 8), (2, 1, 6, 7)),
        ((40, 50), 9, (0, 3, 9, 5)),
        ((12, 12), (12, 12), (3, 2, 4, 9)),  # no resize: a window of the image itself
    ],
    ids=str,
)
def test_resize_region_is_torchvisions_crop_of_the_resize(
    parity, image_factory, shape, size, region, interpolation
):
    img = image_factory(*shape, "RGBA", seed=shape[0])
    theirs = TF.InterpolationMode(interpolation)
    check_image_function(
        parity,
        lambda x: F.resize(x, size, interpolation, region=region),
        lambda x: TF.crop(TF.resize(x, size, theirs), *region),
        img,
        f"resize {shape} → {size} region {region} {interpolation}",
    )


@pytest.mark.parametrize("mode", MODES_ALL)
def test_center_crop(parity, image_factory, mode):
    img = image_factory(9, 8, mode, seed=3)
    for output_size in [1, 4, (3, 8), [6], (9, 2), 10, (15, 7), (2, 20)]:
        check_image_function(
            parity,
            lambda x, output_size=output_size: F.center_crop(x, output_size),
            lambda x, output_size=output_size: TF.center_crop(x, output_size),
            img,
            f"center_crop {output_size} {mode}",
        )


@pytest.mark.parametrize("image_size", [(9, 8), (8, 9), (1, 1), (6, 6)], ids=str)
def test_center_crop_box_is_the_window_torchvision_keeps(image_size):
    """Every pixel numbered: the window read from the box equals torchvision's crop, zeros outside."""
    h, w = image_size
    numbered = np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w)
    for output_size in [1, 4, (3, 8), (8, 3), 9, (9, 2), (10, 10), (15, 7), (2, 20)]:
        expected = np.asarray(TF.center_crop(Image.fromarray(numbered), output_size))
        top, left, height, width = F.center_crop_box(image_size, output_size)
        window = np.zeros((height, width), np.int32)
        for y in range(height):
            for x in range(width):
                if 0 <= top + y < h and 0 <= left + x < w:
                    window[y, x] = numbered[top + y, left + x]
        assert np.array_equal(window, expected), (output_size, top, left, height, width)


@pytest.mark.parametrize("padding_mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("mode", MODES_ALL)
def test_pad(parity, image_factory, mode, padding_mode):
    img = image_factory(6, 5, mode, seed=1)
    channels = {"LA": 2, "RGB": 3, "RGBA": 4}.get(mode, 1)
    fill = 300 if channels == 1 else tuple(40 * c + 0.5 for c in range(channels))
    for padding in [2, (1, 3), (0, 2, 4, 1), (-1, 2, 1, -2)]:
        check_image_function(
            parity,
            lambda x, padding=padding: F.pad(x, padding, fill, padding_mode),
            lambda x, padding=padding: TF.pad(x, padding, fill, padding_mode),
            img,
            f"pad {padding} {fill} {padding_mode} {mode}",
        )


@pytest.mark.parametrize("num_output_channels", [1, 3])
@pytest.mark.parametrize("mode", MODES_ALL)
def test_rgb_to_grayscale(parity, image_factory, mode, num_output_channels):
    img = image_factory(7, 12, mode, seed=5, kind="noise")
    check_image_function(
        parity,
        lambda x: F.rgb_to_grayscale(x, num_output_channels),
        lambda x: TF.rgb_to_grayscale(x, num_output_channels),
        img,
        f"rgb_to_grayscale {mode} {num_output_channels}",
    )


@pytest.mark.parametrize("mode", MODES_ALL)
def test_to_tensor_pil_to_tensor_and_get_dimensions(parity, image_factory, mode):
    img = image_factory(5, 9, mode, seed=2, kind="noise")
    check_image_function(parity, F.to_tensor, TF.to_tensor, img, f"to_tensor {mode}")
    check_image_function(parity, F.pil_to_tensor, TF.pil_to_tensor, img, f"pil_to_tensor {mode}")
    assert F.get_dimensions(img) == F.get_dimensions(to_pil(img)) == TF.get_dimensions(to_pil(img))


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (np.uint8, torch.float32),
        (np.uint8, torch.float64),
        (np.float32, torch.uint8),
        (np.float64, torch.int16),
        (np.int32, torch.uint8),
        (np.uint8, torch.int32),
        (np.int16, torch.float32),
    ],
)
def test_convert_image_dtype(parity, src, dst):
    rng = np.random.default_rng(4)
    if np.dtype(src).kind == "f":
        x = np.concatenate([rng.uniform(0, 1, 500), [0.0, 1.0]]).astype(src)
    else:
        info = np.iinfo(src)
        x = np.concatenate([rng.integers(max(info.min, 0), info.max, 500, endpoint=True), [0, info.max]])
    x = x.astype(src).reshape(1, 2, -1)
    expected = TF.convert_image_dtype(torch.from_numpy(x), dst).numpy()
    parity.check(F.convert_image_dtype(x, dst), expected, f"convert_image_dtype {x.dtype} → {dst}")


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize(
    ("mean", "std", "shape"),
    [(*IMAGENET, (3, 6, 5)), ([0.5], [0.25], (2, 3, 4)), ([0.1, 0.2], [0.3, 0.4], (5, 2, 3, 3))],
    ids=str,
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize(parity, mean, std, shape, dtype, inplace):
    x = np.random.default_rng(6).uniform(-0.3, 1.3, shape).astype(dtype)
    theirs = torch.from_numpy(x.copy())
    expected = TF.normalize(theirs, mean, std, inplace).numpy()
    out = F.normalize(x, mean, std, inplace)
    parity.check(out, expected, f"normalize {mean} {std} {shape} {dtype.__name__} inplace={inplace}")
    assert (out is x) == inplace
    if inplace:
        parity.check(x, theirs.numpy(), "normalize inplace writes into its input, as torchvision's")
    else:  # mean and std given as float arrays (what the Compose planner passes)
        arrays = np.asarray(mean, np.float64), np.asarray(std, dtype)
        parity.check(F.normalize(x, *arrays), expected, "normalize with array mean/std")


@pytest.mark.parametrize(("name", "make", "mode"), TENSORS, ids=[t[0] for t in TENSORS])
def test_to_pil_image(parity, name, make, mode):
    x = make(np.random.default_rng(8))
    parity.check(F.to_pil_image(x, mode), as_numpy(TF.to_pil_image(torch.from_numpy(x), mode)), name)


@pytest.mark.parametrize(
    ("shape", "dtype", "mode"),
    [
        ((5, 6), np.uint8, None),
        ((5, 6, 3), np.uint8, "RGB"),
        ((5, 6, 4), np.uint8, None),
        ((5, 6, 2), np.uint8, "LA"),
    ],
    ids=str,
)
def test_to_pil_image_channels_last_reads_arrays_as_torchvision(parity, shape, dtype, mode):
    """torchvision reads an ndarray (not a tensor) as H×W×C: so does ``channels_last=True``."""
    x = np.random.default_rng(9).integers(0, 256, shape).astype(dtype)
    expected = as_numpy(TF.to_pil_image(x, mode))
    parity.check(F.to_pil_image(x, mode, channels_last=True), expected, f"to_pil_image ndarray {shape}")


IMG = np.zeros((4, 5, 3), np.uint8)
TENSOR = np.zeros((3, 4, 5), np.float32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: F.resize(IMG, -2), ValueError, "-2"),
        (lambda: F.resize(IMG, 2.5), TypeError, "2.5"),
        (lambda: F.resize(IMG, 3, "cubic"), ValueError, "cubic"),
        (lambda: F.resize(IMG, 3, pass_order="pillow9"), ValueError, "pillow9"),
        (lambda: F.resize(IMG, (3, 3), region=(0, 0, 4, 1)), ValueError, r"\(0, 0, 4, 1\)"),
        (lambda: F.resize(IMG, (3, 3), region=(0, 0, 1)), TypeError, r"\(0, 0, 1\)"),
        (lambda: F.resize(IMG, (3, 3), region=(0, 0.5, 1, 1)), TypeError, "0.5"),
        (lambda: F.resize([[1]], 3), TypeError, "list"),
        (lambda: F.center_crop(IMG, (1, 2, 3)), ValueError, r"\(1, 2, 3\)"),
        (lambda: F.center_crop(IMG, 0), ValueError, "0"),
        (lambda: F.center_crop_box((4, 5), "a"), TypeError, "'a'"),
        (lambda: F.pad(IMG, 1.5), TypeError, "1.5"),
        (lambda: F.pad(IMG, 1, fill=(1, 2)), ValueError, "2 != 3"),
        (lambda: F.pad(IMG, 1, padding_mode="wrap"), ValueError, "wrap"),
        (lambda: F.pad(IMG, -3), ValueError, "-3"),
        (lambda: F.rgb_to_grayscale(IMG, 2), ValueError, "2"),
        (lambda: F.to_tensor(np.zeros((4, 5), np.float64)), TypeError, "float64"),
        (lambda: F.convert_image_dtype(TENSOR, "complex64"), ValueError, "complex64"),
        (lambda: F.convert_image_dtype(IMG.tolist()), TypeError, "list"),
        (lambda: F.normalize(TENSOR, [0.5, 0.5], [0.2, 0.2]), ValueError, "3 channels"),
        (lambda: F.normalize(TENSOR, [0.5], [0.0]), ValueError, "zero"),
        (lambda: F.normalize(TENSOR, "0.5", [0.2]), TypeError, "'0.5'"),
        (lambda: F.normalize(TENSOR, np.array([1, 2, 3]), [0.2]), TypeError, r"array\(\[1, 2, 3\]\)"),
        (lambda: F.normalize(TENSOR, np.zeros((3, 1)), [0.2]), TypeError, "mean"),
        (lambda: F.normalize(IMG.transpose(2, 0, 1), [0.5], [0.2]), TypeError, "uint8"),
        (lambda: F.normalize(TENSOR[0], [0.5], [0.2]), ValueError, r"\(4, 5\)"),
        (lambda: F.to_pil_image(TENSOR, "CMYK"), ValueError, "CMYK"),
        (lambda: F.to_pil_image(TENSOR, 3), TypeError, "3"),
        (lambda: F.to_pil_image(Image.new("L", (2, 2))), TypeError, "ToTensor"),
    ],
)
def test_bad_arguments_raise_naming_the_value(call, error, match):
    with pytest.raises(error, match=match):
        call()
