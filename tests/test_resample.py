"""edgeinfer._resample.resize against the real Pillow: every filter, mode and a grid of geometries, exact.

The oracle is the installed Pillow (``Image.fromarray(a).resize((w, h), filter)``); the Pillow <= 12 pass
order is checked against outputs recorded with a real Pillow 12 (tests/data/make_pillow12_expectations.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeinfer._resample import PASS_ORDERS, resize
from edgeinfer.transforms.functional import resize as functional_resize
from tests import resample_reference as reference

FILTERS = {f.name.lower(): f.value for f in Image.Resampling if f.value <= 5}  # torchvision uses these six

MODES = ["L", "LA", "RGB", "RGBA"]
INSTALLED_ORDER = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"
PILLOW12_DATA = Path(__file__).parent / "data" / "pillow12_resize.npz"

# (input height, width) -> (output height, width)
GEOMETRIES = [
    ((1, 1), (1, 1)),
    ((1, 1), (5, 9)),
    ((1, 37), (3, 20)),
    ((37, 1), (20, 3)),
    ((1, 40), (1, 7)),
    ((5, 7), (64, 80)),
    ((120, 90), (3, 2)),
    ((90, 120), (1, 1)),
    ((40, 50), (40, 23)),  # horizontal pass only
    ((40, 50), (71, 50)),  # vertical pass only
    ((30, 40), (30, 40)),  # same size: a copy
    ((13, 17), (200, 150)),
    ((1000, 100), (640, 64)),  # tall: Pillow 13 runs the vertical pass first
    ((1000, 300), (746, 224)),
    ((100, 60), (60, 40)),  # height shrinks by exactly twice the width: still horizontal first
    ((100, 60), (59, 40)),  # one row more: vertical first
    ((375, 500), (256, 341)),  # landscape
    ((500, 375), (341, 256)),  # mild portrait: horizontal first in both versions
]


def pillow_resize(img: np.ndarray, size: tuple[int, int], filter: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), filter))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}->{g[1]}")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_matches_pillow_on_grid(filter_name: str, mode: str, geometry, image_factory, parity) -> None:
    (in_h, in_w), size = geometry
    filter = FILTERS[filter_name]
    for seed, kind in enumerate(("noise", "real")):
        img = image_factory(in_h, in_w, mode, seed=seed, kind=kind)
        want = pillow_resize(img, size, filter)
        parity.check(resize(img, size, filter, pass_order=INSTALLED_ORDER), want, f"{kind} {mode}")
        # An off-centre window, as Resize + CenterCrop asks for one.
        top, left = size[0] // 4, size[1] // 3
        region = (top, left, size[0] - top - size[0] // 5, size[1] - left)
        got = resize(img, size, filter, pass_order=INSTALLED_ORDER, region=region)
        parity.check(got, want[top : top + region[2], left : left + region[3]], f"{kind} {mode} {region}")


@pytest.mark.parametrize("geometry", GEOMETRIES[:12], ids=lambda g: f"{g[0]}->{g[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=["F", "I"])
@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_matches_pillow_in_modes_f_and_i(filter_name: str, dtype, geometry, image_factory, parity) -> None:
    (in_h, in_w), size = geometry
    filter = FILTERS[filter_name]
    rng = np.random.default_rng([in_h, in_w, *size, filter])
    photo = image_factory(in_h, in_w, "L").astype(np.float64) * 1000 - 90_000
    for values in (photo, rng.normal(0, 1e6, (in_h, in_w)), rng.uniform(-50, 300, (in_h, in_w))):
        img = values.astype(dtype)
        want = pillow_resize(img, size, filter)
        parity.check(resize(img, size, filter, pass_order=INSTALLED_ORDER), want, f"mode {img.dtype}")


@st.composite
def resize_cases(draw, largest_input=90, largest_output=130):
    in_h, in_w = draw(st.integers(1, largest_input)), draw(st.integers(1, largest_input))
    out_h, out_w = draw(st.integers(1, largest_output)), draw(st.integers(1, largest_output))
    top, left = draw(st.integers(0, out_h - 1)), draw(st.integers(0, out_w - 1))
    region = (top, left, draw(st.integers(1, out_h - top)), draw(st.integers(1, out_w - left)))
    mode = draw(st.sampled_from(["L", "LA", "RGB", "RGBA", "F", "I"]))
    filter = draw(st.sampled_from(sorted(FILTERS.values())))
    image = (in_h, in_w, mode, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(["noise", "real"])))
    return image, (out_h, out_w), filter, region


@settings(max_examples=1000, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=resize_cases())
def test_random_cases_match_pillow(case, image_factory, parity) -> None:
    (in_h, in_w, mode, seed, kind), size, filter, region = case
    img = image_factory(in_h, in_w, mode, seed=seed, kind=kind)
    want = pillow_resize(img, size, filter)
    parity.check(resize(img, size, filter, pass_order=INSTALLED_ORDER), want, f"{img.shape} -> {size}")
    top, left, height, width = region
    got = resize(img, size, filter, pass_order=INSTALLED_ORDER, region=region)
    parity.check(got, want[top : top + height, left : left + width], f"{img.shape} -> {size} {region}")


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=resize_cases(largest_input=20, largest_output=24))
def test_reference_port_matches_pillow(case, image_factory, parity) -> None:
    """The loop-for-loop port of Resample.c / Geometry.c is itself checked against the installed Pillow."""
    (in_h, in_w, mode, seed, kind), size, filter, _ = case
    img = image_factory(in_h, in_w, mode, seed=seed, kind=kind)
    got = reference.resize(img, size, filter, pass_order=INSTALLED_ORDER)
    parity.check(got, pillow_resize(img, size, filter), f"reference {img.shape} -> {size}")


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=resize_cases(largest_input=24, largest_output=28), pass_order=st.sampled_from(PASS_ORDERS))
def test_fast_paths_match_the_reference_port(case, pass_order, image_factory) -> None:
    """The fast paths (blocked float32 products, direct products, windows) against the plain port, in both
    pass orders (only one of which the installed Pillow can check)."""
    (in_h, in_w, mode, seed, kind), size, filter, region = case
    img = image_factory(in_h, in_w, mode, seed=seed, kind=kind)
    want = reference.resize(img, size, filter, pass_order=pass_order)
    top, left, height, width = region
    got = resize(img, size, filter, pass_order=pass_order, region=region)
    assert np.array_equal(got, want[top : top + height, left : left + width])


def test_reference_port_long_filters_and_tall_pass_order(parity) -> None:
    """Cases the random sizes above miss: filters longer than the direct-product threshold and geometries
    either side of Pillow 13's pass-order rule."""
    rng = np.random.default_rng(7)
    for (in_h, in_w), size in (((2, 2500), (2, 1)), ((100, 60), (60, 40)), ((100, 60), (59, 40))):
        for filter in (2, 1):
            img = rng.integers(0, 256, (in_h, in_w, 3), dtype=np.uint8)
            want = pillow_resize(img, size, filter)
            parity.check(reference.resize(img, size, filter, INSTALLED_ORDER), want, f"reference {size}")
            parity.check(resize(img, size, filter, pass_order=INSTALLED_ORDER), want, f"fast {size}")


