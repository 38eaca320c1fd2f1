"""Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 28x28 grey images of clothes, 10 classes.

Offline on Debian through the ``dataset-fashion-mnist`` package: its .gz files (recompressed, so
torchvision's MD5 check rejects them) are decompressed once into ``<root>/FashionMNIST/raw/``.
Elsewhere torchvision downloads them. Read and cached as MNIST's IDX files (``mnist.py``).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from depthbench.atomic import atomic_write
from depthbench.data.mnist import IDX_FILES, IdxDataModule
from depthbench.errors import DataError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = tuple(f for pair in IDX_FILES.values() for f in pair)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")  # fmt: skip


class FashionMNISTDataModule(IdxDataModule):
    """Fashion-MNIST as (1, 28, 28) uint8 images; val carved from the 60k training images."""

    name = "fashion_mnist"
    folder = "FashionMNIST"
    classes = CLASSES
    url_hint = "https://github.com/zalandoresearch/fashion-mnist"
    default_flip = True  # clothes stay clothes when mirrored

    def __init__(self, *, debian_dir: str | Path = DEBIAN_DIR, download: bool = True, **kwargs):
        super().__init__(download=download, **kwargs)
        self.debian_dir = Path(debian_dir)

    def fetch_local(self) -> bool:
        """Decompress Debian's copy into ``raw_dir`` (atomically, file by file) if it exists."""
        if not all((self.debian_dir / f"{f}.gz").exists() for f in FILES):
            return False
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            src_path = self.debian_dir / f"{f}.gz"
            try:  # never a half-written raw file, also with parallel jobs decompressing
                with gzip.open(src_path) as src, atomic_write(self.raw_dir / f, "wb",
                                                              per_process=True) as dst:  # fmt: skip
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as e:
                raise DataError(f"{self.name}: cannot decompress {src_path}: {e}") from e
        return True

    def missing_error(self, reason: str) -> DataError:
        return DataError(
            f"{self.name} not found in {self.raw_dir} or {self.debian_dir} ({reason}); on Debian: "
            "`apt-get install dataset-fashion-mnist`; elsewhere run once with data.download=true "
            f"online, or copy the four *-ubyte(.gz) files into {self.raw_dir}"
        )
