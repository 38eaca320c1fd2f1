"""Random tensors of a configured shape and number of classes, for speed benchmarks only.

No pattern to learn (labels are independent of inputs): use it to time models and pipelines,
not to compare accuracies. Image-like shapes (C, H, W) with 1 or 3 channels are uint8 like real
images (so normalisation and augmentation cost the same as on real data); others are float32
standard normal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from depthbench.data.base import Batch, InMemoryDataModule
from depthbench.errors import ConfigError


class SyntheticDataModule(InMemoryDataModule):
    """``num_train`` + ``num_test`` random examples of ``shape``, labels in ``0..num_classes-1``."""

    name = "synthetic"

    def __init__(
        self,
        *,
        shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        num_train: int = 10_000,
        num_test: int = 2_000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        shape = tuple(shape)
        if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ConfigError(f"data.shape must be a list of positive ints, got {list(shape)}")
        for key, value, low in (("num_classes", num_classes, 2), ("num_train", num_train, 2),
                                ("num_test", num_test, 1)):  # fmt: skip
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"data.{key} must be an integer >= {low}, got {value!r}")
        self.shape, self.classes_count = shape, num_classes
        self.num_train, self.num_test = num_train, num_test

    def load_splits(self) -> dict[str, Batch]:
        g = torch.Generator().manual_seed(self.seed)
        image = len(self.shape) == 3 and self.shape[0] in (1, 3)
        out = {}
        for split, n in (("train", self.num_train), ("test", self.num_test)):
            if image:
                x = torch.randint(0, 256, (n, *self.shape), generator=g, dtype=torch.uint8)
            else:
                x = torch.randn((n, *self.shape), generator=g)
            y = torch.arange(n) % self.classes_count  # every class present
            out[split] = (x, y[torch.randperm(n, generator=g)])
        return out
