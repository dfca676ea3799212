"""Who computes a resize of a PIL image: Pillow itself, NumPy, or both at once. Every way against Pillow.

``_resample.resize`` hands a PIL image to ``Image.resize`` where that is the same arithmetic and cheaper
(``_resample.dispatch``). With two threads it lets Pillow compute each half of the rows or columns (through
boxes that reproduce the full resize's coefficients), or the top rows while NumPy computes the rest, or
computes a window in two halves with NumPy. These tests hold each way to the installed Pillow, and check who
really computed what, on which thread (the ``who_computes`` fixture).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeinfer import _resample
from edgeinfer._resample import dispatch
from edgeinfer._resample.filters import installed_pass_order

FILTERS = {f.name.lower(): f.value for f in Image.Resampling if f.value <= 5}
MODES = ["L", "LA", "RGB", "RGBA"]


def pil_image(h: int, w: int, mode: str, seed: int, image_factory) -> Image.Image:
    return Image.fromarray(image_factory(h, w, mode, seed=seed))


def pillow(img: Image.Image, size: tuple[int, int], filter: int) -> np.ndarray:
    return np.asarray(img.resize((size[1], size[0]), filter))


@pytest.fixture
def who_computes(monkeypatch) -> list[tuple[str, tuple | None, int]]:
    """Every computation of a resize from now on, in order: ("pillow", box, thread) for each call of
    ``Image.resize`` (box None for the whole frame) and ("numpy", region, thread) for each window NumPy
    computes; ``thread`` is ``threading.get_ident()`` of the thread that ran it."""
    calls = []
    pillow_resize, numpy_window = Image.Image.resize, dispatch.resize_window

    def by_pillow(self, size, resample=None, box=None, *args):
        calls.append(("pillow", box, threading.get_ident()))
        return pillow_resize(self, size, resample, box, *args)

    def by_numpy(img, mode, size, filter, pass_order, region):
        calls.append(("numpy", region, threading.get_ident()))
        return numpy_window(img, mode, size, filter, pass_order, region)

    monkeypatch.setattr(Image.Image, "resize", by_pillow)
    monkeypatch.setattr(dispatch, "resize_window", by_numpy)
    return calls


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
    monkeypatch.setattr(dispatch, "SPLIT_PIXELS", 0)
    if second == "numpy":
        monkeypatch.setattr(dispatch, "outputs_from", lambda *args: False)
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


@pytest.mark.parametrize(("size", "axis", "boxes"), [
    ((224, 224), 0, [(0, 0, 1280, 480), (0, 480, 1280, 960)]),  # rows: each thread half the source rows
    ((448, 448), 1, [(0, 0, 640, 960), (640, 0, 1280, 960)]),  # 960 -> 448 rows: no box gives the rows
], ids=["by rows", "by columns"])  # fmt: skip
def test_photo_geometries_are_shared(size, axis, boxes, image_factory, who_computes, parity) -> None:
    """The splits are not dead code: a common photo resize on two threads is computed by Pillow in two
    boxes, one on each thread, and gives Pillow's pixels."""
    img, bilinear = pil_image(960, 1280, "RGB", 6, image_factory), FILTERS["bilinear"]
    want = pillow(img, size, bilinear)
    who_computes.clear()
    with _resample.parallel(2):
        way = dispatch.choose_way(img, bilinear, "pillow13", size, (0, 0, *size))
        got = _resample.resize(img, size, bilinear)
    assert way.by == "pillow halves" and way.split.axis == axis, way
    assert sorted(box for _, box, _ in who_computes) == boxes, who_computes
    assert all(engine == "pillow" for engine, _, _ in who_computes), who_computes
    assert len({thread for _, _, thread in who_computes}) == 2, "both halves ran on one thread"
    parity.check(got, want, f"1280x960 -> {size}, Pillow on two threads")


def test_a_resize_is_shared_only_with_two_threads_and_a_filter(image_factory, who_computes, parity) -> None:
    """One thread: Pillow computes the whole frame (no box). NEAREST is never split (Geometry.c has no
    box arithmetic to reproduce), whatever the threads."""
    img = pil_image(960, 1280, "RGB", 7, image_factory)
    for threads, filter in ((1, FILTERS["bilinear"]), (2, FILTERS["nearest"])):
        want = pillow(img, (224, 224), filter)
        who_computes.clear()
        with _resample.parallel(threads):
            got = _resample.resize(img, (224, 224), filter)
        assert who_computes == [("pillow", None, threading.get_ident())], who_computes
        parity.check(got, want, f"{threads} thread(s), filter {filter}")


@pytest.mark.parametrize("filter_name", ["bilinear", "hamming"])
def test_a_cropped_window_is_shared_between_pillow_and_numpy(
    filter_name, image_factory, who_computes, parity
) -> None:
    """Resize(256) + CenterCrop(224) of a 1080p photo on two threads: Pillow computes the top rows of the
    whole width on a worker thread while NumPy computes the rest of the window on the calling thread
    (faster than either alone or in halves)."""
    img, filter = pil_image(1080, 1920, "RGB", 4, image_factory), FILTERS[filter_name]
    size, region = (256, 455), (16, 116, 224, 224)
    want = pillow(img, size, filter)[16:240, 116:340]
    who_computes.clear()
    with _resample.parallel(2):
        got = _resample.resize(img, size, filter, region=region)
    numpy_call, pillow_call = sorted(who_computes)
    _, (box_left, box_top, box_right, edge), pillow_thread = pillow_call
    _, (k, left, rows, width), numpy_thread = numpy_call
    assert (box_left, box_top, box_right) == (0, 0, 1920) and 0 < edge < 1080, pillow_call  # top rows
    assert (left, width) == (116, 224) and k > 16 and k + rows == 240, numpy_call  # the window's rest
    assert numpy_thread == threading.get_ident() != pillow_thread
    parity.check(got, want, f"1080p window, {filter_name}")


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
            assert not dispatch.outputs_from(300, 224, FILTERS["box"], k, y)
    assert differing


