"""LightningDataModules over one in-memory batch pipeline (see ``base.py``).

The names below are imported on first use (PEP 562): importing a light piece of this package
(``data.spec``, ``data.stats``) must not load Lightning, which the data modules subclass.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module under depthbench.data that defines it
_WHERE = {
    "CIFAR10DataModule": "cifar",
    "CIFAR100DataModule": "cifar",
    "DigitsDataModule": "digits",
    "FashionMNISTDataModule": "fashion_mnist",
    "Flowers102DataModule": "flowers",
    "ImageFolderDataModule": "image_folder",
    "InMemoryDataModule": "base",
    "MNIST1DDataModule": "mnist1d",
    "MNISTDataModule": "mnist",
    "SyntheticDataModule": "synthetic",
    "TensorBatchLoader": "loader",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
