"""scikit-learn's handwritten digits as a folder data set: 1,797 grayscale 8×8 PNG files, a folder per digit.

    python train/digits_folder.py --out data/digits-folder
    python train/train_cnn.py --data data/digits-folder --image-size 32 --split 0.7,0.15,0.15 --epochs 15

A small folder of real scans that trains in seconds: the folder-path benchmark of the README's training
table. The 16 grey levels of ``sklearn.datasets.load_digits`` (values 0-16) are scaled to 0-255; the file
``<digit>/<index>.png`` holds image ``index`` of the data set. Needs scikit-learn (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

LEVELS = 16  # load_digits pixel values run from 0 to 16


def write_folder(out: Path) -> dict[str, int]:
    """Write every digit image to ``out/<digit>/<index>.png``; returns the count per class folder."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255 / LEVELS)).astype(np.uint8)
    counts: dict[str, int] = {}
    for index, (image, target) in enumerate(zip(pixels, digits.target, strict=True)):
        folder = out / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / f"{index:04d}.png")
        counts[folder.name] = counts.get(folder.name, 0) + 1
    return dict(sorted(counts.items()))


def main(args: argparse.Namespace) -> None:
    try:
        counts = write_folder(args.out)
    except ImportError:
        raise SystemExit("digits_folder.py: error: needs scikit-learn: pip install -e '.[bench]'") from None
    print(f"wrote {sum(counts.values())} PNG files in {len(counts)} class folders under {args.out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/digits-folder"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
