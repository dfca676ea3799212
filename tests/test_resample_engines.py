"""Who computes a resize of a PIL image: Pillow itself, NumPy, or both at once. Every way against Pillow.

``_resample.resize`` hands a PIL image to ``Image.resize`` where that is the same arithmetic and cheaper.
With two threads it lets Pillow compute each half of the rows or columns (through boxes that reproduce the
full resize's coefficients), or the top rows while NumPy computes the rest, or computes a window in two
halves with NumPy. These tests hold each way to the installed Pillow.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeinfer import _resample
from edgeinfer import _resample_reference as reference

FILTERS = {f.name.lower(): f.value for f in Image.Resampling if f.value <= 5}
MODES = ["L", "LA", "RGB", "RGBA"]


def pil_image(h: int, w: int, mode: str, seed: int, image_factory) -> Image.Image:
    return Image.fromarray(image_factory(h, w, mode, seed=seed))


def pillow(img: Image.Image, size: tuple[int, int], filter: int) -> np.ndarray:
    return np.asarray(img.resize((size[1], size[0]), filter))


# (input height, width) -> output (height, width): photo geometries whose rows split exactly, and tall ones
# on either side of Pillow 13's pass-order rule.
SPLIT_GEOMETRIES = [
    ((480, 640), (224, 224)),
    ((640, 480), (256, 192)),
    ((300, 1000), (256, 853)),
    ((1000, 300), (746, 224)),
    ((768, 532), (651, 398)),  # half the rows would go vertical first: no row split
    ((200, 120), (66, 40)),  # split by columns: the boxes' own geometries would go vertical first
    ((1080, 1920), (256, 455)),
]


@pytest.mark.parametrize("geometry", SPLIT_GEOMETRIES, ids=lambda g: f"{g[0]}->{g[1]}")
@pytest.mark.parametrize("filter_name", [f for f in FILTERS if f != "nearest"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("second", ["pillow", "numpy"])
def test_resizes_shared_over_two_threads_match_pillow(
    second, mode, filter_name, geometry, image_factory, parity, monkeypatch
):
    """Pillow on both threads where its boxes give the full resize's coefficients; with that refused,
    Pillow's top rows and NumPy's rest."""
    monkeypatch.setattr(_resample, "_SPLIT_PIXELS", 0)
    if second == "numpy":
        monkeypatch.setattr(_resample, "_outputs_from", lambda *args: False)
    (in_h, in_w), size = geometry
    img = pil_image(in_h, in_w, mode, 3, image_factory)
    filter = FILTERS[filter_name]
    with _resample.parallel(2):
        got = _resample.resize(img, size, filter)
        top, left = size[0] // 5, size[1] // 4
        window = _resample.resize(img, size, filter, region=(top, left, size[0] - 2 * top, size[1] - left))
    want = pillow(img, size, filter)
    parity.check(got, want, f"2 threads {mode} {geometry}")
    parity.check(window, want[top : size[0] - top, left:], f"2 threads, window {mode} {geometry}")


def test_photo_geometries_are_shared() -> None:
    """The splits are not dead code: common photo resizes get one (and the refusals are reasoned)."""
    img, bilinear = Image.new("RGB", (1280, 960)), FILTERS["bilinear"]
    with _resample.parallel(2):
        by_rows = _resample._pillow_split(img, bilinear, (224, 224), (0, 0, 224, 224))
        by_columns = _resample._pillow_split(img, bilinear, (448, 448), (0, 0, 448, 448))
        nearest = _resample._pillow_split(img, FILTERS["nearest"], (224, 224), (0, 0, 224, 224))
    assert by_rows == (0, 112, 480, True)
    assert by_columns == (1, 224, 640, True)  # 960 -> 448 rows: no box gives the full resize's rows
    assert nearest is None
    assert _resample._pillow_split(img, bilinear, (224, 224), (0, 0, 224, 224)) is None  # one thread


@pytest.mark.parametrize("filter_name", ["bilinear", "hamming"])
def test_a_cropped_window_is_shared_between_pillow_and_numpy(filter_name, image_factory, parity) -> None:
    """Resize(256) + CenterCrop(224) of a 1080p photo on two threads: Pillow computes the top rows of the
    whole width while NumPy computes the rest of the window (faster than either alone or in halves)."""
    img, filter = pil_image(1080, 1920, "RGB", 4, image_factory), FILTERS[filter_name]
    size, region = (256, 455), (16, 116, 224, 224)
    with _resample.parallel(2):
        plan = _resample._pillow_plan(img, filter, "pillow13", size, region, True)
        got = _resample.resize(img, size, filter, region=region)
    assert plan is not None and plan[0] == 0 and plan[3] is False, plan
    parity.check(got, pillow(img, size, filter)[16:240, 116:340], f"1080p window, {filter_name}")


def test_box_rows_that_differ_from_the_full_resize_are_not_shared(image_factory) -> None:
    """From a box starting at row y, Pillow computes every centre as y + (i + 0.5) * scale: a rounding
    away from the full resize's (k + i + 0.5) * scale, which can move a filter's first tap. Wherever that
    changes Pillow's rows, the split is refused (and there are such places: 300 -> 224 with BOX)."""
    img = pil_image(300, 40, "RGB", 11, image_factory)
    full = pillow(img, (224, 40), FILTERS["box"])
    differing = []
    for k in range(56, 224, 56):  # 224 / gcd(300, 224) = 56
        y = k * 300 // 224
        lower = np.asarray(img.resize((40, 224 - k), FILTERS["box"], (0, y, 40, 300)))
        if not np.array_equal(lower, full[k:]):
            differing.append(k)
            assert not _resample._outputs_from(300, 224, FILTERS["box"], k, y)
    assert differing


