"""Folder data sets: the user's own images in torchvision ``ImageFolder`` layout.

Two layouts, one sub-folder per class (class names = sorted folder names, as ``ImageFolder`` finds them):

    DIR/train/<class>/*.jpg, DIR/val/<class>/..., DIR/test/<class>/...   layout "splits"
    DIR/<class>/*.jpg                                                     layout "single": a seeded,
                                                                          stratified train/val/test split

A data set is described by a plain dict (stored in the checkpoint's data config), e.g.
``{"kind": "folder", "root": "/abs/DIR", "layout": "single", "split": [0.8, 0.1, 0.1], "seed": 0}``;
:func:`folder_samples` turns it into the same ``(path, class index)`` list every time, for training here and
for verification, calibration and evaluation in export/. Any format Pillow opens is an image; decoding is
edgeinfer's (``Image.open(f).convert(mode)``, torchvision's loader), so training sees what the runtime sees.

Training decodes each image once more after the check, through the deterministic start of the pipeline
that reads it (:func:`hold_decoded`, e.g. the eval Resize and CenterCrop), and holds the results in memory as
uint8 arrays within a budget (``--cache-mb``): epochs then re-open no file. A split beyond the budget is
decoded each time it is read, through torchvision's ``ImageFolder`` (:func:`image_folder`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from train.data import SPLITS, ArrayDataset

DEFAULT_SPLIT = (0.8, 0.1, 0.1)
# Memory for decoded images (--cache-mb): 2 GiB holds ~2M images of 32x32 grey, ~14k RGB 224x224 crops.
DEFAULT_CACHE_MB = 2048
# Modes whose images carry no colour: a folder of only these trains an "L" model when the mode is "auto".
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

if TYPE_CHECKING:
    from train.engine import Batch, Dist

Sample = tuple[str, int]


class DataSetError(ValueError):
    """A folder that cannot be used as a data set; the message is one line naming the folder."""


@functools.cache
def image_extensions() -> tuple[str, ...]:
    """File extensions of every format the installed Pillow can open (lower case, with the dot)."""
    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN))


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` → fractions (an argparse type: ValueError on anything else)."""
    import argparse

    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        fractions = ()
    if not _valid_split(fractions):
        raise argparse.ArgumentTypeError(
            f"expected three fractions train,val,test summing to 1 (e.g. 0.8,0.1,0.1), got {text!r}"
        )
    return fractions  # type: ignore[return-value]


def describe_folder(
    root: str | Path, split: Sequence[float] = DEFAULT_SPLIT, seed: int = 0
) -> dict[str, Any]:
    """Check ``root`` and describe it as a data-set dict (layout detected), before any training.

    Raises:
        DataSetError: no such folder, no images, fewer than two classes, a class without training images,
            split folders whose classes differ, or a split that leaves val or test empty.
    """
    path = Path(root)
    if not path.is_dir():
        raise DataSetError(f"--data {root}: no such folder")
    present = [s for s in SPLITS if (path / s).is_dir()]
    if present:
        missing = [s for s in SPLITS if s not in present]
        if missing:
            raise DataSetError(
                f"{path} has {'/, '.join(present)}/ but no {'/, '.join(missing)}/: use either "
                f"{path}/train, {path}/val, {path}/test or one folder per class in {path}"
            )
        dataset: dict[str, Any] = {"kind": "folder", "root": str(path.resolve()), "layout": "splits"}
    else:
        fractions = [float(f) for f in split]
        if not _valid_split(fractions):
            raise DataSetError(f"split must be three fractions train,val,test summing to 1, got {split!r}")
        dataset = {"kind": "folder", "root": str(path.resolve()), "layout": "single", "split": fractions,
                   "seed": seed}  # fmt: skip
    classes = folder_classes(dataset)
    train = folder_samples(dataset, "train")
    if not train:
        raise DataSetError(f"no images in the class folders of {_split_root(dataset, 'train')}")
    empty = _classes_without(train, classes)
    if empty:
        where = path / "train" if dataset["layout"] == "splits" else path
        raise DataSetError(f"class folder {where / empty[0]} has no images (classes without images: {empty})")
    for name in SPLITS[1:]:
        if not folder_samples(dataset, name):
            total = sum(len(folder_samples(dataset, s)) for s in SPLITS)
            raise DataSetError(
                f"no {name} images in {path} ({total} images in all): add images"
                + (f" or change --split {','.join(map(str, dataset['split']))}" if "split" in dataset else "")
            )
    return dataset