@pytest.mark.skipif(installed_pass_order() != "pillow13", reason="Pillow <= 12 has one order")
def test_the_pass_order_of_a_box_follows_the_whole_image(image_factory, monkeypatch, who_computes, parity):
    """Pillow 13 orders the passes of a box resize by the whole image's size against the outputs
    (Resample.c ``ImagingResampleInner``: ``imIn->ysize``, ``imIn->xsize``), not by the box's: 200x120 ->
    66x40 is split by columns at source column 60, a box whose own geometry (200x60 -> 66x20) would go
    vertical first and give other pixels."""
    monkeypatch.setattr(dispatch, "SPLIT_PIXELS", 0)
    img, bilinear = pil_image(200, 120, "RGB", 5, image_factory), FILTERS["bilinear"]
    want = pillow(img, (66, 40), bilinear)
    who_computes.clear()
    with _resample.parallel(2):
        got = _resample.resize(img, (66, 40), bilinear)
    assert sorted(box for _, box, _ in who_computes) == [(0, 0, 60, 200), (60, 0, 120, 200)], who_computes
    parity.check(got, want, "200x120 -> 66x40 split by columns")
    left = np.asarray(img.resize((20, 66), bilinear, (0, 0, 60, 200)))
    assert np.array_equal(left, want[:, :20])
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
    monkeypatch.setattr(dispatch, "SPLIT_PIXELS", 0)
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


def test_very_wide_windows_are_not_split_in_halves(who_computes, parity) -> None:
    """Both halves would build the same horizontal plan, too big for the plan cache: twice the memory.
    So NumPy computes the whole window of an array, once, on the calling thread."""
    pixels = np.random.default_rng(5).integers(0, 256, (64, 40000), dtype=np.uint8)
    size = (48, dispatch.SPLIT_WIDTH + 1)
    want = pillow(Image.fromarray(pixels), size, FILTERS["bicubic"])
    who_computes.clear()
    with _resample.parallel(2):
        got = _resample.resize(pixels, size, FILTERS["bicubic"])
    assert who_computes == [("numpy", (0, 0, *size), threading.get_ident())], who_computes
    parity.check(got, want, "wide, 2 threads")


def test_windows_of_large_images_are_computed_in_halves_by_numpy(image_factory, who_computes, parity):
    """With two threads, NumPy computes a window of a large array as two halves, the upper one on a worker
    thread: the halves meet, cover the window, and give Pillow's pixels."""
    pixels = image_factory(1024, 768, "RGB", seed=8)
    size, region = (512, 384), (40, 20, 300, 200)
    want = pillow(Image.fromarray(pixels), size, FILTERS["bicubic"])[40:340, 20:220]
    who_computes.clear()
    with _resample.parallel(2):
        got = _resample.resize(pixels, size, FILTERS["bicubic"], region=region)
    (_, upper, upper_thread), (_, lower, lower_thread) = sorted(who_computes, key=lambda call: call[1])
    assert upper == (40, 20, 150, 200) and lower == (190, 20, 150, 200), who_computes
    assert lower_thread == threading.get_ident() != upper_thread
    parity.check(got, want, "NumPy halves")


# How long the first product of each thread waits for the other thread's. Without the turns the other
# thread gets there within milliseconds; with them it never does, and this is what the test costs.
_MEETING_SECONDS = 2.0


def test_banded_products_take_turns_between_threads(image_factory, monkeypatch, parity) -> None:
    """Callers on two threads at once (a shared Model, or the two halves of a split) get Pillow's pixels.
    OpenBLAS 0.3.31's small-matrix kernel, run by two threads at once, returned wrong sums in about one
    call of 600 (a few rows of one channel off by up to 88): the banded products take turns
    (``passes8.BLAS_LOCK``). The interleaving is forced: two threads start a resize together, and the first
    product of each waits, inside the product, for the other thread's first product. With the turns the
    other thread cannot get in and the wait times out; without them the two meet, every time."""
    pixels = image_factory(64, 96, "RGB", seed=9)
    size, bilinear = (37, 51), FILTERS["bilinear"]
    want = pillow(Image.fromarray(pixels), size, bilinear)
    start, meeting = threading.Barrier(2), threading.Barrier(2, timeout=_MEETING_SECONDS)
    waited, met, results = set(), [], {}
    matmul = np.matmul

    def product(*args, **kwargs):
        me = threading.get_ident()
        if me not in waited:
            waited.add(me)
            try:
                meeting.wait()
                met.append(me)
            except threading.BrokenBarrierError:  # the other thread never got in while this one waited
                pass
        return matmul(*args, **kwargs)

    def caller(name: int) -> None:
        start.wait()
        results[name] = _resample.resize(pixels, size, bilinear, engine="numpy")

    monkeypatch.setattr(np, "matmul", product)
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waited) == 2, "a thread's resize ran no banded product: the test proves nothing"
    assert met == [], "two threads were inside a banded product at once"
    for name, got in sorted(results.items()):
        parity.check(got, want, f"thread {name}, resized while another thread resized")
