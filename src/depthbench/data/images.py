"""Image files -> uint8 tensors, decoded once (Flowers-102 and user image folders).

Both pipelines, and ``depthbench predict``, open images with the same functions (``load_image``,
``resize_center_crop``): shorter side resized to the target with PIL's antialiasing, then a
centre crop to the exact size: torchvision's standard ``Resize`` + ``CenterCrop`` evaluation
preprocessing, pixel for pixel (a test compares them), done with PIL alone so that predicting
one image does not import torchvision (a second of start-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from depthbench.errors import ConfigError, DataError


def image_size_hw(image_size: int | Sequence[int], key: str = "data.image_size") -> tuple[int, int]:
    """``64`` or ``[64, 48]`` -> ``(height, width)``; a ConfigError for anything else."""
    size = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ConfigError(f"{key} must be a positive int or [height, width], got {image_size!r}")
    return size[0], size[1]


def resize_center_crop(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Shorter side resized to ``min(size)`` (bilinear, antialiased), then centre-cropped to
    ``size`` (H, W): torchvision's ``resize(img, min(size))`` and ``center_crop(img, size)``."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    target = min(size)
    if short != target:  # torchvision leaves an image whose shorter side fits as it is
        new_short, new_long = target, int(target * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        img = img.resize((new_w, new_h), Image.BILINEAR)
    crop_h, crop_w = size
    w, h = img.size
    top, left = round((h - crop_h) / 2.0), round((w - crop_w) / 2.0)
    return img.crop((left, top, left + crop_w, top + crop_h))


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 (C, H, W) tensor (torchvision's ``pil_to_tensor``)."""
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(a.reshape(a.shape[0], a.shape[1], -1).copy()).permute(2, 0, 1)


def load_image(path: Path, size: tuple[int, int]) -> Image.Image:
    """Open ``path`` as RGB, resize its shorter side and centre-crop to ``size`` (H, W)."""
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    return resize_center_crop(img, size)


def decode_images(
    files: Sequence[Path],
    size: tuple[int, int],
    name: str,
    skip_bad: bool = False,
    hint: str = "replace or delete the file",
) -> tuple[torch.Tensor, list[int]]:
    """The readable ``files`` as one uint8 tensor (N, 3, H, W), and the indices of unreadable ones.

    An unreadable or corrupt file raises a DataError naming it, or with ``skip_bad`` is left out
    of the tensor and its index returned. ``hint`` ends the error: what the user can do.
    """
    out = torch.empty((len(files), 3, *size), dtype=torch.uint8)
    bad: list[int] = []
    for i, path in enumerate(files):
        try:
            out[i - len(bad)] = to_uint8_tensor(load_image(path, size))
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            if not skip_bad:
                raise DataError(
                    f"{name}: cannot read image {path} ({type(e).__name__}: {e}); {hint}"
                ) from e
            bad.append(i)
    return out[: len(files) - len(bad)], bad
