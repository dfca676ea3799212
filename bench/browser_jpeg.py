"""How far the browser's JPEG decoding is from Pillow's: pixels, and top-1 of the bundled image model.

Usage::

    python bench/browser_jpeg.py          # needs Chromium and `npm install --ignore-scripts` in examples/web

The image model makes preprocessing exact from the decoded pixels on; the decoder is the caller's. PNG is
lossless (every decoder gives the same bytes); JPEG decoders may differ (IDCT, chroma upsampling). This
opens examples/web/index.html in headless Chromium on a folder of JPEGs and compares what its decoder gave
(the canvas's RGBA) with Pillow's decode, and the bundled model's top-1 there with ``edgeinfer predict``'s:

* photos: matplotlib's grace_hopper.jpg as shipped, and re-encoded at quality 75/90/95, chroma subsampling
  4:2:0/4:2:2/4:4:4, baseline and progressive, and once with an EXIF orientation (torchvision does not
  apply it; Chromium does, even asked not to with ``imageOrientation: "none"``);
* Fashion-MNIST: the first 300 test images as grayscale JPEGs (quality 75), for the top-1 agreement.
"""

from __future__ import annotations

import base64
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.browser import page_results, served

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def make_folder(folder: Path, digits: int) -> tuple[list[Path], list[Path]]:
    """The photos and the Fashion-MNIST JPEGs, written into ``folder``."""
    import gzip

    import matplotlib

    original = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photos = [folder / "grace_hopper.jpg"]
    shutil.copyfile(original, photos[0])
    image = Image.open(original).convert("RGB")
    for quality in (75, 90, 95):
        for subsampling, name in ((2, "420"), (1, "422"), (0, "444")):
            for progressive in (False, True):
                path = folder / f"grace_hopper-q{quality}-{name}{'-prog' if progressive else ''}.jpg"
                image.save(path, quality=quality, subsampling=subsampling, progressive=progressive)
                photos.append(path)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° to display; torchvision (and so edgeinfer) does not apply it
    photos.append(folder / "grace_hopper-exif-rotated.jpg")
    image.save(photos[-1], quality=90, exif=exif)
    digits_paths = []
    if FASHION_MNIST.exists():
        with gzip.open(FASHION_MNIST) as f:
            pixels = np.frombuffer(f.read(), np.uint8, offset=16)[: digits * 784].reshape(-1, 28, 28)
        for i, p in enumerate(pixels):
            path = folder / f"fashion-{i:04d}.jpg"
            Image.fromarray(p).save(path, quality=75)
            digits_paths.append(path)
    return photos, digits_paths


def browser_rows(folder: Path, names: list[str], pixels: bool) -> list[dict]:
    """The page's result rows for ``names`` (files of ``folder``), from headless Chromium."""
    with served(folder) as (base, posted):
        images = ",".join(f"/fixture/{name}" for name in names)
        return page_results(base, posted, f"images={images}" + ("&pixels=1" if pixels else ""))


def pixel_difference(row: dict, path: Path) -> tuple[int, float, bool]:
    """Max |browser - Pillow| over the RGB values, the fraction of values that differ, and whether the
    browser applied the EXIF orientation (then compared with Pillow's ``exif_transpose``)."""
    from PIL import ImageOps

    h, w, _ = row["shape"]
    browser = np.frombuffer(base64.b64decode(row["rgba"]), np.uint8).reshape(h, w, 4)[:, :, :3]
    decoded = Image.open(path)
    pillow = np.asarray(decoded.convert("RGB"))
    rotated = pillow.shape != browser.shape
    if rotated:
        pillow = np.asarray(ImageOps.exif_transpose(decoded).convert("RGB"))
    difference = np.abs(browser.astype(np.int16) - pillow)
    return int(difference.max()), float(np.count_nonzero(difference) / difference.size), rotated


def main() -> int:
    from edgeinfer import Model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos, digits = make_folder(folder, 300)
        print("photos: browser (Chromium's decoder, canvas RGBA) vs Pillow, RGB values")
        for row, path in zip(
            browser_rows(folder, [p.name for p in photos], pixels=True), photos, strict=True
        ):
            largest, share, rotated = pixel_difference(row, path)
            note = "  (the browser applied the EXIF orientation; torchvision does not)" if rotated else ""
            print(f"  {path.name:34} max |diff| {largest:3d}, {share:7.2%} of values differ{note}")
        if digits:
            rows = browser_rows(folder, [p.name for p in digits], pixels=True)
            model = Model()
            expected = model.predict_batch(digits)
            agree = sum(r["top"][0]["index"] == p.index for r, p in zip(rows, expected, strict=True))
            shares = [pixel_difference(r, p)[1] for r, p in zip(rows, digits, strict=True)]
            largest = max(pixel_difference(r, p)[0] for r, p in zip(rows, digits, strict=True))
            exact = sum(s == 0 for s in shares)
            print(f"Fashion-MNIST JPEGs (q75, gray): {len(digits)} images, {exact} decoded identically, "
                  f"max |diff| {largest}; top-1 agreement with edgeinfer predict "
                  f"{agree}/{len(digits)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
