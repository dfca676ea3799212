"""Real Fashion-MNIST images turned into model inputs: through edgeinfer (the runtime path) or torchvision.

Export never writes preprocessing code of its own: the edgeinfer side is ``from_spec`` of the metadata's
spec, and the torchvision side is the twin pipeline built from the same spec, used only as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeinfer.transforms import from_spec

if TYPE_CHECKING:
    import PIL.Image
    import torch


def preprocess(spec: dict[str, Any], images: np.ndarray) -> np.ndarray:
    """Stack ``from_spec(spec)(image)`` over uint8 N×H×W images into a float32 N×C×H×W batch."""
    transform = from_spec(spec)
    return np.stack([transform(image) for image in images]).astype(np.float32, copy=False)


def reference_preprocess(spec: dict[str, Any], images: np.ndarray) -> np.ndarray:
    """The same batch through torchvision's PIL path, rebuilt from the same spec."""
    from PIL import Image

    transform = reference_transform(spec)
    return np.stack([transform(Image.fromarray(image)).numpy() for image in images]).astype(
        np.float32, copy=False
    )


def reference_transform(spec: dict[str, Any]) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """``torchvision_pipeline(spec)`` as a function of one PIL image, the way a torchvision user feeds it."""
    pipeline = torchvision_pipeline(spec)
    steps = spec["transforms"] if spec["type"] == "Compose" else [spec]
    if steps[0]["type"] == "ToPILImage":  # torchvision's ToPILImage refuses PIL input: hand it the array
        return lambda image: pipeline(np.asarray(image))
    return pipeline


def torchvision_pipeline(spec: dict[str, Any]) -> Callable[[Any], Any]:
    """torchvision's classic transform for an edgeinfer spec (the names and arguments are torchvision's)."""
    from torchvision import transforms

    kind = spec["type"]
    if kind == "Compose":
        return transforms.Compose([torchvision_pipeline(step) for step in spec["transforms"]])
    # pass_order records which Pillow the spec reproduces; torchvision always uses the installed one.
    kwargs = {k: v for k, v in spec.items() if k not in ("type", "pass_order")}
    if "interpolation" in kwargs:
        kwargs["interpolation"] = transforms.InterpolationMode(kwargs["interpolation"])
    if not hasattr(transforms, kind):
        raise ValueError(f"no torchvision transform named {kind!r} for the spec {spec}")
    return getattr(transforms, kind)(**kwargs)


def sample(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of ``count`` images (all of them when ``count`` is at least their number)."""
    if count >= len(images):
        return images, labels
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=count, replace=False))
    return images[chosen], labels[chosen]
