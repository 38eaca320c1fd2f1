"""Image files -> uint8 tensors, decoded once (Flowers-102 and user image folders).

Both pipelines open images with the same function, ``load_image``: RGB, shorter side resized to
the target with PIL's antialiasing, then a centre crop to the exact size (torchvision's standard
``Resize`` + ``CenterCrop`` evaluation preprocessing), so they see the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import functional as TF

from depthbench.errors import ConfigError, DataError


def image_size_hw(image_size: int | Sequence[int], key: str = "data.image_size") -> tuple[int, int]:
    """``64`` or ``[64, 48]`` -> ``(height, width)``; a ConfigError for anything else."""
    size = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ConfigError(f"{key} must be a positive int or [height, width], got {image_size!r}")
    return size[0], size[1]


def load_image(path: Path, size: tuple[int, int]) -> Image.Image:
    """Open ``path`` as RGB, resize its shorter side and centre-crop to ``size`` (H, W)."""
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    img = TF.resize(img, min(size))
    return TF.center_crop(img, list(size))


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
            out[i - len(bad)] = TF.pil_to_tensor(load_image(path, size))
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            if not skip_bad:
                raise DataError(
                    f"{name}: cannot read image {path} ({type(e).__name__}: {e}); {hint}"
                ) from e
            bad.append(i)
    return out[: len(files) - len(bad)], bad
