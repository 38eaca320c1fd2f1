"""The one in-memory data path: whole splits as tensors, batches served by index.

A dataset subclass only says how to load its splits (``load_splits``, usually decoded once and
cached on disk by ``depthbench.data.cache``); this base class makes the train/val/test splits with
a fixed seed, takes a balanced ``train_size`` subset, computes the normalisation statistics on the
training split, moves the splits to the GPU when the trainer runs on one, and serves batches
from memory, normalising and augmenting whole batches as tensor operations instead of one sample
at a time. ``loader="torchvision"`` serves the same splits through the classic per-sample path
(``depthbench.data.classic``) and a ``torch.utils.data.DataLoader`` instead, for comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from depthbench.data import augment as batch_augment
from depthbench.data.classic import (
    ArraySampleDataset,
    ImageFileSampleDataset,
    is_image_tensor,
    sample_transform,
)
from depthbench.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]
Transform = Callable[[torch.Tensor, bool], torch.Tensor]
LOADERS = ("memory", "torchvision")


class TensorBatchLoader:
    """Iterate over ``(x, y)`` batches of in-memory tensors, optionally shuffled each epoch.

    ``transform(x_batch, train)`` turns a raw batch (uint8 or float) into model input. The
    shuffle order is drawn from ``seed`` + epoch, so a run is reproducible; ``rank`` and
    ``world_size`` shard the indices for distributed training. The batches live on the device of
    ``x`` (the GPU when the data module moved the splits there).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        transform: Transform | None = None,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform = transform
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def _indices(self) -> torch.Tensor:
        n = len(self.y)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        if self.world_size > 1:  # pad to a multiple of world_size, then take every k-th
            pad = (-n) % self.world_size
            idx = torch.cat([idx, idx[:pad]])[self.rank :: self.world_size]
        return idx

    def __len__(self) -> int:
        n = len(self.y) + (-len(self.y)) % self.world_size
        n //= self.world_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        idx = self._indices().to(self.x.device)
        self._serving, self._served = self.epoch, getattr(self, "_skip", 0)
        self.epoch, self._skip = self.epoch + 1, 0
        for b in range(self._served, len(self)):
            self._served = b + 1
            i = idx[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.x[i]
            if self.transform is not None:
                x = self.transform(x, self.shuffle)
            yield x, self.y[i]

    # Lightning saves these in every checkpoint (a "stateful" loader), so a resumed run -- even
    # one killed mid-epoch -- continues with the same shuffle order at the next unseen batch.
    def state_dict(self) -> dict[str, int]:
        """The epoch being served and how many of its batches were handed out."""
        epoch, served = getattr(self, "_serving", self.epoch), getattr(self, "_served", 0)
        return {"epoch": epoch, "batches": served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state``: the next ``__iter__`` skips the batches already served."""
        self.epoch, self._skip = int(state["epoch"]), int(state["batches"])
        if self._skip >= len(self):  # saved after the epoch's last batch: start the next one
            self.epoch, self._skip = self.epoch + 1, 0


def balanced_subset(y: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``size`` examples taken round-robin over the classes in a seeded order."""
    perm = torch.randperm(len(y), generator=generator)
    labels = y[perm]
    rank_in_class = torch.zeros_like(labels)
    for c in labels.unique():
        mask = labels == c
        rank_in_class[mask] = torch.arange(int(mask.sum()))
    # sort by (rank within class, position): one of each class, then a second of each, ...
    order = torch.argsort(rank_in_class * len(y) + torch.arange(len(y)))
    return perm[order[:size]].sort().values


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]; anything else -> float32 as is. Always a new tensor."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)  # the same arithmetic as torchvision's ToTensor
    return x.to(torch.float32, copy=True)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dim 1) mean and std of ``to_float(x)``, in chunks (float64 sums).

    Chunking keeps memory small: CIFAR's 50,000 images as one float tensor would be 600 MB.
    """
    if x.ndim == 1:
        x = x.unsqueeze(1)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    dims = [0, *range(2, x.ndim)]
    for start in range(0, len(x), chunk):
        xf = to_float(x[start : start + chunk]).double()
        total += xf.sum(dim=dims)
        total_sq += xf.square().sum(dim=dims)
    count = x.numel() // x.shape[1]
    mean = total / count
    var = (total_sq - count * mean.square()) / max(count - 1, 1)  # unbiased, like Tensor.std
    return mean.float(), var.clamp_min(0).sqrt().float().clamp_min(1e-6)


class InMemoryDataModule(L.LightningDataModule):
    """Base LightningDataModule: subclasses implement ``load_splits`` (and ``prepare_data``).

    After ``setup`` it exposes ``num_classes``, ``input_shape`` (of one example, as the model
    sees it), ``mean``/``std`` (per channel, from the training split) and the split tensors.
    File-backed subclasses also fill ``source_files[split]`` (one file per row of the loaded
    split) so the classic path can decode them one at a time.
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
        augment: bool = False,
        crop_padding: int = 0,
        flip: bool | None = None,
        normalize: bool = True,
        loader: str = "memory",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"data.batch_size must be a positive integer, got {batch_size!r}")
        if train_size is not None and (not isinstance(train_size, int) or train_size < 1):
            raise ConfigError(
                f"data.train_size must be a positive integer or null, got {train_size!r}"
            )
        if loader not in LOADERS:
            raise ConfigError(f"data.loader must be one of {', '.join(LOADERS)}, got {loader!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"data.num_workers must be an integer >= 0, got {num_workers!r}")
        if not isinstance(crop_padding, int) or crop_padding < 0:
            raise ConfigError(f"data.crop_padding must be an integer >= 0, got {crop_padding!r}")
        self.root = Path(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 512)
        self.val_size, self.train_size = val_size, train_size
        self.augment, self.normalize, self.seed = augment, normalize, seed
        self.crop_padding = crop_padding
        self.flip = self.default_flip if flip is None else bool(flip)
        self.loader, self.num_workers = loader, num_workers
        self.splits: dict[str, Batch] = {}
        # split -> (name of the loaded split it was taken from, row indices into it)
        self.split_index: dict[str, tuple[str, torch.Tensor]] = {}
        self.source_files: dict[str, list[Path]] = {}
        self.num_classes: int = 0
        self.input_shape: tuple[int, ...] = ()
        self.mean = torch.zeros(1)
        self.std = torch.ones(1)
        self._sources: dict[str, Batch] = {}
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
        self.splits = {k: (raw[src][0][idx], raw[src][1][idx]) for k, (src, idx) in plan.items()}
        self.split_index = plan
        x, y = self.splits["train"]
        if self.batch_size > len(y):
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the {len(y)} training examples "
                f"of {self.name}; allowed: 1..{len(y)}"
            )
        if self.loader == "torchvision":
            self._sources = raw  # the classic path indexes the loaded splits one row at a time
        self.num_classes = int(max(int(s[1].max()) for s in self.splits.values()) + 1)
        self.input_shape = tuple(x.shape[1:])
        self.mean, self.std = channel_stats(x)

    def teardown(self, stage: str | None = None) -> None:
        """Free the device copies of the splits (the CPU tensors stay for the next stage)."""
        self._on_device.clear()
        self._stats_on.clear()

    # ---- the fast path: whole batches as tensor ops --------------------------------------
    _to_float = staticmethod(to_float)

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
        """The tensors of ``split`` on ``device``, moved there once and kept."""
        if device.type == "cpu":
            return self.splits[split]
        key = (split, str(device))
        if key not in self._on_device:
            x, y = self.splits[split]
            self._on_device[key] = (x.to(device), y.to(device))
        return self._on_device[key]

    def _loader(self, split: str, shuffle: bool) -> TensorBatchLoader | DataLoader:
        if self.loader == "torchvision":
            return self.classic_loader(split, shuffle)
        x, y = self.split_on(split, self.target_device())
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return TensorBatchLoader(
            x,
            y,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            transform=self.transform,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )

    # ---- the classic path: one example at a time + DataLoader ----------------------------
    def classic_dataset(self, split: str, train: bool = False) -> Dataset:
        """``split`` as a per-sample torchvision-style dataset (augmented when ``train``)."""
        if not self._sources:
            raise RuntimeError("classic_dataset needs loader='torchvision' (and setup() first)")
        source, rows = self.split_index[split]
        x, y = self._sources[source]
        aug = train and self.augment
        transform = sample_transform(
            image=is_image_tensor(x),
            example_shape=self.input_shape,
            mean=self.mean if self.normalize else None,
            std=self.std if self.normalize else None,
            crop_padding=self.crop_padding if aug else 0,
            flip=self.flip and aug,
        )
        if source in self.source_files:
            files = self.source_files[source]
            ds: Dataset = ImageFileSampleDataset(files, y, tuple(x.shape[-2:]), transform)
        else:
            ds = ArraySampleDataset(x, y, transform)
        return Subset(ds, rows.tolist())

    def classic_loader(self, split: str, shuffle: bool) -> DataLoader:
        """A ``DataLoader`` over ``classic_dataset(split)`` with ``num_workers`` processes."""
        pin = self.target_device().type == "cuda"
        return DataLoader(
            self.classic_dataset(split, train=shuffle),
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=pin,
            generator=torch.Generator().manual_seed(self.seed),
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
