"""Record what Pillow 12 (horizontal pass always first) outputs, for tests/test_resample.py.

Pillow 13 changed the pass order for tall downscales, so the "pillow12" pass order can only be checked
against outputs recorded with a real Pillow 12. Run it under Pillow 12, e.g.:

    pip install --target /tmp/pillow12 'pillow==12.*'
    PYTHONPATH=/tmp/pillow12 python tests/data/make_pillow12_expectations.py

It writes tests/data/pillow12_resize.npz: for case i, ``in_i`` (input array), ``out_i`` (Pillow 12's
``Image.resize`` result), ``size_i`` ((height, width)) and ``filter_i`` (Pillow filter code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL
from PIL import Image

SEED = 12
OUTPUT = Path(__file__).with_name("pillow12_resize.npz")
# (input height, width, channels, output height, width, filter). Most are tall downscales, where Pillow 13
# runs the vertical pass first and so differs from Pillow 12; the last ones are geometries where both agree.
CASES = [
    (1000, 100, 1, 640, 64, 2),  # 100x1000 -> 64x640 in PIL's (w, h) notation
    (300, 40, 1, 190, 25, 1),
    (250, 30, 1, 160, 19, 3),
    (160, 48, 3, 119, 36, 2),  # a scaled-down 300x1000 -> 224x746
    (120, 40, 3, 90, 30, 3),
    (120, 30, 4, 60, 25, 1),
    (120, 30, 2, 60, 25, 5),
    (100, 24, 3, 38, 21, 4),
    (97, 13, 1, 31, 11, 3),
    (80, 20, 4, 27, 22, 2),  # width upscaled, height shrunk: still vertical first in Pillow 13
    (45, 60, 3, 34, 45, 2),  # landscape: same order in both versions
    (36, 48, 4, 22, 31, 1),
]


def make_image(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    """A smooth gradient plus noise (compresses well, looks like a photo); alpha has 0, 255 and between."""
    y, x = np.mgrid[0:height, 0:width]
    planes = []
    for c in range(channels):
        base = 127 + 100 * np.sin(x / (7 + 3 * c) + y / (11 + 2 * c))
        planes.append(base + rng.normal(0, 4, (height, width)))
    img = np.clip(np.stack(planes, axis=-1), 0, 255).round().astype(np.uint8)
    if channels in (2, 4):
        alpha = img[..., -1]
        alpha[alpha < 60] = 0
        alpha[alpha > 200] = 255
    return img[..., 0] if channels == 1 else img


def main() -> None:
    if not PIL.__version__.startswith("12."):
        raise SystemExit(f"run this under Pillow 12, found Pillow {PIL.__version__}")
    rng = np.random.default_rng(SEED)
    arrays = {"pillow_version": np.array(PIL.__version__)}
    for i, (h, w, c, out_h, out_w, filter) in enumerate(CASES):
        img = make_image(rng, h, w, c)
        arrays[f"in_{i}"] = img
        arrays[f"out_{i}"] = np.asarray(Image.fromarray(img).resize((out_w, out_h), filter))
        arrays[f"size_{i}"] = np.array([out_h, out_w])
        arrays[f"filter_{i}"] = np.array(filter)
        print(f"case {i}: {img.shape} -> {(out_h, out_w)} filter {filter}")
    np.savez_compressed(OUTPUT, **arrays)
    size = OUTPUT.stat().st_size
    print(f"wrote {len(CASES)} cases to {OUTPUT} ({size} bytes) with Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
