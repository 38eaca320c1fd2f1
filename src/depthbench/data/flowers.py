"""Oxford Flowers-102 (Nilsback & Zisserman 2008): 8,189 photos of 102 flower species.

The official splits: 1,020 train (10 per class), 1,020 val, 6,149 test. Files live where
torchvision puts them, ``<root>/flowers-102/`` (``jpg/image_00001.jpg``..., ``imagelabels.mat``,
``setid.mat``); torchvision downloads them in ``prepare_data`` when online. Each split is decoded
once at ``image_size`` (shorter side resized, centre crop) into
``<root>/flowers-102/depthbench_cache_<split>_<H>x<W>.pt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from depthbench.data.base import Batch, InMemoryDataModule
from depthbench.data.cache import file_fingerprint, load_or_build
from depthbench.data.images import decode_images, image_size_hw
from depthbench.errors import DataError

URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}  # keys in setid.mat


class Flowers102DataModule(InMemoryDataModule):
    """Flowers-102 as (3, H, W) uint8 images at ``image_size``; the official train/val/test."""

    name = "flowers102"
    default_flip = True

    def __init__(
        self, *, image_size: int | Sequence[int] = 64, download: bool = True, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.image_size = image_size_hw(image_size)
        self.download = download

    @property
    def data_dir(self) -> Path:
        return self.root / "flowers-102"

    def files_present(self) -> bool:
        d = self.data_dir
        return (
            (d / "jpg").is_dir() and (d / "imagelabels.mat").exists() and (d / "setid.mat").exists()
        )

    def prepare_data(self) -> None:
        """Make the files available: already there, or a torchvision download (330 MB)."""
        if self.files_present():
            return
        from torchvision.datasets import Flowers102

        reason = self.try_download(lambda: Flowers102(str(self.root), split="train", download=True))
        if reason is None:
            return
        raise DataError(
            f"{self.name} not found in {self.data_dir} ({reason}); run once with "
            f"data.download=true on a machine with internet, or put 102flowers.tgz (extracted to "
            f"jpg/), imagelabels.mat and setid.mat from {URL} into {self.data_dir}"
        )

    def _read_mat(self, fname: str) -> dict:
        from scipy.io import loadmat

        path = self.data_dir / fname
        try:
            return loadmat(path, squeeze_me=True)
        except Exception as e:
            raise DataError(f"{self.name}: {path} is truncated or corrupt ({e})") from e

    def load_splits(self) -> dict[str, Batch]:
        if not self.files_present():
            self.prepare_data()
        labels = torch.as_tensor(self._read_mat("imagelabels.mat")["labels"], dtype=torch.long) - 1
        set_ids = self._read_mat("setid.mat")
        h, w = self.image_size
        out = {}
        for split, key in SPLIT_KEYS.items():
            ids = torch.as_tensor(set_ids[key], dtype=torch.long).reshape(-1)  # 1-based ids
            files = [self.data_dir / "jpg" / f"image_{int(i):05d}.jpg" for i in ids]
            missing = [f for f in files if not f.exists()]
            if missing:
                raise DataError(f"{self.name}: {len(missing)} images missing, e.g. {missing[0]}")

            def build(files: list[Path] = files) -> dict[str, torch.Tensor]:
                return {"x": decode_images(files, (h, w), self.name)[0]}

            meta = [[h, w], file_fingerprint(files)]
            path = self.data_dir / f"depthbench_cache_{split}_{h}x{w}.pt"
            x = load_or_build(path, build, meta)["x"]
            out[split] = (x, labels[ids - 1])
            self.source_files[split] = files
        return out
