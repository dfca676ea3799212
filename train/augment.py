"""Training-only augmentation on whole uint8 batches, vectorised (per-image random choices, one generator).

Applied before the eval pipeline's normalisation; never part of the declared eval preprocessing.
"""

from __future__ import annotations

import torch


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of ``images`` (N×C×H×W) left-right with probability 1/2."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_shift(images: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``shift`` pixels in x and y, filling with 0.

    Same as torchvision's ``RandomCrop(size, padding=shift)`` per image.
    """
    n, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift))
    top, left = torch.randint(0, 2 * shift + 1, (2, n, 1, 1, 1), generator=generator)
    rows = top + torch.arange(height).view(1, 1, height, 1)
    cols = left + torch.arange(width).view(1, 1, 1, width)
    samples = torch.arange(n).view(n, 1, 1, 1)
    return padded[samples, torch.arange(channels).view(1, channels, 1, 1), rows, cols]
