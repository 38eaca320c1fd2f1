"""Split and statistics helpers of the in-memory data path: balanced subsets, floats, mean/std."""

from __future__ import annotations

import torch


def balanced_subset(y: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``size`` examples taken round-robin over the classes in a seeded order."""
    perm = torch.randperm(len(y), generator=generator)
    labels = y[perm]
    rank_in_class = torch.zeros_like(labels)
    for c in labels.unique():
        mask = labels == c
        rank_in_class[mask] = torch.arange(int(mask.sum()))
    # sort by (rank within class, position): one of each class, then a second of each, ...
    order = torch.argsort(rank_in_class * len(y) + torch.arange(len(y)))
    return perm[order[:size]].sort().values


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]; anything else -> float32 as is. Always a new tensor."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)  # the same arithmetic as torchvision's ToTensor
    return x.to(torch.float32, copy=True)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dim 1) mean and std of ``to_float(x)``, in chunks (float64 sums).

    Chunking keeps memory small: CIFAR's 50,000 images as one float tensor would be 600 MB.
    """
    if x.ndim == 1:
        x = x.unsqueeze(1)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    dims = [0, *range(2, x.ndim)]
    for start in range(0, len(x), chunk):
        xf = to_float(x[start : start + chunk]).double()
        total += xf.sum(dim=dims)
        total_sq += xf.square().sum(dim=dims)
    count = x.numel() // x.shape[1]
    mean = total / count
    var = (total_sq - count * mean.square()) / max(count - 1, 1)  # unbiased, like Tensor.std
    return mean.float(), var.clamp_min(0).sqrt().float().clamp_min(1e-6)
