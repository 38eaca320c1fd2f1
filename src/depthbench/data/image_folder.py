"""Your own images: ``root/train/<class>/*.jpg|png`` (and optional ``val/``, ``test/`` trees).

The layout of torchvision's ``ImageFolder`` (the lesson's example: ``flowers/train/rose``,
``sunflower``, ``tulip``). Class names are the sorted folder names under ``train/``; every image is
resized (shorter side, then centre crop) to ``image_size`` and decoded once into
``root/depthbench_cache_<folder>_<H>x<W>.pt``. Without ``val/`` the base class carves a seeded
validation split from train; without ``test/`` a seeded, stratified ``test_size`` fraction of
train becomes the test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.datasets.folder import make_dataset

from depthbench.data.base import Batch, InMemoryDataModule, check_on_bad
from depthbench.data.cache import file_fingerprint, load_or_build
from depthbench.data.images import decode_images, image_size_hw
from depthbench.errors import ConfigError, DataError

log = logging.getLogger("depthbench")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def carve_test(y: torch.Tensor, test_size: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, test) row indices, stratified by class when every class has 2+ examples."""
    from sklearn.model_selection import train_test_split

    counts = torch.bincount(y)
    stratify = y.numpy() if int(counts[counts > 0].min()) >= 2 else None
    try:
        train, test = train_test_split(
            torch.arange(len(y)).numpy(), test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError:  # too few examples to put every class into the test split
        train, test = train_test_split(
            torch.arange(len(y)).numpy(), test_size=test_size, random_state=seed
        )
    return torch.as_tensor(train).sort().values, torch.as_tensor(test).sort().values


class ImageFolderDataModule(InMemoryDataModule):
    """A user's folder of class sub-folders as (3, H, W) uint8 images at ``image_size``."""

    name = "image_folder"
    default_flip = True

    def __init__(
        self,
        *,
        image_size: int | Sequence[int] = 64,
        test_size: float = 0.2,
        extensions: Sequence[str] = EXTENSIONS,
        on_bad_files: str = "error",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.on_bad_files = check_on_bad("data.on_bad_files", on_bad_files)
        if not 0 < test_size < 1:
            raise ConfigError(f"data.test_size must be a fraction in (0, 1), got {test_size!r}")
        self.image_size = image_size_hw(image_size)
        self.test_size = test_size
        self.extensions = tuple(e.lower() for e in extensions)
        self.classes: list[str] = []

    def prepare_data(self) -> None:
        """Nothing to download: check the folder layout early, with a clear message."""
        self._scan_classes()

    def _scan_classes(self) -> list[str]:
        train = self.root / "train"
        if not train.is_dir():
            raise DataError(
                f"image_folder: no train/ folder in {self.root}; expected "
                f"{self.root}/train/<class>/*.jpg|png (and optional val/, test/)"
            )
        classes = sorted(d.name for d in train.iterdir() if d.is_dir() and self._images_in(d))
        if not classes:
            raise DataError(
                f"image_folder: no images ({', '.join(self.extensions)}) in any class folder "
                f"under {train}; expected {train}/<class>/*.jpg|png"
            )
        if len(classes) < 2:
            raise DataError(
                f"image_folder: only one class ({classes[0]!r}) with images under {train}; a "
                "classifier needs at least 2 class folders"
            )
        return classes

    def _images_in(self, folder: Path) -> bool:
        return any(p.suffix.lower() in self.extensions for p in folder.rglob("*") if p.is_file())

    def _scan(self, folder: str) -> tuple[list[Path], torch.Tensor]:
        """Files and labels of ``root/<folder>``, in torchvision ImageFolder's order."""
        index = {c: i for i, c in enumerate(self.classes)}
        path = self.root / folder
        unknown = sorted(
            d.name
            for d in path.iterdir()
            if d.is_dir() and d.name not in index and self._images_in(d)
        )
        if unknown:
            raise DataError(
                f"image_folder: {path} has class folders not in train/: {', '.join(unknown)}; "
                f"the classes are {', '.join(self.classes)}"
            )
        samples = make_dataset(str(path), index, extensions=self.extensions, allow_empty=True)
        if not samples:
            raise DataError(f"image_folder: no images ({', '.join(self.extensions)}) under {path}")
        files = [Path(f) for f, _ in samples]
        return files, torch.tensor([c for _, c in samples], dtype=torch.long)

    def _decode(self, folder: str) -> tuple[list[Path], Batch]:
        """Decode ``root/<folder>`` once (cached); unreadable files stop the run or are skipped.

        The cache records which files could not be read, so a later run with
        ``on_bad_files=error`` still stops at them.
        """
        files, y = self._scan(folder)
        h, w = self.image_size
        hint = "replace or delete the file, or set data.on_bad_files=skip"

        def build() -> dict[str, torch.Tensor]:
            x, bad = decode_images(files, (h, w), self.name, skip_bad=True)
            return {"x": x, "bad": torch.tensor(bad, dtype=torch.long)}

        meta = [[h, w], list(self.classes), file_fingerprint(files)]
        cached = load_or_build(self.root / f"depthbench_cache_{folder}_{h}x{w}.pt", build, meta)
        bad = cached.get("bad", torch.empty(0, dtype=torch.long)).tolist()
        if bad and self.on_bad_files == "error":
            decode_images([files[bad[0]]], (h, w), self.name, hint=hint)  # raises, naming it
            raise DataError(f"{self.name}: cannot read image {files[bad[0]]}; {hint}")
        if bad:
            log.warning(
                "%s: skipped %d unreadable image(s) under %s (data.on_bad_files=skip), e.g. %s",
                self.name, len(bad), self.root / folder, files[bad[0]],
            )  # fmt: skip
            keep = sorted(set(range(len(files))) - set(bad))
            files, y = [files[i] for i in keep], y[keep]
        return files, (cached["x"], y)

    def load_splits(self) -> dict[str, Batch]:
        self.classes = self._scan_classes()
        files, (x, y) = self._decode("train")
        out: dict[str, Batch] = {}
        if (self.root / "test").is_dir():
            self.source_files["test"], out["test"] = self._decode("test")
        else:
            train_rows, test_rows = carve_test(y, self.test_size, self.seed)
            out["test"] = (x[test_rows], y[test_rows])
            self.source_files["test"] = [files[i] for i in test_rows]
            files, x, y = [files[i] for i in train_rows], x[train_rows], y[train_rows]
        out["train"] = (x, y)
        self.source_files["train"] = files
        if (self.root / "val").is_dir():
            self.source_files["val"], out["val"] = self._decode("val")
        return out
