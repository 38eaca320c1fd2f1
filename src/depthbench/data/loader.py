"""``TensorBatchLoader``: batches of in-memory tensors by index, resumable mid-epoch.

The in-memory path's loader (``data.loader=memory``): no per-sample ``Dataset``, no workers;
each batch is one indexing of the split tensors (on the GPU when the data module put them there)
and one call of the data module's batch ``transform``. A split too large to copy to the GPU
stays in CPU memory: each batch is gathered into pinned (page-locked) memory and copied with
``non_blocking=True``, so the copy overlaps the GPU's work instead of stalling the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]
Transform = Callable[[torch.Tensor, bool], torch.Tensor]


class TensorBatchLoader:
    """Iterate over ``(x, y)`` batches of in-memory tensors, optionally shuffled each epoch.

    ``transform(x_batch, train)`` turns a raw batch (uint8 or float) into model input. The
    shuffle order is drawn from ``seed`` + epoch, so a run is reproducible; ``rank`` and
    ``world_size`` shard the indices for distributed training. The batches live on ``device``
    (default: the device of ``x``); the transform runs there, after the copy.
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
        device: torch.device | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.device = x.device if device is None else torch.device(device)
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
            idx = torch.cat([idx, idx[: self._pad()]])[self.rank :: self.world_size]
        return idx

    def _pad(self) -> int:
        """Examples repeated so that every rank gets as many: training needs the same number of
        steps on each rank. Evaluation (``shuffle=False``) counts each example once, so its
        shards differ by at most one, unless a rank would get none."""
        n = len(self.y)
        if self.shuffle or n < self.world_size:
            return (-n) % self.world_size
        return 0

    def __len__(self) -> int:
        n = len(self.y) + self._pad()
        n = len(range(self.rank, n, self.world_size))  # this rank's examples
        if self.drop_last and n >= self.batch_size:  # never drop the only batch
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        idx = self._indices().to(self.x.device)  # one copy per epoch when x is on a GPU
        self._serving, self._served = self.epoch, getattr(self, "_skip", 0)
        self.epoch, self._skip = self.epoch + 1, 0
        for b in range(self._served, len(self)):
            self._served = b + 1
            i = idx[b * self.batch_size : (b + 1) * self.batch_size]
            x, y = self._gather(self.x, i), self._gather(self.y, i)
            if self.transform is not None:
                x = self.transform(x, self.shuffle)
            yield x, y

    def _gather(self, t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """Rows ``i`` of ``t`` on ``self.device``; from the CPU through pinned memory to CUDA."""
        if t.device == self.device:
            return t[i]
        if self.device.type != "cuda":
            return t[i].to(self.device)
        # the CUDA caching host allocator keeps a pinned block alive until its copy is done
        rows = torch.empty((len(i), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
        return torch.index_select(t, 0, i, out=rows).to(self.device, non_blocking=True)

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
