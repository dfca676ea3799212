"""The training scripts' data: Fashion-MNIST (the default) or a folder of images (train/folders.py).

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` IDX files. The last ``VAL_SIZE`` of the 60k
training images are the validation set (the file is already shuffled, so this is a fixed,
class-balanced-enough split that needs no seed); the 10k test images are used only for the final report.
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from train.folders import FolderData

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
SPLITS = ("train", "val", "test")
VAL_SIZE = 5000
# Per-pixel mean and std of the 60k training images scaled to [0, 1].
MEAN = (0.2860,)
STD = (0.3530,)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


def load_fashion_mnist(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one split as ``(images uint8 N×28×28, labels int64 N)``.

    Raises:
        ValueError: ``split`` is not one of ``SPLITS``.
        FileNotFoundError: the data set is not installed in ``data_dir``; the message says how to install it.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data_dir = Path(data_dir)
    image_file, label_file = _FILES["test" if split == "test" else "train"]
    missing = [name for name in (image_file, label_file) if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {data_dir} (missing {', '.join(missing)}): "
            "install it with `apt-get install dataset-fashion-mnist` or pass --data-dir"
        )
    images = _read_idx(data_dir / image_file, _IMAGES_MAGIC)
    labels = _read_idx(data_dir / label_file, _LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{data_dir}: {len(images)} images but {len(labels)} labels")
    if split == "train":
        return images[:-VAL_SIZE], labels[:-VAL_SIZE]
    if split == "val":
        return images[-VAL_SIZE:], labels[-VAL_SIZE:]
    return images, labels


class ArrayDataset:
    """Images held in memory (uint8 N×H×W) with their labels, as a map-style data set for a DataLoader.

    An item is ``(transform(image), label)``, like an ``ImageFolder`` item.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Any], Any]) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def dataset_description(data_dir: str | Path) -> dict[str, Any]:
    """The data-set dict of a model trained on Fashion-MNIST (stored in its data config)."""
    return {"kind": "fashion-mnist", "root": str(Path(data_dir).resolve())}


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options both training scripts take: --data, --split, --workers, --limit, --data-dir."""
    from train import folders

    parser.add_argument(
        "--data",
        default="fashion-mnist",
        metavar="DIR",
        help="a folder of images, one sub-folder per class; or fashion-mnist (default)",
    )
    parser.add_argument(
        "--split",
        type=folders.parse_split,
        default=folders.DEFAULT_SPLIT,
        metavar="T,V,T",
        help="train,val,test fractions of a folder without train/ val/ test/ (0.8,0.1,0.1)",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0: in-process)")
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="Fashion-MNIST: at most N images per split"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where Fashion-MNIST is")


def load_data_set(
    args: argparse.Namespace, progress: bool = False
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]] | FolderData, tuple[str, ...], dict[str, Any]]:
    """``(data, labels, data-set dict)`` as the options say: Fashion-MNIST arrays or a checked folder.

    Raises:
        FileNotFoundError: Fashion-MNIST is not installed.
        ValueError: a folder that is not a usable data set (``folders.DataSetError``), or --limit with one.
    """
    from train import folders

    if args.data == "fashion-mnist":
        return load_splits(args.data_dir, args.limit), CLASSES, dataset_description(args.data_dir)
    if args.limit:
        raise ValueError("--limit is for Fashion-MNIST; for a folder, use a smaller folder")
    folder = folders.load_folder(args.data, args.split, args.seed, progress)
    return folder, tuple(folder.classes), folder.dataset


def load_splits(data_dir: str | Path, limit: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All three splits by name; ``limit`` keeps the first ``limit`` images of each (quick runs)."""
    data = {split: load_fashion_mnist(data_dir, split) for split in SPLITS}
    if limit:
        data = {split: (x[:limit], y[:limit]) for split, (x, y) in data.items()}
    return data


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (big-endian header: magic, then one uint32 per dimension)."""
    with gzip.open(path, "rb") as f:
        data = bytearray(f.read())  # writable, so torch.from_numpy can share it without a warning
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: not an IDX file of the expected kind (magic {found}, expected {magic})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
