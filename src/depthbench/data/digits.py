"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): no download."""

from __future__ import annotations

import torch

from depthbench.data.base import Batch, InMemoryDataModule


class DigitsDataModule(InMemoryDataModule):
    """8x8 digits as (1, 8, 8) float images; a seeded stratified 20% test split."""

    name = "digits"

    def __init__(self, *, test_size: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_size = test_size

    def load_splits(self) -> dict[str, Batch]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        data = load_digits()
        x = torch.tensor(data.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
        y = torch.tensor(data.target, dtype=torch.long)
        idx_train, idx_test = train_test_split(
            torch.arange(len(y)).numpy(),
            test_size=self.test_size,
            random_state=self.seed,
            stratify=y,
        )
        return {"train": (x[idx_train], y[idx_train]), "test": (x[idx_test], y[idx_test])}
