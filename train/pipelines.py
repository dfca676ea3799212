"""The training scripts' torchvision pipelines: each model's eval preprocessing, declared once, the training
pipelines derived from it, and the data config it implies.

The eval pipeline is what export and the runtime reproduce: :func:`data_config` stores its edgeinfer spec.
Steps are recognised by their torchvision type, never by their position or class name.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from torchvision import transforms as T

from train.config import DataConfig
from train.data import MEAN, STD

if TYPE_CHECKING:
    from torch import nn
    from torchvision.transforms import Compose

Step = TypeVar("Step")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
CROP_FRACTION = 0.875  # resize to 256, crop 224: the classic ImageNet evaluation


def eval_pipeline(
    size: int = 28, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD, arrays: bool = True
) -> Compose:
    """A small network's eval preprocessing (train_cnn.py): any image (in the model's mode) → size×size,
    normalised.

    ``arrays``: the images are uint8 arrays (Fashion-MNIST), so the pipeline starts with ToPILImage; folder
    images arrive as PIL images. Fashion-MNIST images are already 28×28, so Resize/CenterCrop are the
    identity on them; they make the exported model accept other sizes.
    """
    steps = [T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose([T.ToPILImage(), *steps] if arrays else steps)


def train_pipeline(eval_compose: Compose, flip: bool, shift: int) -> Compose:
    """Folder training for a small network: the eval pipeline with a horizontal flip and a shift of up to
    ``shift`` pixels (a padded random crop) before ToTensor, applied image by image."""
    crop = find(eval_compose, T.CenterCrop)
    augmentation: list[Any] = [T.RandomHorizontalFlip()] if flip else []
    if shift:
        augmentation.append(T.RandomCrop(crop.size, padding=shift))
    head, tail = split_at_to_tensor(eval_compose)
    return T.Compose([*head, *augmentation, *tail])


def fashion_mnist_backbone_pipeline() -> Compose:
    """A pretrained backbone's eval preprocessing of Fashion-MNIST (transfer.py): 28×28 grayscale arrays →
    3×224×224, ImageNet-normalised."""
    return T.Compose([
        T.ToPILImage(), T.Grayscale(3), T.Resize(256), T.CenterCrop(INPUT_SIZE), T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


def backbone_pipeline(arch: str, model: nn.Module, image_size: int = 0) -> Compose:
    """The backbone's own eval preprocessing for RGB PIL images, on the PIL path, which edgeinfer reproduces
    bit for bit.

    A torchvision arch: resize → centre crop → normalise with the sizes, interpolation, mean and std of its
    weights' ``transforms()``; a timm network (one with a ``pretrained_cfg``): timm's own
    (:func:`timm_pipeline`); any other factory: 256 → 224 with ImageNet statistics. ``image_size`` (if set)
    replaces the crop size and scales the resize with it.
    """
    if ":" in arch and getattr(model, "pretrained_cfg", None) is not None:
        return timm_pipeline(model, image_size)
    crop, resize, interpolation, mean, std = _backbone_preset(arch)
    if image_size:
        crop, resize = image_size, round(image_size * resize / crop)
    return T.Compose([
        T.Resize(resize, T.InterpolationMode(interpolation)), T.CenterCrop(crop), T.ToTensor(),
        T.Normalize(mean, std),
    ])  # fmt: skip


def timm_pipeline(model: nn.Module, image_size: int = 0) -> Compose:
    """A timm network's own eval preprocessing, as timm documents it:
    ``create_transform(**resolve_data_config(args, model=model))`` from its ``pretrained_cfg``, whatever its
    crop mode (center, squash, border), size or statistics. ``image_size`` (if set) is timm's ``img_size``:
    the input becomes image_size × image_size, the resize follows from the model's crop_pct.
    """
    from timm.data import create_transform, resolve_data_config

    args = {"img_size": image_size} if image_size else {}
    return create_transform(**resolve_data_config(args, model=model))


def backbone_train_pipeline(eval_compose: Compose) -> Compose:
    """Folder training for a backbone: RandomResizedCrop at the eval crop size (and the eval resize's
    interpolation) + horizontal flip, then the eval pipeline from ToTensor on."""
    resize = find(eval_compose, _kinds(T.Resize, "ResizeKeepRatio"))
    crop = find(eval_compose, _kinds(T.CenterCrop, "CenterCropOrPad"))
    _, tail = split_at_to_tensor(eval_compose)
    return T.Compose([
        T.RandomResizedCrop(crop.size, interpolation=resize.interpolation), T.RandomHorizontalFlip(), *tail,
    ])  # fmt: skip


def data_config(
    architecture: str,
    labels: Sequence[str],
    image_mode: str,
    pipeline: Compose,
    dataset: dict[str, Any],
) -> DataConfig:
    """The model's data config: ``pipeline`` as an edgeinfer spec, and the input size it makes (the centre
    crop's size; the channels of a Grayscale step, else of ``image_mode``)."""
    from edgeinfer.transforms import from_torchvision

    gray = [step for step in pipeline.transforms if isinstance(step, T.Grayscale)]
    channels = gray[-1].num_output_channels if gray else len(image_mode)
    input_size = (channels, *find(pipeline, _kinds(T.CenterCrop, "CenterCropOrPad")).size)
    spec = from_torchvision(pipeline).to_spec()
    return DataConfig.create(architecture, labels, image_mode, input_size, spec, dataset)


def find(pipeline: Compose, kind: type[Step] | tuple[type[Step], ...]) -> Step:
    """The first step of ``pipeline`` that is a ``kind`` (e.g. ``T.Normalize``, or a tuple of kinds).

    Raises:
        ValueError: ``pipeline`` has no such step.
    """
    step = next((t for t in pipeline.transforms if isinstance(t, kind)), None)
    if step is None:
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValueError(f"the pipeline has no {names} step: {pipeline.transforms}")
    return step


def _kinds(torchvision_kind: type[Step], timm_name: str) -> tuple[type[Step], ...]:
    """torchvision's kind of step and timm's class that plays its part in timm's pipelines (ResizeKeepRatio,
    CenterCropOrPad), when timm is in use: its module is loaded wherever a step is one of its classes."""
    timm_transforms = sys.modules.get("timm.data.transforms")
    if timm_transforms is None:
        return (torchvision_kind,)
    return torchvision_kind, getattr(timm_transforms, timm_name)


def split_at_to_tensor(pipeline: Compose) -> tuple[list[Any], list[Any]]:
    """(the PIL steps before ToTensor, ToTensor and what follows it): folder images can be held in memory
    after the first part (train/folders.py ``hold_decoded``)."""
    index = pipeline.transforms.index(find(pipeline, T.ToTensor))
    return pipeline.transforms[:index], pipeline.transforms[index:]


def _backbone_preset(arch: str) -> tuple[int, int, str, tuple[float, ...], tuple[float, ...]]:
    """(crop, resize, interpolation, mean, std): a torchvision arch's weights' preset, else (a factory
    without a timm config) 224 from 256, bilinear, ImageNet statistics."""
    import torchvision

    if ":" in arch:
        return INPUT_SIZE, int(INPUT_SIZE / CROP_FRACTION), "bilinear", IMAGENET_MEAN, IMAGENET_STD
    preset = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
    interpolation = preset.interpolation.value
    return (
        preset.crop_size[0],
        preset.resize_size[0],
        interpolation,
        tuple(preset.mean),
        tuple(preset.std),
    )
