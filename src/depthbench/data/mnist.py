"""MNIST (LeCun et al. 1998): 60,000 + 10,000 28x28 grey handwritten digits, 10 classes.

Also the base of every dataset stored in the IDX format of MNIST (Fashion-MNIST). Files live
where torchvision puts them, ``<root>/<Folder>/raw/*-ubyte`` (or ``.gz``); torchvision downloads
them in ``prepare_data`` when online. They are read by ``read_idx`` here rather than through
torchvision, so a truncated file is named, and decoded once into
``<root>/<Folder>/depthbench_cache_<split>.pt``.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import torch

from depthbench.data.base import Batch, InMemoryDataModule
from depthbench.data.cache import cache_path, file_fingerprint, load_or_build
from depthbench.errors import DataError

# split -> (images, labels), the file names of the IDX distribution
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path, name: str) -> torch.Tensor:
    """An IDX file of unsigned bytes (plain or .gz) as a uint8 tensor of its stored shape.

    Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (0x08 = uint8), the
    number of dims, one big-endian uint32 per dim, then the data.
    """
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{name}: cannot read {path} ({e}); delete it and fetch it again") from e
    ndim = data[3] if len(data) >= 4 else 0
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08":
        raise DataError(f"{name}: {path} is not an IDX uint8 file; delete it and fetch it again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + math.prod(dims):
        raise DataError(
            f"{name}: {path} is truncated or corrupt ({len(data)} bytes, expected "
            f"{header + math.prod(dims)} for shape {dims}); delete it and fetch it again"
        )
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(*dims)


class IdxDataModule(InMemoryDataModule):
    """A dataset in MNIST's IDX files: (1, 28, 28) uint8 images, val carved from train."""

    name = "mnist"
    folder = "MNIST"  # torchvision's folder name under root, and its dataset class name
    url_hint = "https://ossci-datasets.s3.amazonaws.com/mnist/"

    def __init__(self, *, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.download = download

    @property
    def raw_dir(self) -> Path:
        return self.root / self.folder / "raw"

    def _find(self, fname: str) -> Path | None:
        for path in (self.raw_dir / fname, self.raw_dir / f"{fname}.gz"):
            if path.exists():
                return path
        return None

    def files_present(self) -> bool:
        return all(self._find(f) for pair in IDX_FILES.values() for f in pair)

    def fetch_local(self) -> bool:
        """Copy the files from a local source into ``raw_dir``; True when done (none here)."""
        return False

    def missing_error(self, reason: str) -> DataError:
        return DataError(
            f"{self.name} not found in {self.raw_dir} ({reason}); run once with "
            f"data.download=true on a machine with internet, or copy the four *-ubyte(.gz) files "
            f"from {self.url_hint} into {self.raw_dir}"
        )

    def prepare_data(self) -> None:
        """Make the raw files available: already there, a local copy, or a torchvision download."""
        if self.files_present() or self.fetch_local():
            return
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, self.folder)

        def fetch() -> None:
            for train in (True, False):
                dataset_class(str(self.root), train=train, download=True)

        reason = self.try_download(fetch)
        if reason is not None:
            raise self.missing_error(reason)

    def load_splits(self) -> dict[str, Batch]:
        if not self.files_present():
            self.prepare_data()
        out = {}
        for split, (images_file, labels_file) in IDX_FILES.items():
            images, labels = self._find(images_file), self._find(labels_file)
            assert images is not None and labels is not None  # prepare_data made them

            def build(images: Path = images, labels: Path = labels) -> dict[str, torch.Tensor]:
                x, y = read_idx(images, self.name), read_idx(labels, self.name)
                if len(x) != len(y):
                    raise DataError(
                        f"{self.name}: {images} has {len(x)} images, {labels} {len(y)} labels"
                    )
                return {"x": x.unsqueeze(1).contiguous(), "y": y.long()}  # (N, 1, 28, 28)

            fingerprint = file_fingerprint([images, labels])
            t = load_or_build(cache_path(self.root / self.folder, split), build, fingerprint)
            out[split] = (t["x"], t["y"])
        return out


class MNISTDataModule(IdxDataModule):
    """MNIST digits as (1, 28, 28) uint8 images; val carved from the 60k training images."""

    name = "mnist"
    folder = "MNIST"
