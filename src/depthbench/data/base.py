"""The one in-memory data module: whole splits as tensors, batches served by index.

A dataset subclass only says how to load its splits (``load_splits``, usually decoded once and
cached on disk by ``depthbench.data.cache``); this base class makes the train/val/test splits with
a fixed seed, takes balanced ``train_size`` and ``test_size`` subsets (``val_size`` sets the
validation split carved from train), computes the normalisation statistics on the
training split (``data.stats``), moves the splits to the GPU when the trainer runs on one, and
serves batches from memory (``data.loader.TensorBatchLoader``), normalising and augmenting whole
batches as tensor operations instead of one sample at a time. ``loader="torchvision"`` serves the
same splits through the classic per-sample path (``data.classic``) and a
``torch.utils.data.DataLoader`` instead, for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from depthbench.data import augment as batch_augment
from depthbench.data.classic import classic_loader
from depthbench.data.loader import Batch, TensorBatchLoader
from depthbench.data.stats import balanced_subset, channel_stats, to_float
from depthbench.errors import ConfigError

__all__ = ["Batch", "InMemoryDataModule", "check_on_bad"]
LOADERS = ("memory", "torchvision")
# what a file-backed data module does with a bad row or file: stop with its line/path, or skip it
ON_BAD = ("error", "skip")


def check_on_bad(key: str, value: str) -> str:
    """``value`` of an ``on_bad_*`` option: ``error`` (stop at a bad row/file) or ``skip``."""
    if value not in ON_BAD:
        raise ConfigError(f"{key} must be one of {', '.join(ON_BAD)}, got {value!r}")
    return value


def pool_images(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C, H, W) images average-pooled by ``factor``, in their own dtype (uint8 rounded)."""
    if x.ndim != 4:
        raise ConfigError(f"data.pool needs (N, C, H, W) images, got shape {tuple(x.shape)}")
    pooled = torch.nn.functional.avg_pool2d(x.float(), factor)
    return pooled.round().to(x.dtype) if x.dtype == torch.uint8 else pooled.to(x.dtype)


def split_megabytes(*tensors: torch.Tensor) -> float:
    """Memory of ``tensors`` in MB (10^6 bytes)."""
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