@dataclass(frozen=True)
class HeldSplit:
    """One split's images held decoded: each is ``np.asarray`` of the PIL image after ``steps`` (uint8 H×W or
    H×W×C), stacked N×... when ``steps`` fix the size, else a list; with the class indices."""

    images: np.ndarray | list[np.ndarray]
    labels: np.ndarray
    steps: tuple[Any, ...]

    @property
    def nbytes(self) -> int:
        if isinstance(self.images, list):
            return sum(image.nbytes for image in self.images)
        return self.images.nbytes


@dataclass(frozen=True)
class FolderData:
    """A checked folder data set: its description, classes, readable samples per split, what was skipped,
    and the splits held decoded in memory (:func:`hold_decoded`)."""

    dataset: dict[str, Any]
    classes: list[str]
    samples: dict[str, list[Sample]]
    skipped: list[str]
    modes: frozenset[str]
    held: Mapping[str, HeldSplit] = dataclasses.field(default_factory=dict)

    @property
    def grayscale(self) -> bool:
        """True when no image has colour: an "auto" image mode then means "L"."""
        return self.modes <= GRAY_MODES


def load_folder(
    root: str | Path, split: Sequence[float] = DEFAULT_SPLIT, seed: int = 0, progress: bool = False
) -> FolderData:
    """Describe ``root`` and decode every image once, warning (one line each) about unreadable files.

    Raises:
        DataSetError: as :func:`describe_folder`, or when a class has no readable training image.
    """
    dataset = describe_folder(root, split, seed)
    classes = folder_classes(dataset)
    samples, skipped, modes = {}, [], set()
    for name in SPLITS:
        samples[name], warnings, found = scan(folder_samples(dataset, name), progress)
        warn(warnings)
        skipped += warnings
        modes |= found
    empty = _classes_without(samples["train"], classes)
    if empty:
        raise DataSetError(f"no readable training image in {root} for the classes {empty}")
    return FolderData(dataset, classes, samples, skipped, frozenset(modes))


def training_batches(
    data: FolderData,
    mode: str,
    transform: Callable[[Any], Any],
    batch_size: int,
    dist: Dist,
    seed: int,
    workers: int,
) -> tuple[Callable[[int], Iterator[Batch]], int]:
    """``(batches(epoch), steps per epoch)``: this rank's shuffled training batches, ``transform`` (a
    ``Compose``) applied image by image, from the images held in memory or else from the files.

    ``batch_size`` is the global batch (each rank takes its share); the last incomplete batch is dropped.
    """
    import torch

    from train import engine

    images = held_dataset(data, "train", transform)
    if images is None:
        images = image_folder(data.dataset, "train", data.samples["train"], mode, transform)
    sampler = torch.utils.data.DistributedSampler(
        images, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed
    )
    per_rank = engine.rank_batch_size(batch_size, dist, len(sampler))
    generator = engine.rank_generator(seed, dist)
    loader = torch.utils.data.DataLoader(images, batch_size=per_rank, sampler=sampler, num_workers=workers,
                                         drop_last=True, generator=generator)  # fmt: skip

    def batches(epoch: int) -> Iterator[Batch]:
        sampler.set_epoch(epoch)
        return iter(loader)

    return batches, len(loader)


