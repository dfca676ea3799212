"""Hard inputs: every bad image, model file or option gives one ``Error:`` line naming the file, a
non-zero exit and no traceback, while the other images still get results. Odd-but-valid images
(16-bit, CMYK, palette, alpha, EXIF-rotated) decode exactly as torchvision's loader sees them."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps
from torchvision import transforms as T
from torchvision.datasets.folder import pil_loader

from edgeinfer import Model
from edgeinfer.cli import main
from edgeinfer.errors import ImageError
from tests.fixtures import bare_model, gray_model, make_model, rgb_model

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _save(arr: np.ndarray, path: Path, **kwargs) -> Path:
    Image.fromarray(arr).save(path, **kwargs)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height but whose pixel data is a few bytes: decoding it
    would fail, so a "refused" error proves the size was checked from the header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hard")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(gray).save(png, "PNG")
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    f = {
        "good1": _save(gray, d / "good1.png"),
        "good2": _save(255 - gray, d / "good2.png"),
        "missing": d / "missing.png",
        "empty": d / "empty.png",
        "truncated_png": d / "truncated.png",
        "truncated_jpeg": d / "truncated.jpg",
        "truncated_jpeg_header": d / "truncated_header.jpg",
        "text": d / "notes.png",
        "bomb": d / "bomb.png",
        "huge_bomb": d / "huge_bomb.png",
    }
    f["empty"].write_bytes(b"")
    f["truncated_png"].write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    f["truncated_jpeg"].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    f["truncated_jpeg_header"].write_bytes(jpeg.getvalue()[:100])
    f["text"].write_text("this is a text file, not a PNG\n")
    f["bomb"].write_bytes(_png_header_only(10_000, 10_000))  # 100 Mpx: over edgeinfer's default limit
    f["huge_bomb"].write_bytes(_png_header_only(30_000, 30_000))  # 900 Mpx: Pillow itself refuses on open
    return f


HARD_IMAGES = [
    ("missing", "no such file"),
    ("empty", "empty file"),
    ("truncated_png", r"cannot decode image \(OSError: image file is truncated\)"),
    (
        "truncated_jpeg",
        r"cannot decode image \(OSError: image file is truncated \(\d+ bytes not processed\)\)",
    ),
    ("truncated_jpeg_header", r"corrupt image header \(OSError: Truncated File Read\)"),
    ("text", r"not an image in a format edgeinfer decodes \(PNG, JPEG, .*\)"),
    (
        "bomb",
        r"refused, 10000x10000 = 100000000 pixels exceeds the limit of 89478485 "
        r"\(possible decompression bomb; raise max_pixels / --max-pixels to allow it\)",
    ),
    ("huge_bomb", r"refused, too many pixels \(Image size \(900000000 pixels\) exceeds limit of .*\)"),
]


@pytest.mark.parametrize(("name", "problem"), HARD_IMAGES)
def test_bad_image_in_a_batch_is_one_error_line_and_the_others_still_print(files, name, problem):
    result = _run("predict", files["good1"], files[name], files["good2"], "--model", gray_model())
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert re.fullmatch(rf"Error: {files[name]}: {problem}\n", result.stderr)
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        str(files["good1"]),
        str(files["good2"]),
    ]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("name", "problem"), HARD_IMAGES)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, before our refusal
def test_bad_image_raises_image_error_from_the_library(files, name, problem):
    with pytest.raises(ImageError, match=rf"^{files[name]}: {problem}$"):
        Model(gray_model()).predict(files[name])


def test_pixel_limit_is_configurable(files):
    result = _run("predict", files["good1"], "--model", gray_model(), "--max-pixels", 783)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {files['good1']}: refused, 28x28 = 784 pixels exceeds the limit of 783 "
        "(possible decompression bomb; raise max_pixels / --max-pixels to allow it)\n"
    )
    assert _run("predict", files["good1"], "--model", gray_model(), "--max-pixels", 784).exit_code == 0
    # Raising the limit past the bomb's size lets it through to the decoder, which then finds it truncated.
    with pytest.raises(ImageError, match="cannot decode image"):
        Model(gray_model(), max_pixels=10**8).predict(files["bomb"])


def test_a_directory_given_as_an_image_file(files, tmp_path):
    with pytest.raises(ImageError, match=rf"^{tmp_path}: is a directory$"):
        Model(gray_model()).predict(tmp_path)


def _tree_with_locked_parts(root: Path) -> tuple[Path, Path, Path]:
    """root/ok/a.png (readable), root/locked/b.png (in a directory to lock), root/c.png (a file to lock)."""
    (root / "ok").mkdir()
    (root / "locked").mkdir()
    for name in ("ok/a.png", "locked/b.png", "c.png"):
        _save(np.zeros((28, 28), np.uint8), root / name)
    return root / "ok" / "a.png", root / "locked", root / "c.png"


def _check_locked_parts_reported(root: Path, good: Path, locked_dir: Path, locked_file: Path) -> None:
    result = _run("predict", root, "--model", gray_model())
    assert result.exit_code == 1
    assert sorted(result.stderr.splitlines()) == [
        f"Error: {locked_file}: permission denied",
        f"Error: {locked_dir}: cannot read directory (Permission denied)",
    ]
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(good)]


@pytest.mark.skipif(IS_ROOT, reason="running as root: chmod 000 does not stop root from reading")
def test_unreadable_directory_and_file(tmp_path):
    good, locked_dir, locked_file = _tree_with_locked_parts(tmp_path)
    locked_dir.chmod(0)
    locked_file.chmod(0)
    try:
        _check_locked_parts_reported(tmp_path, good, locked_dir, locked_file)
    finally:
        locked_dir.chmod(0o755)
        locked_file.chmod(0o644)


def test_unreadable_directory_and_file_simulated(tmp_path, monkeypatch):
    """The same outcome as the chmod test, with the permission errors injected, so it also runs as root."""
    good, locked_dir, locked_file = _tree_with_locked_parts(tmp_path)
    real_scandir, real_open = os.scandir, os.open

    def scandir(path):
        if Path(path) == locked_dir:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def open_(path, *args, **kwargs):
        if Path(path) == locked_file:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "open", open_)  # how edgeinfer._files opens inputs
    _check_locked_parts_reported(tmp_path, good, locked_dir, locked_file)


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    d = tmp_path_factory.mktemp("models")
    good = gray_model().read_bytes()
    (d / "garbage.onnx").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (d / "empty.onnx").write_bytes(b"")
    (d / "dir.onnx").mkdir()
    mismatched = make_model(d / "mismatched.onnx", declared_shape=[None, 1, 32, 32])
    return {
        "missing": (d / "missing.onnx", "no such file"),
        "garbage": (
            d / "garbage.onnx",
            r"not a loadable ONNX model \(INVALID_PROTOBUF: Protobuf parsing failed\.\)",
        ),
        "truncated": (d / "truncated.onnx", r"not a loadable ONNX model \(.+\)"),
        "empty": (d / "empty.onnx", "empty file, not an ONNX model"),
        "directory": (d / "dir.onnx", "is a directory, not an ONNX file"),
        "mismatched": (
            mismatched,
            r"input 'input' has shape \[\?, 1, 28, 28\] but its metadata declares \[\?, 1, 32, 32\]",
        ),
        "no metadata": (
            bare_model(),
            r"the model has no edgeinfer metadata .*pass the preprocessing and labels.*",
        ),
    }


@pytest.mark.parametrize(
    "name", ["missing", "garbage", "truncated", "empty", "directory", "mismatched", "no metadata"]
)
@pytest.mark.parametrize("command", ["predict", "bench"])
def test_bad_model_file_is_one_error_line(files, bad_models, name, command):
    path, problem = bad_models[name]
    args = (
        ["predict", files["good1"], "--model", path] if command == "predict" else ["bench", path, "--runs", 1]
    )
    result = _run(*args)
    assert result.exit_code == 1
    assert re.fullmatch(rf"Error: {path}: {problem}\n", result.stderr), result.stderr
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("name", ["missing", "garbage", "truncated", "empty", "directory"])
def test_info_on_a_bad_model_file_is_one_error_line(bad_models, name):
    path, _ = bad_models[name]
    result = _run("info", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--top-k", "0", "Invalid value for '--top-k' / '-k': 0 is not in the range x>=1."),
        ("--batch-size", "-1", "Invalid value for '--batch-size' / '-b': -1 is not in the range x>=1."),
        ("--threads", "abc", "Invalid value for '--threads': 'abc' is not a valid integer range."),
        ("--threads", "0", "Invalid value for '--threads': 0 is not in the range 1<=x<=256."),
        ("--max-pixels", "0", "Invalid value for '--max-pixels': 0 is not in the range x>=1."),
    ],
)
def test_invalid_option_values_are_usage_errors(files, option, value, message):
    result = _run("predict", files["good1"], "--model", gray_model(), option, value)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert result.stdout == ""


def test_invalid_spec_and_labels_files(files, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    result = _run(
        "predict", files["good1"], "--model", bare_model(), "--spec", spec, "--labels", tmp_path / "no.txt"
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: Invalid value for '--spec': {spec}: the spec is not valid JSON"
    )
    spec.write_text('{"type": "Compose", "transforms": [{"type": "Blur"}]}')
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(10)))
    result = _run("predict", files["good1"], "--model", bare_model(), "--spec", spec, "--labels", labels)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: Invalid value for '--spec': {spec}: not a valid transforms spec: "
    )
    assert "'Blur'" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = _run("predict", files["good1"], "--model", gray_model(), "--labels", empty)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--labels': {empty}: no labels in this file (one per line)"
    )


def test_spec_that_fails_on_the_models_input_size_is_a_model_error(files, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"type": "Compose", "transforms": [
        {"type": "ToTensor"}, {"type": "Normalize", "mean": [0.1, 0.2], "std": [0.3, 0.3]},
    ]}))  # fmt: skip
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(10)))
    result = _run("predict", files["good1"], "--model", bare_model(), "--spec", spec, "--labels", labels)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bare_model()}: its preprocessing fails on a L 28x28 image: ")
    assert "Traceback" not in result.output


def test_preprocessing_that_fails_on_one_image_spares_the_others(files, tmp_path):
    # Pad(-10) leaves nothing of a 15x15 image but 18x18 of a 28x28 one, which the crop pads back.
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"type": "Compose", "transforms": [
        {"type": "Pad", "padding": -10}, {"type": "CenterCrop", "size": 28}, {"type": "ToTensor"},
    ]}))  # fmt: skip
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(10)))
    small = _save(np.zeros((15, 15), np.uint8), tmp_path / "small.png")
    args = ["--model", bare_model(), "--spec", spec, "--labels", labels]
    result = _run("predict", small, files["good1"], *args)
    assert result.exit_code == 1
    assert (
        result.stderr == f"Error: {small}: preprocessing failed: padding [-10, -10, -10, -10] "
        "leaves nothing of a 15×15 image\n"
    )
    assert result.stdout.startswith(f"{files['good1']}\t")
    assert len(result.stdout.splitlines()) == 1


def test_no_traceback_from_a_real_process(files):
    """The installed entry point, as a user runs it: errors on stderr, results on stdout, exit 1."""
    bad = [files["missing"], files["empty"], files["truncated_png"], files["text"], files["bomb"]]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeinfer",
            "predict",
            files["good1"],
            *bad,
            files["good2"],
            "--model",
            gray_model(),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert [line.split(": ")[:2] for line in proc.stderr.splitlines()] == [["Error", str(p)] for p in bad]
    assert len(proc.stdout.splitlines()) == 2


# --- odd but valid images: the tensor equals torchvision's loader followed by torchvision's transforms ---


def _odd_images(d: Path, h: int, w: int) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = {
        "16-bit PNG": _save(rng.integers(0, 400, (h, w)).astype(np.uint16), d / "deep.png"),
        "CMYK JPEG": d / "cmyk.jpg",
        "palette GIF": d / "palette.gif",
        "palette PNG with transparency": d / "palette_t.png",
        "RGBA PNG": _save(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), d / "rgba.png"),
        "LA PNG": d / "la.png",
        "1-bit PNG": d / "bits.png",
        "grayscale JPEG": _save(rgb[:, :, 0], d / "gray.jpg"),
        "EXIF-rotated JPEG": d / "exif.jpg",
    }
    Image.frombytes("CMYK", (w, h), rng.integers(0, 256, (h, w, 4), dtype=np.uint8).tobytes()).save(
        out["CMYK JPEG"]
    )
    Image.fromarray(rgb).quantize(64).save(out["palette GIF"])
    Image.fromarray(rgb).quantize(16).save(out["palette PNG with transparency"], transparency=3)
    Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA").save(out["LA PNG"])
    Image.fromarray(rgb[:, :, 1] > 127).save(out["1-bit PNG"])
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.fromarray(rgb).save(out["EXIF-rotated JPEG"], exif=exif.tobytes())
    return out


ODD = [
    "16-bit PNG",
    "CMYK JPEG",
    "palette GIF",
    "palette PNG with transparency",
    "RGBA PNG",
    "LA PNG",
    "1-bit PNG",
    "grayscale JPEG",
    "EXIF-rotated JPEG",
]


@pytest.fixture(scope="module")
def odd_rgb(tmp_path_factory) -> dict[str, Path]:
    return _odd_images(tmp_path_factory.mktemp("odd_rgb"), 45, 61)


@pytest.fixture(scope="module")
def odd_gray(tmp_path_factory) -> dict[str, Path]:
    return _odd_images(tmp_path_factory.mktemp("odd_gray"), 28, 28)


@pytest.mark.parametrize("kind", ODD)
def test_odd_image_equals_torchvision_rgb_pipeline(odd_rgb, kind, parity):
    model = Model(rgb_model())
    reference = T.Compose(
        [
            T.Resize(32),
            T.CenterCrop(32),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    parity.check(model.preprocess(odd_rgb[kind]), reference(pil_loader(str(odd_rgb[kind]))).numpy(), kind)
    assert model.predict(odd_rgb[kind]).label in model.labels


@pytest.mark.parametrize("kind", ODD)
def test_odd_image_equals_torchvision_grayscale_pipeline(odd_gray, kind, parity):
    """An "L" model converts straight to L; that equals torchvision's pil_loader (RGB) + Grayscale()."""
    model = Model(gray_model())
    reference = T.Compose([T.Grayscale(), T.ToTensor(), T.Normalize([0.2860], [0.3530])])
    parity.check(model.preprocess(odd_gray[kind]), reference(pil_loader(str(odd_gray[kind]))).numpy(), kind)


def test_exif_orientation_is_not_applied_like_torchvision(odd_rgb):
    model = Model(rgb_model())
    path = odd_rgb["EXIF-rotated JPEG"]
    with Image.open(path) as img:
        assert img.getexif()[0x0112] == 6
        upright = ImageOps.exif_transpose(img)
    assert upright.size == (45, 61)  # what a photo viewer would show
    as_stored = model.preprocess(path)
    assert not np.array_equal(as_stored, model.preprocess(upright))
    assert np.array_equal(as_stored, model.preprocess(Image.open(path)))
