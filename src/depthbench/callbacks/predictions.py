"""``CollectPredictions``: the class probabilities and labels of a test pass, kept in memory.

``run.evaluate`` adds it to its trainer, so the one test pass that measures ``test/acc`` also
gives the confusion matrix and the most confidently wrong examples (``depthbench.tools.confusion``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class CollectPredictions(L.Callback):
    """Keep ``softmax(logits)`` and the labels of every test batch (in the loader's order).

    The Classifier's ``test_step`` returns the batch's logits; they reach the callback as
    ``outputs`` of ``on_test_batch_end``. Under several processes each holds its own shard.
    """

    def __init__(self) -> None:
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._probs, self._labels = [], []

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if isinstance(outputs, torch.Tensor):
            self._probs.append(outputs.detach().float().softmax(-1).cpu())
            self._labels.append(batch[1].detach().cpu())

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probabilities (N, C), labels (N,))`` of the last test pass."""
        if not self._probs:
            return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
        return torch.cat(self._probs), torch.cat(self._labels)
