"""Images for export, and the two ways they become model inputs.

Where images come from: a split of the data set a checkpoint names (Fashion-MNIST arrays or the files of an
image folder), or what a caller hands to ``export_model`` (a folder, or a list of paths/arrays/PIL images).

How they become tensors: ``edgeinfer.pipeline.preprocess_batch(images, metadata)`` is the runtime's own image
path (decode → the model's image mode → its spec), used for calibration, verification and the report; export
writes no preprocessing code of its own. :func:`reference_preprocess` is torchvision's side (the PIL loader's
``convert(mode)``, then a torchvision pipeline), used only as the oracle that edgeinfer must equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeinfer.transforms import to_torchvision
from edgeinfer.transforms.interop import needs_timm

if TYPE_CHECKING:
    import PIL.Image
    import torch


@dataclass(frozen=True)
class ImageSet:
    """Images (paths, uint8 arrays or PIL images; or one N×H×W array) with class indices when known."""

    images: Sequence[Any]
    labels: np.ndarray | None
    source: str  # for messages and the report, e.g. "fashion-mnist test" or "/data/flowers (val)"

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, count: int, seed: int) -> ImageSet:
        """A seeded random subset of ``count`` images, in their original order (all when fewer)."""
        if count >= len(self):
            return self
        chosen = np.sort(np.random.default_rng(seed).choice(len(self), size=count, replace=False))
        images = (
            self.images[chosen] if isinstance(self.images, np.ndarray) else [self.images[i] for i in chosen]
        )
        labels = None if self.labels is None else self.labels[chosen]
        return ImageSet(images, labels, self.source)


def load_split(dataset: Mapping[str, Any], split: str, labels: Sequence[str]) -> ImageSet:
    """The ``split`` ("train", "val" or "test") of a checkpoint's data set (its data config's ``dataset``).

    Raises:
        ValueError: an unknown data set kind, a folder whose classes are not ``labels``, or no images.
        FileNotFoundError: the data set is not where the config says.
    """
    kind = dataset.get("kind")
    if kind == "fashion-mnist":
        from train.data import DEFAULT_DATA_DIR, load_fashion_mnist

        images, labels = load_fashion_mnist(dataset.get("root") or DEFAULT_DATA_DIR, split)
        found = ImageSet(images, labels, f"fashion-mnist {split}")
    elif kind == "folder":
        from train.folders import folder_classes, folder_samples, scan, warn

        classes = folder_classes(dataset)
        if classes != list(labels):
            raise ValueError(
                f"{dataset['root']}: class folders {classes} are not the model's labels {list(labels)}"
            )
        samples, warnings, _ = scan(folder_samples(dataset, split))
        warn(warnings)  # unreadable files are skipped, one line each, as in training
        found = ImageSet(
            [path for path, _ in samples], np.array([i for _, i in samples], np.int64),
            f"{dataset['root']} ({split})",
        )  # fmt: skip
    else:
        raise ValueError(
            f"unknown data set kind {kind!r} in {dict(dataset)}: expected 'fashion-mnist' or 'folder'"
        )
    if not len(found):
        raise ValueError(f"{found.source}: no images")
    return found


def data_set(data: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """The data set that ``--data`` names: "fashion-mnist", or an image folder (split like the checkpoint's
    folder when it was trained on one; see train.folders.describe_folder).

    Raises:
        train.folders.DataSetError (a ValueError): the folder cannot be used as a data set.
    """
    from train.folders import DEFAULT_SPLIT, describe_folder

    if data == "fashion-mnist":
        return {"kind": "fashion-mnist", "root": current.get("root") if current.get("kind") == data else None}
    return describe_folder(data, current.get("split", DEFAULT_SPLIT), current.get("seed", 0))


def from_source(source: str | Path | Sequence[Any], labels: Sequence[str], what: str) -> ImageSet:
    """``export_model``'s ``calibration=`` / ``verify=``: a folder or a sequence of images.

    A folder laid out like torchvision's ``ImageFolder`` (one sub-folder per class, named as in ``labels``)
    gives labelled images; a folder of image files, or a sequence, gives unlabelled ones.

    Raises:
        ValueError: no images, or class folders that are not among ``labels``.

    Unreadable files in a folder are skipped with one warning line each on stderr, as in training.
    """
    if isinstance(source, (str, Path)):
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        from train.folders import scan, warn

        root = Path(source)
        if not root.is_dir():
            raise FileNotFoundError(f"{what}: {root} is not a directory")
        if any(p.is_dir() for p in root.iterdir()):
            classes, _ = find_classes(str(root))
            unknown = sorted(set(classes) - set(labels))
            if unknown:
                raise ValueError(f"{what}: {root} has class folders {unknown} that are not among the labels")
            samples = make_dataset(
                str(root), {c: labels.index(c) for c in classes}, extensions=IMG_EXTENSIONS
            )
            found = ImageSet([p for p, _ in samples], np.array([i for _, i in samples], np.int64), str(root))
        else:
            files = sorted(str(p) for p in root.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
            found = ImageSet(files, None, str(root))
        targets = [-1] * len(found) if found.labels is None else found.labels.tolist()
        samples, warnings, _ = scan(zip(found.images, targets, strict=True))
        warn(warnings)  # unreadable files are skipped, one line each, as in training and load_split
        kept = None if found.labels is None else np.array([i for _, i in samples], np.int64)
        found = ImageSet([path for path, _ in samples], kept, found.source)
    else:
        found = ImageSet(list(source), None, f"{len(source)} {what} images")
    if not len(found):
        raise ValueError(f"{what}: no images in {found.source}")
    return found


def reference_preprocess(
    images: Sequence[Any], image_mode: str, transform: Callable[[PIL.Image.Image], torch.Tensor]
) -> np.ndarray:
    """The same batch the torchvision way: each image opened with PIL and converted to ``image_mode`` like
    torchvision's ``pil_loader``, then ``transform`` (a :func:`reference_transform` or a user's Compose)."""
    tensors = [transform(_pil_loader(image, image_mode)).numpy() for image in images]
    return np.stack(tensors).astype(np.float32, copy=False)


def reference_transform(spec: dict[str, Any]) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """torchvision's pipeline for ``spec`` (``edgeinfer.transforms.to_torchvision``) as a function of one PIL
    image, the way a torchvision user feeds it; timm's classes (a timm model's "border" crop mode or
    non-square input) are timm's own."""
    import torchvision.transforms as T

    timm_transforms = None
    if needs_timm(spec):
        from timm.data import transforms as timm_transforms
    return pil_callable(to_torchvision(spec, T, timm_transforms))


def pil_callable(transform: Callable[[Any], Any]) -> Callable[[PIL.Image.Image], Any]:
    """``transform`` fed a PIL image; a pipeline that starts with ToPILImage (which refuses PIL input) gets
    the image's array instead."""
    from torchvision.transforms import ToPILImage

    steps = getattr(transform, "transforms", [transform])
    if isinstance(steps[0], ToPILImage):
        return lambda image: transform(np.asarray(image))
    return transform


def _pil_loader(image: Any, mode: str) -> PIL.Image.Image:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert(mode)
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert(mode)
    with open(image, "rb") as f:  # torchvision.datasets.folder.pil_loader, with the model's mode
        return Image.open(f).convert(mode)