@pytest.mark.skipif(reference.installed_pass_order() != "pillow13", reason="Pillow <= 12 has one order")
def test_the_pass_order_of_a_box_follows_the_whole_image(image_factory, monkeypatch) -> None:
    """Pillow 13 orders the passes of a box resize by the whole image's size against the outputs
    (Resample.c ``ImagingResampleInner``: ``imIn->ysize``, ``imIn->xsize``), not by the box's: 200x120 ->
    66x40 is split by columns at source column 60, a box whose own geometry (200x60 -> 66x20) would go
    vertical first and give other pixels."""
    monkeypatch.setattr(_resample, "_SPLIT_PIXELS", 0)
    img, bilinear = pil_image(200, 120, "RGB", 5, image_factory), FILTERS["bilinear"]
    with _resample.parallel(2):
        assert _resample._pillow_split(img, bilinear, (66, 40), (0, 0, 66, 40)) == (1, 20, 60, True)
    left = np.asarray(img.resize((20, 66), bilinear, (0, 0, 60, 200)))
    assert np.array_equal(left, pillow(img, (66, 40), bilinear)[:, :20])
    assert not np.array_equal(left, pillow(img.crop((0, 0, 60, 200)), (66, 20), bilinear))


@st.composite
def pil_cases(draw):
    in_h, in_w = draw(st.integers(2, 70)), draw(st.integers(2, 70))
    out_h, out_w = draw(st.integers(1, 2 * in_h)), draw(st.integers(1, 2 * in_w))
    top, left = draw(st.integers(0, out_h - 1)), draw(st.integers(0, out_w - 1))
    region = (top, left, draw(st.integers(1, out_h - top)), draw(st.integers(1, out_w - left)))
    mode = draw(st.sampled_from(MODES))
    filter = draw(st.sampled_from(sorted(FILTERS.values())))
    return (in_h, in_w, mode, draw(st.integers(0, 2**32 - 1))), (out_h, out_w), filter, region


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # setattr: same value
)
@given(case=pil_cases())
def test_every_engine_matches_pillow_on_random_pil_images(case, image_factory, parity, monkeypatch) -> None:
    """Pillow alone, NumPy alone (``engine="numpy"``), Pillow on two threads, Pillow and NumPy sharing rows
    and NumPy in two halves (any image size allowed to split), with and without a window, all equal
    Pillow's full resize."""
    (in_h, in_w, mode, seed), size, filter, region = case
    img = pil_image(in_h, in_w, mode, seed % 1000, image_factory)
    want = pillow(img, size, filter)
    top, left, height, width = region
    kept = want[top : top + height, left : left + width]
    monkeypatch.setattr(_resample, "_SPLIT_PIXELS", 0)
    for threads in (1, 2):
        with _resample.parallel(threads):
            parity.check(_resample.resize(img, size, filter), want, f"auto, {threads} threads")
            parity.check(_resample.resize(img, size, filter, region=region), kept, f"auto {region}")
    parity.check(_resample.resize(img, size, filter, engine="numpy"), want, "numpy from PIL")
    parity.check(_resample.resize(img, size, filter, region=region, engine="numpy"), kept, "numpy window")


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="engine must be 'auto' or 'numpy', got 'cv2'"):
        _resample.resize(np.zeros((4, 4), np.uint8), (2, 2), 2, engine="cv2")