def _pillow12_cases() -> list[tuple[np.ndarray, tuple[int, int], int, np.ndarray]]:
    data = np.load(PILLOW12_DATA)
    count = sum(1 for key in data.files if key.startswith("in_"))
    return [
        (data[f"in_{i}"], tuple(data[f"size_{i}"].tolist()), int(data[f"filter_{i}"]), data[f"out_{i}"])
        for i in range(count)
    ]


def test_pillow12_pass_order_matches_recorded_pillow12(parity) -> None:
    cases = _pillow12_cases()
    assert len(cases) >= 10
    for img, size, filter, want in cases:
        parity.check(resize(img, size, filter, pass_order="pillow12"), want, f"pillow12 {img.shape}")
        region = (size[0] // 3, 1, size[0] - size[0] // 3, size[1] - 2)
        got = resize(img, size, filter, pass_order="pillow12", region=region)
        parity.check(got, want[region[0] :, 1 : 1 + region[3]], f"pillow12 {img.shape} {region}")


def test_pillow12_and_pillow13_orders_really_differ(parity) -> None:
    """The recorded tall cases come out differently under Pillow 13, so the pass order is really tested."""
    differing = 0
    for img, size, filter, pillow12 in _pillow12_cases():
        pillow13 = resize(img, size, filter, pass_order="pillow13")
        differing += not np.array_equal(pillow13, pillow12)
        if INSTALLED_ORDER == "pillow13":
            parity.check(pillow13, pillow_resize(img, size, filter), f"pillow13 {img.shape}")
    assert differing >= 8


# Geometries where the float32 fast path meets exact rounding ties (dyadic weights: integer up- and
# downscales) or long filters (wide error margins, so many outputs take the exact float64 route).
TIE_AND_WIDE_GEOMETRIES = [
    ((64, 96), (32, 48)),
    ((60, 90), (20, 30)),
    ((16, 24), (64, 96)),
    ((9, 13), (72, 104)),
    ((700, 40), (3, 5)),
    ((40, 700), (5, 2)),
    ((1, 900), (1, 1)),
    ((2, 1000), (3, 2)),  # just under the taps that take direct float64 products: widest margins
    ((2, 7000), (3, 2)),  # direct products
]


@pytest.mark.parametrize("geometry", TIE_AND_WIDE_GEOMETRIES, ids=lambda g: f"{g[0]}->{g[1]}")
@pytest.mark.parametrize("filter_name", [name for name in FILTERS if name != "nearest"])
def test_rounding_ties_and_long_filters(filter_name: str, geometry, image_factory, parity) -> None:
    (in_h, in_w), size = geometry
    for mode, kind in (("RGB", "noise"), ("RGBA", "real"), ("L", "real")):
        img = image_factory(in_h, in_w, mode, seed=in_h * in_w, kind=kind)
        want = pillow_resize(img, size, FILTERS[filter_name])
        parity.check(
            resize(img, size, FILTERS[filter_name], pass_order=INSTALLED_ORDER), want, f"{kind} {mode}"
        )


@pytest.mark.parametrize("vertical", [False, True], ids=["horizontal", "vertical"])
def test_filters_too_long_for_a_float32_error_bound(vertical: bool, parity) -> None:
    """62094 -> 7 bicubic has ~53000 taps: the worst-case float32 error exceeds 1/2, so no output can be
    trusted to float32 (a margin test on them let output 2 come out one too low)."""
    stripes = ((np.arange(62094) // 8) % 2 * 255).astype(np.uint8)
    img, size = (stripes[:, None], (7, 1)) if vertical else (stripes[None], (1, 7))
    img = np.ascontiguousarray(img)
    parity.check(resize(img, size, 3), pillow_resize(img, size, 3), f"{img.shape} -> {size}")


def test_any_memory_layout_of_the_input(image_factory, parity) -> None:
    img = image_factory(50, 70, "RGB", kind="noise")
    want = pillow_resize(img, (31, 90), 3)
    for layout in (
        img[::-1, ::-1][::-1, ::-1],
        np.asfortranarray(img),
        img.transpose(1, 0, 2).transpose(1, 0, 2),
    ):
        parity.check(resize(layout, (31, 90), 3), want, "layout")
    strided = np.ascontiguousarray(img[:, ::2])
    parity.check(resize(img[:, ::2], (31, 20), 2), pillow_resize(strided, (31, 20), 2), "strided")


def test_results_are_independent_arrays() -> None:
    """Work buffers are reused between calls; results never alias them."""
    from edgeinfer._resample.threads import SCRATCH

    rng = np.random.default_rng(3)
    first_img, second_img = rng.integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    first = resize(first_img, (23, 31), 2)
    kept = first.copy()
    second = resize(second_img, (23, 31), 2)
    assert np.array_equal(first, kept)
    assert not np.shares_memory(first, second)
    assert not any(np.shares_memory(first, buffer) for buffer in SCRATCH.buffers.values())


def test_threads_match_pillow(parity) -> None:
    """Many resizes at once on threads (per-thread work buffers), and one resize split over threads."""
    from concurrent.futures import ThreadPoolExecutor

    from edgeinfer._resample import parallel

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (8, 90, 120, 3), dtype=np.uint8)
    sizes = [(37 + 5 * i, 51 + 3 * i) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: resize(job[0], job[1], 1), zip(images, sizes, strict=True)))
    for image, size, out in zip(images, sizes, got, strict=True):
        parity.check(out, pillow_resize(image, size, 1), f"threaded {size}")
    big = rng.integers(0, 256, (700, 1600, 3), dtype=np.uint8)  # enough work to be split
    for size in ((300, 641), (100, 1500)):  # horizontal first; vertical first
        with parallel(2):
            split = resize(big, size, 2, pass_order=INSTALLED_ORDER)
        parity.check(split, pillow_resize(big, size, 2), f"parallel(2) {size}")


@pytest.mark.parametrize(("mode", "premultiplied_mode"), [("RGBA", "RGBa"), ("LA", "La")])
def test_alpha_premultiplication_matches_pillow_for_every_byte_pair(mode, premultiplied_mode, parity) -> None:
    from edgeinfer._resample.passes8 import premultiply_alpha, unpremultiply_alpha

    colour, alpha = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    if mode == "RGBA":
        img = np.stack([colour, 255 - colour, colour // 2 + 50, alpha], axis=-1)
    else:
        img = np.stack([colour, alpha], axis=-1)
    values = img.astype(np.float32)
    premultiply_alpha(values, 2)
    want = np.asarray(Image.fromarray(img).convert(premultiplied_mode))
    parity.check(values.astype(np.uint8), want, f"{mode} -> {premultiplied_mode}")

    values = img.astype(np.float32)
    unpremultiply_alpha(values, 2)
    want = np.asarray(Image.frombytes(premultiplied_mode, (256, 256), img.tobytes()).convert(mode))
    parity.check(values.astype(np.uint8), want, f"{premultiplied_mode} -> {mode}")


def test_same_size_returns_a_copy() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = resize(img, (3, 4), 2)
    out[0, 0] = 99
    assert img[0, 0] == 0


def test_nearest_keeps_alpha_unpremultiplied(parity) -> None:
    img = np.array([[[200, 10, 10, 0], [10, 200, 10, 128]]], dtype=np.uint8)
    parity.check(resize(img, (2, 5), 0), pillow_resize(img, (2, 5), 0), "nearest RGBA")


GREY = np.zeros((2, 2), np.uint8)
# Arguments are checked once, by the functional layer (transforms/_checks.py); _resample.resize trusts its
# callers. The image itself is checked by _convert (its kind) and by the resampler (I;16 is not resampled).
BAD_CALLS = [
    (lambda: functional_resize([[1, 2]], (2, 2), 2), TypeError, "numpy.ndarray"),
    (lambda: functional_resize(np.zeros((2, 2), np.float64), (2, 2), 2), TypeError, "float64"),
    (lambda: functional_resize(np.zeros((2, 2, 5), np.uint8), (2, 2), 2), ValueError, r"\(2, 2, 5\)"),
    (lambda: functional_resize(np.zeros((2, 2, 1), np.uint8), (2, 2), 2), ValueError, r"\(2, 2, 1\)"),
    (lambda: functional_resize(np.zeros((2, 2, 3), np.float32), (2, 2), 2), TypeError, r"\(2, 2, 3\)"),
    (lambda: functional_resize(np.zeros((0, 3), np.uint8), (2, 2), 2), ValueError, "empty"),
    (lambda: functional_resize(np.zeros((2, 2), np.uint16), (3, 3), 2), ValueError, "I;16"),
    (lambda: functional_resize(np.zeros(3, np.uint8), (2, 2), 2), ValueError, r"\(3,\)"),
    (lambda: functional_resize(GREY, (0, 2), 2), ValueError, r"\[0, 2\].*positive, got 0"),
    (lambda: functional_resize(GREY, (-3, 2), 2), ValueError, r"\[-3, 2\].*positive, got -3"),
    (lambda: functional_resize(GREY, "5", 2), TypeError, "'5'"),
    (lambda: functional_resize(GREY, (2.5, 2), 2), TypeError, "2.5"),
    (lambda: functional_resize(GREY, (2, 2), 7), ValueError, "got 7"),
    (lambda: functional_resize(GREY, (2, 2), 2.0), ValueError, "got 2.0"),
    (lambda: functional_resize(GREY, (2, 2), "trilinear"), ValueError, "trilinear"),
    (lambda: functional_resize(GREY, (3, 3), 2, pass_order="pillow11"), ValueError, "pillow11"),
    (lambda: functional_resize(GREY, (3, 3), 2, region=(2, 0, 2, 2)), ValueError, r"\(2, 0, 2, 2\)"),
    (lambda: functional_resize(GREY, (3, 3), 2, region=(0, 0, 0, 1)), ValueError, r"\(0, 0, 0, 1\)"),
    (lambda: functional_resize(GREY, (3, 3), 2, region=(-1, 0, 1, 1)), ValueError, r"\(-1, 0, 1, 1\)"),
    (lambda: functional_resize(GREY, (3, 3), 2, region=(0, 0, 1)), TypeError, r"\(0, 0, 1\)"),
    (lambda: functional_resize(GREY, (3, 3), 2, region=(0, 0.5, 1, 1)), TypeError, r"\(0, 0.5, 1, 1\)"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS)
def test_bad_arguments_raise_with_the_value(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


# Run under an address-space limit: work and memory must follow the pixels kept, not the resized size.
_LIMITED = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import numpy as np
import edgeinfer.transforms as T
cases = np.load(sys.argv[1])
results, seconds = {}, []
for key in cases.files:
    kind, size, interpolation = key.split("|")[:3]
    image = cases[key]
    if kind == "crop":
        pipeline = T.Compose([T.Resize(int(size), interpolation), T.CenterCrop(int(size))])
    else:
        pipeline = T.Resize(tuple(int(v) for v in size.split("x")), interpolation)
    start = time.perf_counter()
    results[key] = pipeline(image)
    seconds.append(time.perf_counter() - start)
np.savez(sys.argv[2], **results)
print(max(seconds))
"""


def _hostile_cases() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Images whose resize is huge but whose kept output is small, and torchvision's result for each.

    The 3,000,000-pixel line resized to 28 on its short side would be 84 million pixels long: torchvision
    cannot compute that in a test's time, so the exactness of the kept window is checked at 3,000 pixels
    (84,000 long, the same code path) and the full size must only finish in bounds.
    """
    import torchvision.transforms as T

    rng = np.random.default_rng(11)
    cases, want = {}, {}
    for length, exact in ((3_000_000, False), (3_000, True)):
        for shape in ((1, length), (length, 1), (1, length, 3)):
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            for interpolation in ("bilinear", "nearest"):
                key = f"crop|28|{interpolation}|{shape}"
                cases[key] = image
                if exact:
                    mode = T.InterpolationMode(interpolation)
                    tv = T.Compose([T.Resize(28, mode), T.CenterCrop(28)])
                    want[key] = np.asarray(tv(Image.fromarray(image)))
    squashes = (("squash|28x28|bilinear|tall", (3_000_000, 1)), ("squash|28x28|bicubic", (1, 600_000, 3)))
    for key, shape in squashes:
        cases[key] = rng.integers(0, 256, shape, dtype=np.uint8)  # filters of 100,000s of taps
        want[key] = pillow_resize(cases[key], (28, 28), FILTERS[key.split("|")[2]])
    return cases, want


def test_huge_resizes_keep_cost_bounded_by_the_kept_pixels(tmp_path, parity) -> None:
    import os
    import subprocess
    import sys

    cases, want = _hostile_cases()
    np.savez(tmp_path / "cases.npz", **cases)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED, str(tmp_path / "cases.npz"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    for key, image in cases.items():
        assert got[key].shape == (28, 28) + image.shape[2:], key
        if key in want:
            parity.check(got[key], want[key], key)


@pytest.mark.parametrize("filter_name", ["bilinear", "box"])
def test_weights_stored_for_one_pixel_wide_images_stay_near_the_taps(filter_name: str, parity) -> None:
    """A pass over one column favours few groups of blocks, whose drift widened every block's span (the
    weights stored take 4 bytes per output and source pixel of the span): 580 MB for 1,000,000 rows."""
    from edgeinfer._resample import plans

    rows, filter = 20_000, FILTERS[filter_name]
    _, _, plan = plans.plan("L", rows, rows + 2, filter, 0, rows + 2, 1)
    taps = plan.fixed.shape[1]
    assert plan.span <= 2 * ((plan.block - 1) * rows / (rows + 2) + taps + 1), (plan.block, plan.span)
    image = np.random.default_rng(7).integers(0, 256, (rows, 1), dtype=np.uint8)
    parity.check(
        resize(image, (rows + 2, 1), filter), pillow_resize(image, (rows + 2, 1), filter), filter_name
    )


def test_plan_cache_is_bounded_in_bytes() -> None:
    from edgeinfer._resample import plans

    for width in range(40_000, 40_012):  # each plan of these downscales holds over 10 MB
        resize(np.zeros((2, width), np.uint8), (2, 28_000), 3)
        assert 0 < plans.plan.cached_bytes() <= plans.PLAN_CACHE_BYTES


@pytest.mark.parametrize("in_size", [1, 3, 5, 7, 640, 3_000, 99_991])
def test_nearest_indices_equal_the_sequential_c_loop(in_size: int) -> None:
    """Geometry.c adds the scale output by output in double; any window must see the same sums."""
    from edgeinfer._resample.nearest import nearest_indices

    for out_size in (1, 2, 3, 10, 224, 1 << 20, 3 * in_size + 1):
        scale = float(np.float32(in_size)) / out_size
        x, sequential = scale * 0.5, []
        for _ in range(out_size):
            sequential.append(int(x))
            x += scale
        for lo, hi in ((0, out_size), (out_size // 3, out_size // 3 + 28), (max(0, out_size - 5), out_size)):
            hi = min(hi, out_size)
            assert nearest_indices(in_size, out_size, lo, hi).tolist() == sequential[lo:hi]
