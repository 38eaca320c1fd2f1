"""Augmentations applied to whole batches as tensor operations (no per-sample Python loop).

Random crop with zero padding and horizontal flip, the standard CIFAR recipe (He et al. 2016,
"Deep Residual Learning", section 4.2: "4 pixels are padded on each side, and a 32x32 crop is
randomly sampled from the padded image or its horizontal flip"); done per batch on the device the
batch lives on, as in KellerJordan/cifar10-airbench. The random offsets and flip masks are drawn
on that device too, so an augmented GPU batch costs no CPU-to-GPU copy and no host sync. Both
work on images (B, C, H, W) and on sequences (B, C, L) (the crop then shifts along L; flipping a
sequence reverses it). A ``generator`` must live on the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(
    x: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero-pad the spatial dims by ``padding`` and crop each example at a random offset.

    The same as torchvision's ``RandomCrop(size, padding=padding)`` (fill 0) per example: every
    example gets its own offset in ``[0, 2 * padding]`` along each spatial dim.
    """
    if padding <= 0:
        return x
    spatial = x.shape[2:]
    # F.pad lists pads from the last dim backwards: (left, right, top, bottom)
    padded = F.pad(x, (padding, padding) * len(spatial))
    n = x.shape[0]
    for d, size in enumerate(spatial):
        dim = 2 + d
        offset = torch.randint(
            0, 2 * padding + 1, (n, 1), generator=generator, device=x.device
        )  # (B, 1)
        idx = torch.arange(size, device=x.device).unsqueeze(0) + offset  # (B, size)
        view = [n] + [1] * (padded.ndim - 1)
        view[dim] = size
        idx = idx.view(view).expand(*padded.shape[:dim], size, *padded.shape[dim + 1 :])
        padded = padded.gather(dim, idx)
    return padded


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each example along its last dim with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5  # (B,)
    return torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)