def hold_decoded(
    data: FolderData,
    mode: str,
    steps: Mapping[str, Sequence[Any]],
    cache_mb: float = DEFAULT_CACHE_MB,
    progress: bool = False,
) -> tuple[FolderData, str]:
    """Decode the images of each split named in ``steps`` once more, in ``mode``, run them through
    ``steps[split]`` (the deterministic start of the pipeline that will read them: a Resize and CenterCrop,
    or nothing) and hold them in memory, so that no epoch re-opens a file.

    Splits are taken in the order of ``steps`` while their images fit in ``cache_mb`` megabytes in all
    (their size is known before decoding); the others stay on disk and are decoded each time they are read.
    Returns the data with ``held`` set, and one line saying what is held and what is not.

    Raises:
        ValueError: ``steps`` for a split neither empty nor ending with a CenterCrop (its size is unknown).
    """
    from tqdm import tqdm

    budget = cache_mb * 2**20
    held: dict[str, HeldSplit] = {}
    on_disk: list[str] = []
    for split, split_steps in steps.items():
        samples = data.samples[split]
        shapes = _held_shapes(samples, mode, split_steps)
        size = sum(math.prod(shape) for shape in shapes)
        if size > budget:
            on_disk.append(f"{split} ({_size(size)})")
            continue
        budget -= size
        listing = tqdm(samples, desc=f"decoding {split} images", leave=False, disable=not progress)
        decoded = (_decode(path, mode, split_steps) for path, _ in listing)
        images: np.ndarray | list[np.ndarray]
        if split_steps:  # they end with a CenterCrop: one size, one array filled in place
            images = np.empty((len(samples), *shapes[0]), np.uint8)
            for i, image in enumerate(decoded):
                images[i] = image
        else:
            images = list(decoded)
        labels = np.array([target for _, target in samples], dtype=np.int64)
        held[split] = HeldSplit(images, labels, tuple(split_steps))
    counts = ", ".join(f"{split} {len(h.labels):,}" for split, h in held.items())
    used = _size(sum(h.nbytes for h in held.values()))
    summary = f"images held decoded in memory: {counts or 'none'} ({used} of --cache-mb {cache_mb:g})"
    if on_disk:
        summary += f"; decoded every time they are read: {', '.join(on_disk)}"
    return dataclasses.replace(data, held=held), summary


def held_dataset(data: FolderData, split: str, pipeline: Any) -> ArrayDataset | None:
    """``split`` as ``(pipeline(image), label)`` items (as :func:`image_folder` gives them) from the images
    held in memory, whose decoding already ran the pipeline's first steps; None when the split is not held
    or was held through other steps than ``pipeline`` (a ``Compose``) starts with."""
    from torchvision import transforms as T

    held = data.held.get(split)
    if held is None or tuple(pipeline.transforms[: len(held.steps)]) != held.steps:
        return None
    rest = T.Compose([Image.fromarray, *pipeline.transforms[len(held.steps) :]])
    return ArrayDataset(held.images, held.labels, rest)


def _size(nbytes: int) -> str:
    """``nbytes`` for a person: MB, or kB below a tenth of one."""
    return f"{nbytes / 2**20:,.1f} MB" if nbytes >= 2**20 / 10 else f"{nbytes / 2**10:,.1f} kB"


def _decode(path: str, mode: str, steps: Sequence[Any]) -> np.ndarray:
    """The image at ``path`` in ``mode`` (as :func:`image_folder` loads it) after ``steps``, as an array."""
    image = _load(path, mode)
    for step in steps:
        image = step(image)
    return np.asarray(image)


def _held_shapes(samples: Sequence[Sample], mode: str, steps: Sequence[Any]) -> list[tuple[int, ...]]:
    """The shape each image will have once decoded in ``mode`` and run through ``steps``."""
    from torchvision import transforms as T

    bands = Image.getmodebands(mode)
    channels = (bands,) if bands > 1 else ()
    if steps:
        if not isinstance(steps[-1], T.CenterCrop):
            raise ValueError(f"images can be held after steps that end with a CenterCrop, not after {steps}")
        return [(*steps[-1].size, *channels)] * len(samples)
    shapes = []
    for path, _ in samples:
        with Image.open(path) as image:
            shapes.append((image.height, image.width, *channels))
    return shapes


def folder_classes(dataset: Mapping[str, Any]) -> list[str]:
    """The class names (sorted sub-folder names, as ``ImageFolder``); at least two, else DataSetError."""
    from torchvision.datasets.folder import find_classes

    top = _split_root(dataset, "train")
    try:
        classes = find_classes(top)[0]
    except FileNotFoundError:
        raise DataSetError(f"no images in {top}: expected one sub-folder of images per class") from None
    if dataset.get("layout") == "splits":
        for name in SPLITS[1:]:
            other = _split_root(dataset, name)
            try:
                found = find_classes(other)[0]
            except FileNotFoundError:
                found = []
            if found != classes:
                raise DataSetError(f"{other} has classes {found} but {top} has {classes}: they must match")
    if len(classes) < 2:
        raise DataSetError(
            f"{top} has only one class folder ({classes[0]!r}): a classifier needs at least two classes"
        )
    return classes