@pytest.mark.parametrize("engine", ["auto", "numpy"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_two_threads_on_an_image_not_yet_loaded(fmt, engine, image_factory, tmp_path, parity) -> None:
    """``Image.open`` decodes lazily: the two threads of a split must not both decode the same file."""
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(image_factory(1200, 1600, "RGB", seed=5)).save(path, fmt)
    with Image.open(path) as img:
        want = pillow(img, (224, 224), FILTERS["bilinear"])
    with Image.open(path) as img, _resample.parallel(2):
        got = _resample.resize(img, (224, 224), FILTERS["bilinear"], engine=engine)
    parity.check(got, want, f"2 threads, {fmt} not loaded, {engine}")


def test_rows_shared_with_pillow_beyond_float32_heights(parity) -> None:
    """Pillow gets box edges as C floats: above 2**24 rows the box's scale is not the full resize's."""
    height = 2**24 + 1  # = 673 * 24929, which float32 rounds to 2**24
    pixels = np.random.default_rng(0).integers(0, 256, (height, 1), np.uint8)
    img = Image.fromarray(pixels)
    want = pillow(img, (673, 1), FILTERS["box"])
    with _resample.parallel(2):
        got = _resample.resize(img, (673, 1), FILTERS["box"])
    parity.check(got, want, "2 threads, 2**24 + 1 rows")


def test_very_wide_windows_are_not_split_in_halves(monkeypatch, parity) -> None:
    """Both halves would build the same horizontal plan, too big for the plan cache: twice the memory."""
    calls = []
    monkeypatch.setattr(_resample, "_halves", lambda *args: calls.append(args))
    img = Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 40000), dtype=np.uint8))
    size = (48, _resample._SPLIT_WIDTH + 1)
    with _resample.parallel(2):
        got = _resample.resize(img, size, FILTERS["bicubic"])
    assert calls == []
    parity.check(got, pillow(img, size, FILTERS["bicubic"]), "wide, 2 threads")


def test_two_threads_resizing_at_once_get_pillows_pixels(parity) -> None:
    """Callers on two threads at once (a shared Model, or the two halves of a split) get Pillow's pixels.
    OpenBLAS 0.3.31's small-matrix kernel, run by two threads at once, returned wrong sums in about one
    call of 600 made this way (a few rows of one channel off by up to 88): the banded products take turns.
    This catches that race about half the time per run."""
    pixels = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    want = pillow(Image.fromarray(pixels), (378, 1085), FILTERS["box"])
    results = {}

    def caller(name: int) -> None:
        wrong = None
        for _ in range(400):
            got = _resample.resize(pixels, (378, 1085), FILTERS["box"], engine="numpy")
            if wrong is None and not np.array_equal(got, want):
                wrong = got
        results[name] = got if wrong is None else wrong

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, got in sorted(results.items()):
        parity.check(got, want, f"thread {name}, 400 resizes while another thread resized")
