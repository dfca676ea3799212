"""Training-only augmentation on whole batches, vectorised (per-sample random choices, one generator).

Applied to uint8 images before the eval pipeline's normalisation (flip, shift) and after it (erasing,
which fills with 0 — the data-set mean — like torchvision's ``RandomErasing(value=0)``). Never part of the
declared eval preprocessing.
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


def random_erase(
    images: torch.Tensor,
    p: float,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.02, 0.2),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Zero one random rectangle in each image with probability ``p`` (Zhong et al., Random Erasing).

    The rectangle covers a fraction ``scale`` of the image with aspect ratio ``ratio`` (log-uniform).
    """
    n, _, height, width = images.shape
    area = height * width * torch.empty(n).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n).uniform_(*torch.log(torch.tensor(ratio)).tolist(), generator=generator)
    aspect = torch.exp(log_ratio)
    h = torch.sqrt(area * aspect).round().clamp(1, height).long()
    w = torch.sqrt(area / aspect).round().clamp(1, width).long()
    top = (torch.rand(n, generator=generator) * (height - h + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - w + 1)).long()
    apply = torch.rand(n, generator=generator) < p
    ys = torch.arange(height).view(1, height, 1)
    xs = torch.arange(width).view(1, 1, width)
    inside = ((ys >= top.view(-1, 1, 1)) & (ys < (top + h).view(-1, 1, 1))
              & (xs >= left.view(-1, 1, 1)) & (xs < (left + w).view(-1, 1, 1)) & apply.view(-1, 1, 1))
    return images.masked_fill(inside[:, None], 0)
