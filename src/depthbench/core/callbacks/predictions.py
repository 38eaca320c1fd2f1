"""``CollectPredictions``: the confusion matrix of a test pass, and its probabilities and labels.

``run.evaluate`` adds it to its trainer, so the one test pass that measures ``test/acc`` also
gives the confusion matrix and the most confidently wrong examples (``depthbench.core.confusion``).
The matrix and the per-class accuracy are torchmetrics metrics, so under DDP they are reduced over
every rank; the probabilities and labels are this process's shard.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


class CollectPredictions(L.Callback):
    """Per test batch: update the confusion matrix and per-class accuracy, keep
    ``softmax(logits)`` and the labels (in the loader's order).

    The Classifier's ``test_step`` returns the batch's logits; they reach the callback as
    ``outputs`` of ``on_test_batch_end``. After the pass, ``matrix`` is the ``(C, C)`` count
    matrix (row: true class, column: predicted class) and ``per_class`` the accuracy of each
    class (NaN for a class with no example), both over every rank.
    """

    def __init__(self) -> None:
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._confusion: MulticlassConfusionMatrix | None = None
        self._accuracy: MulticlassAccuracy | None = None
        self.matrix: torch.Tensor | None = None
        self.per_class: torch.Tensor | None = None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._probs, self._labels = [], []
        self._confusion = self._accuracy = self.matrix = self.per_class = None

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, torch.Tensor):
            return
        logits, labels = outputs.detach(), batch[1].detach()
        if self._confusion is None or self._accuracy is None:  # the net's class count
            n = logits.shape[-1]
            self._confusion = MulticlassConfusionMatrix(n).to(logits.device)
            self._accuracy = MulticlassAccuracy(n, average=None).to(logits.device)
        self._confusion.update(logits, labels)
        self._accuracy.update(logits, labels)
        self._probs.append(logits.float().softmax(-1).cpu())
        self._labels.append(labels.cpu())

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every rank calls compute: it gathers the other ranks' counts
        if self._confusion is not None and self._accuracy is not None:
            self.matrix = self._confusion.compute().cpu()
            per_class = self._accuracy.compute().cpu()
            self.per_class = torch.where(self.matrix.sum(dim=1) > 0, per_class, torch.nan)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probabilities (N, C), labels (N,))`` of this process's share of the test pass."""
        if not self._probs:
            return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
        return torch.cat(self._probs), torch.cat(self._labels)
