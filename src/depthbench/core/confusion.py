"""What an evaluation gets wrong: per-class accuracy, the confusion matrix, the worst mistakes.

``explain_predictions`` writes into the eval's run folder:

* ``confusion.csv``: rows = true class, columns = predicted class, counts, with class names;
* ``confusion.png``: the same matrix as a heat map (row-normalised colours, counts written);
* ``predictions.csv``: every test example's label, prediction and confidence, in test order;
* ``wrong_examples.png`` (image data): the most confidently wrong test examples, with their
  true and predicted class.

The last two need every prediction in one process, so an eval over several DDP ranks writes
the first two only.

and returns the per-class accuracy for ``metrics.json``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from depthbench.core import layout
from depthbench.data.stats import to_float
from depthbench.plotting import pyplot

ANNOTATE_UP_TO = 20  # classes: above this the cells are too small for their counts
WRONG_EXAMPLES = 16


def per_class_accuracy(per_class: torch.Tensor, classes: Sequence[str]) -> dict[str, float | None]:
    """Class name -> the fraction of its examples predicted right (None: no example of it), from
    torchmetrics' ``MulticlassAccuracy(average=None)`` with NaN for an absent class."""
    return {name: (None if math.isnan(v) else v) for name, v in zip(classes, per_class.tolist(),
                                                                    strict=True)}  # fmt: skip


def write_confusion_csv(matrix: torch.Tensor, classes: Sequence[str], path: Path) -> Path:
    """The matrix with a header row of predicted classes and a first column of true classes."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, matrix.tolist(), strict=True):
            writer.writerow([name, *row])
    return path


def read_confusion_csv(path: Path) -> tuple[list[str], torch.Tensor]:
    """``(class names, matrix)`` of a ``confusion.csv``."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0][1:], torch.tensor([[int(v) for v in r[1:]] for r in rows[1:]])


def write_predictions_csv(
    probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], path: Path
) -> Path:
    """``index, label, predicted, confidence``: one row per test example, in test order."""
    confidence, predicted = probs.max(dim=1)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "predicted", "confidence"])
        for i, (t, p, c) in enumerate(zip(labels.tolist(), predicted.tolist(), confidence.tolist(),
                                          strict=True)):  # fmt: skip
            writer.writerow([i, classes[t], classes[p], f"{c:.6f}"])
    return path


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], path: Path) -> Path:
    """A heat map of the matrix, colours normalised per true class, counts in the cells."""
    plt = pyplot()
    n = len(classes)
    rates = matrix.float() / matrix.sum(dim=1, keepdim=True).clamp_min(1)
    size = min(max(4.0, 0.45 * n + 2), 16.0)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    font = 8 if n <= 12 else 6
    ax.set_xticks(range(n), list(classes), rotation=45 if n > 5 else 0, ha="right", fontsize=font)
    ax.set_yticks(range(n), list(classes), fontsize=font)
    if n <= ANNOTATE_UP_TO:
        for t in range(n):
            for p in range(n):
                if matrix[t, p]:
                    color = "white" if rates[t, p] > 0.5 else "black"
                    ax.text(p, t, str(int(matrix[t, p])), ha="center", va="center",
                            fontsize=font, color=color)  # fmt: skip
    total = int(matrix.sum())
    accuracy = float(matrix.diag().sum()) / max(total, 1)
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"confusion matrix: {total} test examples, accuracy {accuracy:.3f}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def is_image_batch(x: Any) -> bool:
    """True for an ``(N, 1 or 3, H, W)`` tensor: images that can be drawn."""
    return isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] in (1, 3)


def plot_wrong_examples(
    images: torch.Tensor,
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    path: Path,
    count: int = WRONG_EXAMPLES,
) -> Path | None:
    """The ``count`` wrong predictions made with the highest confidence, as a grid of the raw
    images titled "true X / predicted Y (confidence)"; None when nothing is wrong."""
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten()
    if len(wrong) == 0:
        return None
    worst = wrong[confidence[wrong].argsort(descending=True)][:count]
    plt = pyplot()
    cols = min(len(worst), 4)
    rows = math.ceil(len(worst) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.3, rows * 2.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst.tolist(), strict=False):
        img = to_float(images[i].cpu())
        img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-12)
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0))
        true, pred = classes[int(labels[i])], classes[int(predicted[i])]
        ax.set_title(f"true {true}\npredicted {pred} ({float(confidence[i]):.2f})", fontsize=8)
    fig.suptitle(f"most confidently wrong test examples ({len(wrong)} wrong in all)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def explain_predictions(
    out_dir: str | Path,
    classes: Sequence[str],
    matrix: torch.Tensor | None,
    per_class: torch.Tensor | None,
    predictions: tuple[torch.Tensor, torch.Tensor] | None = None,
    images: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Write the files of the module docstring into ``out_dir``; return the metrics fields
    ``test/acc_per_class`` (class name -> accuracy) and ``test/examples``.

    ``matrix`` and ``per_class`` come from torchmetrics (``callbacks.predictions``), over every
    rank; ``predictions`` (probabilities, labels) of the whole test set give ``predictions.csv``
    and the wrong examples, so they are left out when each process holds only a shard. Nothing
    is written without a matrix (no test batch ran: ``trainer.limit_test_batches=0``). Classes
    are named by their index when ``classes`` does not fit the matrix.
    """
    if matrix is None or per_class is None or int(matrix.sum()) == 0:
        return {}
    n = matrix.shape[0]
    classes = list(classes) if len(classes) == n else [str(i) for i in range(n)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_confusion_csv(matrix, classes, out_dir / layout.CONFUSION_FILE)
    plot_confusion(matrix, classes, out_dir / layout.CONFUSION_FIGURE)
    if predictions is not None:
        probs, labels = predictions
        write_predictions_csv(probs, labels, classes, out_dir / layout.PREDICTIONS_FILE)
        if images is not None and is_image_batch(images) and len(images) >= len(labels):
            plot_wrong_examples(images[: len(labels)], probs, labels, classes,
                                out_dir / layout.WRONG_EXAMPLES_FIGURE)  # fmt: skip
    return {
        "test/acc_per_class": per_class_accuracy(per_class, classes),
        "test/examples": int(matrix.sum()),
    }