def folder_samples(dataset: Mapping[str, Any], split: str) -> list[Sample]:
    """The ``(absolute path, class index)`` pairs of one split, in ``ImageFolder`` order; deterministic.

    Layout "single": each class's images are shuffled with ``dataset["seed"]`` and cut at the cumulative
    fractions of ``dataset["split"]`` (stratified). Unreadable files are listed too: :func:`scan` finds them.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    samples = _listing(dataset, split)
    if dataset.get("layout") == "splits":
        return samples
    fractions = dataset.get("split", DEFAULT_SPLIT)
    rng = np.random.default_rng(dataset.get("seed", 0))
    chosen: set[str] = set()
    by_class: dict[int, list[str]] = {}
    for path, target in samples:
        by_class.setdefault(target, []).append(path)
    for target in sorted(by_class):
        paths = by_class[target]
        order = rng.permutation(len(paths))
        cuts = [0, *(int(np.floor(f * len(paths) + 0.5)) for f in np.cumsum(fractions)[:2]), len(paths)]
        index = SPLITS.index(split)
        chosen.update(paths[i] for i in order[cuts[index] : cuts[index + 1]])
    return [(path, target) for path, target in samples if path in chosen]


def scan(samples: Iterable[Sample], progress: bool = False) -> tuple[list[Sample], list[str], set[str]]:
    """Decode every image once: ``(readable samples, one warning line per unreadable file, source modes)``."""
    from tqdm import tqdm

    from edgeinfer.decoding import load_image
    from edgeinfer.errors import ImageError

    good, warnings, modes = [], [], set()
    for path, target in tqdm(list(samples), desc="checking images", leave=False, disable=not progress):
        try:
            load_image(path, "RGB")
        except ImageError as e:  # its message starts with the path and says what is wrong
            warnings.append(f"warning: skipping unreadable image {e}")
            continue
        with Image.open(path) as img:
            modes.add(img.mode)
        good.append((path, target))
    return good, warnings, modes


def image_folder(
    dataset: Mapping[str, Any], split: str, samples: Iterable[Sample], mode: str, transform: Any
) -> Any:
    """torchvision's ``ImageFolder`` over ``samples`` (a subset of the split's files), images in ``mode``."""
    from torchvision.datasets import ImageFolder

    keep = frozenset(path for path, _ in samples)
    loader = functools.partial(_load, mode=mode)
    root = _split_root(dataset, split)
    return ImageFolder(root, transform, loader=loader, is_valid_file=keep.__contains__, allow_empty=True)


def _classes_without(samples: Sequence[Sample], classes: Sequence[str]) -> list[str]:
    """The classes that have no sample in ``samples``."""
    counts = np.bincount([target for _, target in samples], minlength=len(classes))
    return [name for name, count in zip(classes, counts, strict=True) if not count]


def _valid_split(fractions: Sequence[float]) -> bool:
    return len(fractions) == 3 and min(fractions) >= 0 and fractions[0] > 0 and abs(sum(fractions) - 1) < 1e-6


def warn(lines: Iterable[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def _load(path: str, mode: str) -> Image.Image:
    """torchvision's ``pil_loader`` with the mode as a parameter, through edgeinfer's decoder."""
    from edgeinfer.decoding import load_image

    return Image.fromarray(load_image(path, mode))


def _split_root(dataset: Mapping[str, Any], split: str) -> str:
    root = str(dataset["root"])
    return os.path.join(root, split) if dataset.get("layout") == "splits" else root


def _listing(dataset: Mapping[str, Any], split: str) -> list[Sample]:
    from torchvision.datasets.folder import make_dataset

    classes = folder_classes(dataset)
    directory = _split_root(dataset, "train" if dataset.get("layout") != "splits" else split)
    class_to_idx = {name: i for i, name in enumerate(classes)}
    return make_dataset(directory, class_to_idx, extensions=image_extensions(), allow_empty=True)