class InMemoryDataModule(L.LightningDataModule):
    """Base LightningDataModule: subclasses implement ``load_splits`` (and ``prepare_data``).

    After ``setup`` it exposes ``num_classes``, ``input_shape`` (of one example, as the model
    sees it), ``mean``/``std`` (per channel, from the training split) and the split tensors.
    File-backed subclasses also fill ``source_files[split]`` (one file per row of the loaded
    split) so the classic path can decode them one at a time (``split_index`` maps each split
    to its rows of the loaded one).
    """

    name = "in-memory"
    # Horizontal flips suit natural images, not digits (a mirrored 2 is no digit); subclasses
    # state their default, the config may override it.
    default_flip = False

    def __init__(
        self,
        *,
        root: str | Path = "data",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int | float = 0.1,
        train_size: int | None = None,
        test_size: int | float | None = None,
        augment: bool = False,
        crop_padding: int = 0,
        flip: bool | None = None,
        normalize: bool = True,
        loader: str = "memory",
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        device_max_mb: float = 1024.0,
        pool: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ConfigError(f"data.pool must be an integer >= 1, got {pool!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"data.batch_size must be a positive integer, got {batch_size!r}")
        if train_size is not None and (not isinstance(train_size, int) or train_size < 1):
            raise ConfigError(
                f"data.train_size must be a positive integer or null, got {train_size!r}"
            )
        if test_size is not None and not (
            (isinstance(test_size, int) and not isinstance(test_size, bool) and test_size >= 1)
            or (isinstance(test_size, float) and 0 < test_size < 1)
        ):
            raise ConfigError(
                "data.test_size must be a count >= 1, a fraction in (0, 1) or null (the whole "
                f"test split), got {test_size!r}"
            )
        if loader not in LOADERS:
            raise ConfigError(f"data.loader must be one of {', '.join(LOADERS)}, got {loader!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"data.num_workers must be an integer >= 0, got {num_workers!r}")
        if not isinstance(crop_padding, int) or crop_padding < 0:
            raise ConfigError(f"data.crop_padding must be an integer >= 0, got {crop_padding!r}")
        self.root = Path(root).expanduser()  # a quoted "~/data" from the command line
        self.batch_size = batch_size
        self.drop_last = drop_last  # drop the last partial training batch (one batch shape)
        self.eval_batch_size = eval_batch_size or max(batch_size, 512)
        self.val_size, self.train_size = val_size, train_size
        # a balanced subset of the test split (null: all of it), for quick trials; data sets that
        # carve their test split themselves (digits, image_folder, text_csv) take test_size
        # as that split's size instead and leave this one null
        self.test_subset = test_size
        self.augment, self.normalize, self.seed = augment, normalize, seed
        self.crop_padding = crop_padding
        # images average-pooled by this factor once at setup (2: 28x28 -> 14x14), so a
        # CIFAR-sized net trains to convergence in CPU minutes; 1 keeps the images as loaded
        self.pool = pool
        self.flip = self.default_flip if flip is None else bool(flip)
        self.loader, self.num_workers = loader, num_workers
        # a split up to this size is copied to the accelerator once (per process); a larger one
        # stays in CPU memory and is copied batch by batch (data.loader.TensorBatchLoader)
        self.device_max_mb = device_max_mb
        self.splits: dict[str, Batch] = {}
        # split -> (name of the loaded split it was taken from, row indices into it)
        self.split_index: dict[str, tuple[str, torch.Tensor]] = {}
        self.source_files: dict[str, list[Path]] = {}
        self.num_classes: int = 0
        self.input_shape: tuple[int, ...] = ()
        self.mean = torch.zeros(1)
        self.std = torch.ones(1)
        self._on_device: dict[tuple[str, str], Batch] = {}
        self._stats_on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- to implement -------------------------------------------------------------------
    def load_splits(self) -> dict[str, Batch]:
        """Return ``{"train": (x, y), "test": (x, y)}`` (and optionally ``"val"``); x raw."""
        raise NotImplementedError

    # ---- shared logic -------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load the splits once, carve val from train, subset train, compute statistics."""
        if self.splits:
            return
        raw = self.load_splits()
        n_train = len(raw["train"][1])
        g = torch.Generator().manual_seed(self.seed)
        plan = {name: (name, torch.arange(len(raw[name][1]))) for name in ("train", "test")}
        if "val" in raw:
            plan["val"] = ("val", torch.arange(len(raw["val"][1])))
        else:
            n_val = (
                self.val_size if isinstance(self.val_size, int) else round(self.val_size * n_train)
            )
            if not 0 < n_val < n_train:
                raise ConfigError(
                    f"data.val_size={self.val_size!r} leaves no validation or no training data "
                    f"of the {n_train} training examples of {self.name}; allowed: 1..{n_train - 1} "
                    "or a fraction in (0, 1)"
                )
            perm = torch.randperm(n_train, generator=g)
            plan["val"] = ("train", perm[:n_val].sort().values)
            plan["train"] = ("train", perm[n_val:].sort().values)
        train_rows = plan["train"][1]
        if self.train_size is not None:
            if self.train_size > len(train_rows):
                raise ConfigError(
                    f"data.train_size={self.train_size} is larger than the {len(train_rows)} "
                    f"training examples of {self.name}; allowed: 1..{len(train_rows)} or null"
                )
            keep = balanced_subset(raw["train"][1][train_rows], self.train_size, g)
            plan["train"] = ("train", train_rows[keep])
        if self.test_subset is not None:
            src, test_rows = plan["test"]
            n_test = len(test_rows)
            size = self.test_subset
            n = size if isinstance(size, int) else max(1, round(size * n_test))
            if n > n_test:
                raise ConfigError(
                    f"data.test_size={size} is larger than the {n_test} test examples of "
                    f"{self.name}; allowed: 1..{n_test}, a fraction in (0, 1) or null"
                )
            keep = balanced_subset(raw[src][1][test_rows], n, g)
            plan["test"] = (src, test_rows[keep])
        self.splits = {k: (raw[src][0][idx], raw[src][1][idx]) for k, (src, idx) in plan.items()}
        if self.pool > 1:
            self.splits = {k: (pool_images(x, self.pool), y) for k, (x, y) in self.splits.items()}
        self.split_index = plan
        x, y = self.splits["train"]
        if self.batch_size > len(y):
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the {len(y)} training examples "
                f"of {self.name}; allowed: 1..{len(y)}"
            )
        self.num_classes = int(max(int(s[1].max()) for s in self.splits.values()) + 1)
        self.input_shape = tuple(x.shape[1:])
        self.mean, self.std = channel_stats(x)

    def teardown(self, stage: str | None = None) -> None:
        """Free the device copies of the splits (the CPU tensors stay for the next stage)."""
        self._on_device.clear()
        self._stats_on.clear()

    # ---- the fast path: whole batches as tensor ops --------------------------------------
    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Raw batch -> float batch: augmented (when ``train`` and ``augment``), normalised."""
        x = to_float(x)
        if train and self.augment:
            x = self.augment_batch(x)
        if self.normalize:  # in place on the fresh float batch, as torchvision's Normalize
            mean, std = self._stats(x.device)
            shape = (1, -1) + (1,) * (x.ndim - 2)
            x = x.sub_(mean.view(shape)).div_(std.view(shape))
        return x

    def augment_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop with ``crop_padding`` zero padding, then random horizontal flip.

        Works on a float batch in [0, 1] before normalisation, so padding is black as in
        torchvision's ``RandomCrop(fill=0)``.
        """
        x = batch_augment.random_crop(x, self.crop_padding)
        return batch_augment.random_flip(x) if self.flip else x

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._stats_on:
            self._stats_on[key] = (self.mean.to(device), self.std.to(device))
        return self._stats_on[key]

    def target_device(self) -> torch.device:
        """The trainer's device when it is an accelerator (cuda, mps), else the CPU."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        return device if device.type in ("cuda", "mps") else torch.device("cpu")

    def split_on(self, split: str, device: torch.device) -> Batch:
        """The tensors of ``split`` on ``device``, moved there once and kept.

        A split larger than ``device_max_mb`` stays on the CPU (every DDP process would
        otherwise hold a whole copy on its GPU to read a 1/N shard of it); its loader then
        copies one batch at a time.
        """
        x, y = self.splits[split]
        if device.type == "cpu" or split_megabytes(x, y) > self.device_max_mb:
            return x, y
        key = (split, str(device))
        if key not in self._on_device:
            self._on_device[key] = (x.to(device), y.to(device))
        return self._on_device[key]

    def _loader(self, split: str, shuffle: bool) -> TensorBatchLoader | DataLoader:
        if self.loader == "torchvision":
            return classic_loader(self, split, shuffle)
        device = self.target_device()
        x, y = self.split_on(split, device)
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return TensorBatchLoader(
            x,
            y,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            drop_last=self.drop_last and shuffle,
            transform=self.transform,
            seed=self.seed,
            rank=rank,
            world_size=world,
            device=device,
        )

    def train_dataloader(self) -> TensorBatchLoader | DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> TensorBatchLoader | DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader | DataLoader:
        return self._loader("test", shuffle=False)

    def try_download(self, fetch: Callable[[], object]) -> str | None:
        """Run the torchvision download ``fetch`` when ``data.download`` is on.

        Returns None when it worked, else why not (for the dataset's one-line DataError).
        """
        if not getattr(self, "download", False):
            return "download disabled"
        try:
            fetch()
        except Exception as e:  # no network, DNS failure, HTTP error, checksum mismatch...
            return f"download failed: {type(e).__name__}: {e}"
        return None

    def model_kwargs(self) -> dict:
        """Extra keyword arguments for the model (e.g. ``vocab_size`` of a text dataset)."""
        return {}

    def describe(self) -> str:
        """One line: sizes of the splits, classes, input shape and loader."""
        sizes = ", ".join(f"{k} {len(v[1])}" for k, v in self.splits.items())
        return (
            f"{self.name}: {sizes}; {self.num_classes} classes; input {tuple(self.input_shape)}; "
            f"loader {self.loader}"
        )
