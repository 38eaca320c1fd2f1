"""Where "it" looks in ``coreference``: attention to its referent, the other noun and the rest.

``ReferentAttention`` (a callback of ``experiment=attention_it``) averages, over the whole test
split, the attention from "it" to the noun it refers to, to the other noun and to the rest, per
layer, and writes ``attention_summary.json`` and a heat map per lesson sentence into the run
folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from depthbench.atomic import write_text_atomic
from depthbench.core import layout
from depthbench.errors import ConfigError
from depthbench.tools.attention import (
    LESSON_SENTENCE,
    TextModel,
    attention_from,
    plot_attention,
    read_sentence,
    word_labels,
)

log = logging.getLogger("depthbench")


class ReferentAttention(L.Callback):
    """Over the test split of ``coreference``: mean attention from "it" to its referent, to the
    other noun and to the rest, per layer (mean over heads), plus where the rest goes by word
    role; written to ``<dirpath>/attention_summary.json`` at the end of testing.

    The referent's position is where the sentence holds the label's noun (labels name nouns);
    the other noun is the sentence's other word from ``datamodule.classes``.
    """

    def __init__(
        self, dirpath: str | Path, sentences: Sequence[str] = (LESSON_SENTENCE,), word: str = "it"
    ) -> None:
        self.dirpath, self.sentences, self.word = Path(dirpath), list(sentences), word
        self._sums: dict[str, torch.Tensor] = {}  # role -> (layers,) summed attention
        self._by_word: dict[int, float] = {}  # word id -> summed last-layer attention
        self._count = 0

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not hasattr(trainer.datamodule, "vocab") or not hasattr(
            pl_module.net, "forward_attention"
        ):
            raise ConfigError("ReferentAttention needs a transformer on data=coreference")
        self._sums, self._by_word, self._count = {}, {}, 0

    def _roles(
        self, dm: Any, tokens: torch.Tensor, y: torch.Tensor, position: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(B, T) masks: referent, other noun, adjective (last word), "it" itself, rest."""
        ids = torch.tensor([dm.vocab.index.get(c, -1) for c in dm.classes], device=tokens.device)
        referent = tokens == ids[y].unsqueeze(1)
        noun = torch.isin(tokens, ids[ids >= 0])
        length = (tokens != 0).sum(dim=1)
        index = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        adjective = index == (length - 1).unsqueeze(1)
        itself = index == position.unsqueeze(1)
        masks = {
            "referent": referent,
            "other_noun": noun & ~referent,
            "adjective": adjective,
            "itself": itself,
        }
        taken = torch.stack(list(masks.values())).any(dim=0)
        masks["rest"] = ~taken & (tokens != 0)
        return masks

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x, y = batch[0], batch[1]
        dm = trainer.datamodule
        rows = attention_from(pl_module.net, x, x["position"])  # (layers, B, T)
        for role, mask in self._roles(dm, x["tokens"], y, x["position"]).items():
            mass = (rows * mask.unsqueeze(0)).sum(dim=-1).sum(dim=-1).cpu()  # (layers,)
            self._sums[role] = self._sums.get(role, 0) + mass
        last = rows[-1]  # (B, T): where the last layer's attention goes, by word
        for w, mass in zip(x["tokens"].flatten().tolist(), last.flatten().tolist()):
            if w:
                self._by_word[w] = self._by_word.get(w, 0.0) + mass
        self._count += len(y)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._count or not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        per_layer = {
            role: [round(float(v) / self._count, 4) for v in s] for role, s in self._sums.items()
        }
        # "rest_total": everything but the two nouns (adjective + "it" itself + other words)
        per_layer["rest_total"] = [
            round(1.0 - r - o, 4) for r, o in zip(per_layer["referent"], per_layer["other_noun"])
        ]
        top = sorted(self._by_word.items(), key=lambda kv: -kv[1])[:10]
        summary: dict[str, Any] = {
            "examples": self._count,
            "word": self.word,
            "mean_attention_per_layer": per_layer,  # layer 1 .. last, mean over heads and examples
            "last_layer": {role: values[-1] for role, values in per_layer.items()},
            "last_layer_top_words": {dm.vocab.words[w]: round(m / self._count, 4) for w, m in top},
            "sentences": {},
        }
        model = TextModel(pl_module.net, dm.vocab, dm.max_len, list(dm.classes), {})
        training = pl_module.net.training
        pl_module.net.eval()
        for sentence in self.sentences:
            try:
                result = read_sentence(model, sentence, self.word)
            except ConfigError as e:
                summary["sentences"][sentence] = {"error": str(e)}
                continue
            labels = word_labels(result.words)
            summary["sentences"][sentence] = {
                "prediction": result.prediction,
                "probability": round(result.probability, 4),
                "layers": [
                    dict(zip(labels, (round(float(v), 4) for v in row))) for row in result.rows
                ],
            }
            plot_attention(result, self.dirpath / f"attention_{'_'.join(result.words[:4])}.png")
        pl_module.net.train(training)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            self.dirpath / layout.ATTENTION_SUMMARY_FILE, json.dumps(summary, indent=2) + "\n"
        )
        last = summary["last_layer"]
        log.info(
            'attention from "%s", last layer, test mean: referent %.2f, other noun %.2f, rest %.2f',
            self.word,
            last["referent"],
            last["other_noun"],
            last["rest_total"],
        )
