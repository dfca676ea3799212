"""The training scripts' torchvision pipelines: each model's eval preprocessing, declared once, the training
pipelines derived from it, and the data config it implies.

The eval pipeline is what export and the runtime reproduce: :func:`data_config` stores its edgeinfer spec.
Steps are recognised by their torchvision type, never by their position or class name.
"""

from __future__ import annotations

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
    """The backbone's own eval preprocessing for RGB PIL images: resize → centre crop → normalise.

    Sizes, interpolation, mean and std come from the torchvision weights' ``transforms()`` (torchvision
    archs) or a timm-style ``pretrained_cfg`` on the model, else 256 → 224 with ImageNet statistics; applied
    on the PIL path, which edgeinfer reproduces bit for bit. ``image_size`` (if set) replaces the crop size
    and scales the resize with it.
    """
    crop, resize, interpolation, mean, std = _backbone_preset(arch, model)
    if image_size:
        crop, resize = image_size, round(image_size * resize / crop)
    return T.Compose([
        T.Resize(resize, T.InterpolationMode(interpolation)), T.CenterCrop(crop), T.ToTensor(),
        T.Normalize(mean, std),
    ])  # fmt: skip


def backbone_train_pipeline(eval_compose: Compose) -> Compose:
    """Folder training for a backbone: RandomResizedCrop at the eval crop size (and the eval resize's
    interpolation) + horizontal flip, then the eval pipeline from ToTensor on."""
    resize, crop = find(eval_compose, T.Resize), find(eval_compose, T.CenterCrop)
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
    input_size = (channels, *find(pipeline, T.CenterCrop).size)
    spec = from_torchvision(pipeline).to_spec()
    return DataConfig.create(architecture, labels, image_mode, input_size, spec, dataset)


def find(pipeline: Compose, kind: type[Step]) -> Step:
    """The first step of ``pipeline`` that is a ``kind`` (e.g. ``T.Normalize``).

    Raises:
        ValueError: ``pipeline`` has no such step.
    """
    step = next((t for t in pipeline.transforms if isinstance(t, kind)), None)
    if step is None:
        raise ValueError(f"the pipeline has no {kind.__name__} step: {pipeline.transforms}")
    return step


def split_at_to_tensor(pipeline: Compose) -> tuple[list[Any], list[Any]]:
    """(the PIL steps before ToTensor, ToTensor and what follows it): folder images can be held in memory
    after the first part (train/folders.py ``hold_decoded``)."""
    index = pipeline.transforms.index(find(pipeline, T.ToTensor))
    return pipeline.transforms[:index], pipeline.transforms[index:]


def _backbone_preset(
    arch: str, model: nn.Module
) -> tuple[int, int, str, tuple[float, ...], tuple[float, ...]]:
    """(crop, resize, interpolation, mean, std) as the backbone declares them (as timm resolves them)."""
    import torchvision

    if ":" not in arch:
        preset = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
        interpolation = preset.interpolation.value
        return (
            preset.crop_size[0],
            preset.resize_size[0],
            interpolation,
            tuple(preset.mean),
            tuple(preset.std),
        )
    cfg = getattr(model, "pretrained_cfg", None) or {}
    crop = cfg.get("input_size", (3, INPUT_SIZE, INPUT_SIZE))[-1]
    resize = int(crop / cfg.get("crop_pct", CROP_FRACTION))  # timm rounds down, as here
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    return crop, resize, cfg.get("interpolation", "bilinear"), mean, std
