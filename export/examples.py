"""Write the README's example images: the first Fashion-MNIST test image of each class, as PNG.

Usage:
    python export/examples.py --out examples

Files are named after the class (``examples/ankle_boot.png``, ...), so ``edgeinfer predict examples/*.png``
shows at a glance whether each label is right. The first image of each class in file order is taken,
whatever the model makes of it: no picking.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train.data import CLASSES, DEFAULT_DATA_DIR, load_fashion_mnist


def file_name(label: str) -> str:
    """``"T-shirt/top"`` -> ``"t-shirt_top.png"``, ``"Ankle boot"`` -> ``"ankle_boot.png"``."""
    return label.lower().replace("/", "_").replace(" ", "_") + ".png"


def write_examples(data_dir: str | Path, out: str | Path) -> list[Path]:
    """Save the first test image of each class under ``out``; returns the paths in class order."""
    from PIL import Image

    images, labels = load_fashion_mnist(data_dir, "test")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, label in enumerate(CLASSES):
        first = int((labels == index).argmax())
        path = out / file_name(label)
        Image.fromarray(images[first]).save(path, optimize=True)
        print(f"{path}: test image {first} ({label})")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="examples")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    args = parser.parse_args(argv)
    try:
        write_examples(args.data_dir, args.out)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
