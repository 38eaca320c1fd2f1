"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 50,000 + 10,000 32x32 colour images.

Files live where torchvision puts them, ``<root>/cifar-10-batches-py/`` (``data_batch_1..5``,
``test_batch``) and ``<root>/cifar-100-python/`` (``train``, ``test``): Python pickles of a dict
with ``data`` (N, 3072) uint8 and ``labels`` / ``fine_labels``. torchvision downloads and
extracts them in ``prepare_data`` when online; they are read here (naming a corrupt file) and
decoded once into ``<folder>/depthbench_cache_<split>.pt``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import torch

from depthbench.data.base import Batch, InMemoryDataModule
from depthbench.data.cache import cache_path, file_fingerprint, load_or_build
from depthbench.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def read_cifar_batches(paths: list[Path], label_key: str, name: str) -> dict[str, torch.Tensor]:
    """Concatenate CIFAR pickle batches into x (N, 3, 32, 32) uint8 and y (N,) int64."""
    xs, ys = [], []
    for path in paths:
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")  # the format is a pickle (as torchvision)
            x = torch.as_tensor(entry["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
            y = torch.as_tensor(entry[label_key], dtype=torch.long)
        except Exception as e:  # truncated pickle, wrong keys, wrong sizes
            raise DataError(
                f"{name}: {path} is truncated or corrupt ({type(e).__name__}: {e}); delete it "
                "and fetch it again"
            ) from e
        if len(x) != len(y):
            raise DataError(f"{name}: {path} has {len(x)} images but {len(y)} labels")
        xs.append(x)
        ys.append(y)
    return {"x": torch.cat(xs), "y": torch.cat(ys)}


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 as (3, 32, 32) uint8 images; val carved from the 50k training images."""

    name = "cifar10"
    folder = "cifar-10-batches-py"
    torchvision_class = "CIFAR10"
    archive = "cifar-10-python.tar.gz"
    files: ClassVar[dict[str, list[str]]] = {
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
    }
    label_key = "labels"
    # the label order of the CIFAR-10 files (batches.meta)
    classes: ClassVar[tuple[str, ...]] = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                          "frog", "horse", "ship", "truck")  # fmt: skip
    default_flip = True

    def __init__(self, *, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.download = download

    @property
    def data_dir(self) -> Path:
        return self.root / self.folder

    def files_present(self) -> bool:
        return all((self.data_dir / f).exists() for fs in self.files.values() for f in fs)

    def prepare_data(self) -> None:
        """Make the batch files available: already there, or a torchvision download."""
        if self.files_present():
            return
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, self.torchvision_class)
        reason = self.try_download(lambda: dataset_class(str(self.root), download=True))
        if reason is None:
            return
        raise DataError(
            f"{self.name} not found in {self.data_dir} ({reason}); run once with "
            f"data.download=true on a machine with internet, or extract {self.archive} "
            f"({URL}) into {self.root}"
        )

    def load_splits(self) -> dict[str, Batch]:
        if not self.files_present():
            self.prepare_data()
        out = {}
        for split, names in self.files.items():
            paths = [self.data_dir / f for f in names]

            def build(paths: list[Path] = paths) -> dict[str, torch.Tensor]:
                return read_cifar_batches(paths, self.label_key, self.name)

            t = load_or_build(cache_path(self.data_dir, split), build, file_fingerprint(paths))
            out[split] = (t["x"], t["y"])
        return out


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 (100 fine classes) as (3, 32, 32) uint8 images."""

    name = "cifar100"
    classes: ClassVar[tuple[str, ...]] = ()  # the 100 fine labels are shown as indices
    folder = "cifar-100-python"
    torchvision_class = "CIFAR100"
    archive = "cifar-100-python.tar.gz"
    files: ClassVar[dict[str, list[str]]] = {"train": ["train"], "test": ["test"]}
    label_key = "fine_labels"
