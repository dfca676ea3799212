"""Fashion-MNIST test images as a folder data set: RGB JPEG files of mixed sizes, one folder per class.

    python train/fashion_folder.py --per-class 100 --out data/fashion-folder
    python train/transfer.py --data data/fashion-folder --arch ... --out runs/folder

A realistic stand-in for "my own photos": real images, a lossy format, assorted sizes and aspect ratios, class
names as folder names. Each image is upscaled (bicubic) to a random width and height in --sizes, converted to
RGB and saved as JPEG (quality 90). Seeded: the same command writes the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from train.data import CLASSES, DEFAULT_DATA_DIR, load_fashion_mnist


def write_folder(
    data_dir: Path, out: Path, per_class: int, sizes: tuple[int, int], seed: int
) -> dict[str, int]:
    """Write ``per_class`` test images of each class to ``out/<class name>/``; returns counts per class."""
    images, labels = load_fashion_mnist(data_dir, "test")
    rng = np.random.default_rng(seed)
    counts = {}
    for index, name in enumerate(CLASSES):
        folder = out / name.replace("/", "-")  # "T-shirt/top" is not a folder name
        folder.mkdir(parents=True, exist_ok=True)
        chosen = np.flatnonzero(labels == index)[:per_class]
        for i in chosen:
            width, height = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
            image = Image.fromarray(images[i]).resize((width, height), Image.Resampling.BICUBIC)
            image.convert("RGB").save(folder / f"{i:05d}.jpg", quality=90)
        counts[folder.name] = len(chosen)
    return counts


def main(args: argparse.Namespace) -> None:
    try:
        counts = write_folder(args.data_dir, args.out, args.per_class, tuple(args.sizes), args.seed)
    except FileNotFoundError as e:
        raise SystemExit(f"fashion_folder.py: error: {e}") from None
    print(f"wrote {sum(counts.values())} JPEG files in {len(counts)} class folders under {args.out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=100, metavar="N")
    parser.add_argument("--sizes", type=int, nargs=2, default=(64, 192), metavar=("MIN", "MAX"),
                        help="range of widths and heights in pixels")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("data/fashion-folder"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where Fashion-MNIST is")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
