"""The classic per-sample path (``data.loader=torchvision``), kept to compare against.

One example at a time, as torchvision's datasets do it: an array-backed dataset (MNIST, CIFAR)
turns the uint8 array of one example into a PIL image in ``__getitem__``; a file-backed one
(Flowers-102, an image folder) opens and resizes the image file with PIL each time; then
torchvision transforms (``ToTensor``, ``RandomCrop``, ``RandomHorizontalFlip``, ``Normalize``) and
a ``torch.utils.data.DataLoader`` with ``num_workers`` collate the batch. Without augmentation the
examples are identical to the in-memory path's for the same indices (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from depthbench.data.augment import random_crop, random_flip
from depthbench.data.images import load_image

if TYPE_CHECKING:
    from depthbench.data.base import InMemoryDataModule

SampleTransform = Callable[[object], torch.Tensor]


def is_image_tensor(x: torch.Tensor) -> bool:
    """uint8 (N, C, H, W) with 1 or 3 channels: stored as images, served as PIL per sample."""
    return x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] in (1, 3)


class ArraySampleDataset(Dataset):
    """``(x[i], y[i])`` one at a time; image tensors become PIL images, as in torchvision."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: SampleTransform) -> None:
        self.x, self.y, self.transform = x, y, transform
        self.image = is_image_tensor(x)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.x[i]
        if self.image:  # like torchvision's MNIST/CIFAR10 __getitem__: Image.fromarray(img)
            x = Image.fromarray(x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy())
        return self.transform(x), int(self.y[i])


class ImageFileSampleDataset(Dataset):
    """``(load(files[i]), labels[i])``: decode and resize the image file on every access."""

    def __init__(
        self,
        files: Sequence[Path],
        labels: torch.Tensor,
        image_size: tuple[int, int],
        transform: SampleTransform,
    ) -> None:
        self.files, self.labels = list(files), labels
        self.image_size, self.transform = image_size, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_image(self.files[i], self.image_size)), int(self.labels[i])


class ToFloat:
    """A non-image example (float features or sequences) as a float32 tensor."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class ChannelNormalize:
    """``(x - mean) / std`` per channel (dim 0) for examples of any rank, e.g. (C, L) sequences."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.ndim - 1)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class SampleAugment:
    """The batch augmentations applied to one non-image example (a batch of one)."""

    def __init__(self, crop_padding: int, flip: bool) -> None:
        self.crop_padding, self.flip = crop_padding, flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = random_crop(x.unsqueeze(0), self.crop_padding)
        return (random_flip(x) if self.flip else x).squeeze(0)


def sample_transform(
    *,
    image: bool,
    example_shape: Sequence[int],
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
    crop_padding: int = 0,
    flip: bool = False,
) -> T.Compose:
    """Per-sample transforms: to float in [0, 1], (augment), (normalise)."""
    steps: list[Callable] = [T.ToTensor() if image else ToFloat()]
    if image:
        if crop_padding > 0:
            steps.append(T.RandomCrop(tuple(example_shape[-2:]), padding=crop_padding))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    elif crop_padding > 0 or flip:
        steps.append(SampleAugment(crop_padding, flip))
    if mean is not None and std is not None:
        if image:
            steps.append(T.Normalize(mean.tolist(), std.tolist()))
        else:
            steps.append(ChannelNormalize(mean, std))
    return T.Compose(steps)


def classic_dataset(dm: InMemoryDataModule, split: str, train: bool = False) -> Dataset:
    """``split`` of ``dm`` as a per-sample torchvision-style dataset (augmented when ``train``):
    its rows of the split tensors, or, for a file-backed data set, its rows' image files."""
    if not dm.splits:
        raise RuntimeError("classic_dataset needs the data module set up (setup() first)")
    x, y = dm.splits[split]
    aug = train and dm.augment
    transform = sample_transform(
        image=is_image_tensor(x),
        example_shape=dm.input_shape,
        mean=dm.mean if dm.normalize else None,
        std=dm.std if dm.normalize else None,
        crop_padding=dm.crop_padding if aug else 0,
        flip=dm.flip and aug,
    )
    source, rows = dm.split_index[split]
    if source in dm.source_files:
        files = [dm.source_files[source][i] for i in rows.tolist()]
        return ImageFileSampleDataset(files, y, tuple(x.shape[-2:]), transform)
    return ArraySampleDataset(x, y, transform)


def classic_loader(dm: InMemoryDataModule, split: str, shuffle: bool) -> DataLoader:
    """A ``DataLoader`` over ``classic_dataset(split)`` with ``num_workers`` processes."""
    pin = dm.target_device().type == "cuda"
    dataset = classic_dataset(dm, split, train=shuffle)
    return DataLoader(
        dataset,
        batch_size=dm.batch_size if shuffle else dm.eval_batch_size,
        shuffle=shuffle,
        drop_last=dm.drop_last and shuffle and len(dataset) >= dm.batch_size,  # keep one batch
        num_workers=dm.num_workers,
        persistent_workers=dm.num_workers > 0,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(dm.seed),
    )
