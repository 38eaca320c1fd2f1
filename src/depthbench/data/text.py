"""Text for the transformer: a word tokenizer, a vocabulary, token batches, and ``text_csv``.

Every text data module here stores a split as one ``(N, max_len + 1)`` long tensor, the word ids
padded with ``<pad>`` (id 0) followed by the *position* the model classifies from (``pool=token``
reads the transformer's output there). The in-memory base class then splits, subsets and serves
it like any image tensor, and ``transform`` unpacks each batch into the keywords the transformer
takes: ``{"tokens": (B, T) long, "padding_mask": (B, T) bool, True = pad, "position": (B,) long}``.
The vocabulary travels in the checkpoint (``state_dict``), so a trained model can read new text.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from depthbench.data.base import Batch, InMemoryDataModule
from depthbench.errors import ConfigError, DataError

log = logging.getLogger("depthbench")
PAD, UNK = "<pad>", "<unk>"
# words (with inner apostrophes: "didn't") or single punctuation marks
_TOKEN = re.compile(r"[\w]+(?:'[\w]+)*|[^\w\s]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into words and punctuation marks: "The cat, asleep." -> the cat , asleep ."""
    return _TOKEN.findall(text.lower() if lowercase else text)


class Vocabulary:
    """Word <-> id. Id 0 is ``<pad>``, id 1 is ``<unk>`` (every word not in the list)."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if words[:2] != [PAD, UNK]:
            words = [PAD, UNK] + [w for w in words if w not in (PAD, UNK)]
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        if len(self.index) != len(words):
            raise DataError("vocabulary has duplicate words")

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The words of ``sentences`` seen at least ``min_freq`` times, most frequent first."""
        counts = Counter(w for s in sentences for w in s)
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w)
        )
        return cls(ranked[:max_size] if max_size else ranked)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, words: Sequence[str]) -> list[int]:
        """Ids of ``words``; unknown words become ``<unk>``."""
        unk = self.index[UNK]
        return [self.index.get(w, unk) for w in words]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids`` (padding included)."""
        return [self.words[int(i)] for i in ids]


def encode_batch(
    sentences: Sequence[Sequence[str]], positions: Sequence[int], vocab: Vocabulary, max_len: int
) -> torch.Tensor:
    """``(N, max_len + 1)`` long: each sentence's ids, padded with 0 (truncated to ``max_len``),
    then the position the model classifies from (clamped into the kept words)."""
    out = torch.zeros(len(sentences), max_len + 1, dtype=torch.long)
    for row, (words, pos) in enumerate(zip(sentences, positions, strict=True)):
        ids = vocab.encode(words[:max_len])
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        out[row, max_len] = min(int(pos), max(len(ids) - 1, 0))
    return out


def unpack(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """A packed ``(B, T + 1)`` batch -> the transformer's keyword inputs."""
    tokens = x[:, :-1]  # (B, T)
    return {"tokens": tokens, "padding_mask": tokens == 0, "position": x[:, -1]}


class TokenDataModule(InMemoryDataModule):
    """Base for text data: splits of packed token rows (see the module docstring).

    Subclasses implement ``load_text_splits`` returning, per split, the tokenised sentences,
    their labels (ints) and the positions to classify from; this class builds the vocabulary
    on the training split, encodes, and hands the tensors to ``InMemoryDataModule``.
    """

    name = "text"

    def __init__(
        self, *, max_len: int = 64, min_freq: int = 1, max_vocab: int | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("normalize", False)  # word ids are never normalised
        if kwargs.get("loader", "memory") != "memory":
            raise ConfigError(
                f"text data serves batches from memory only; got data.loader={kwargs['loader']!r}"
            )
        super().__init__(**kwargs)
        if not isinstance(max_len, int) or max_len < 2:
            raise ConfigError(f"data.max_len must be an integer >= 2, got {max_len!r}")
        self.max_len, self.min_freq, self.max_vocab = max_len, min_freq, max_vocab
        self.vocab = Vocabulary([])
        self.classes: list[str] = []

    # ---- to implement -------------------------------------------------------------------
    def load_text_splits(self) -> dict[str, tuple[list[list[str]], list[int], list[int]]]:
        """``{"train": (sentences, labels, positions), "test": ..., optional "val": ...}``;
        also sets ``self.classes`` (class names, index = label)."""
        raise NotImplementedError

    # ---- shared logic -------------------------------------------------------------------
    def load_splits(self) -> dict[str, Batch]:
        text = self.load_text_splits()
        self.vocab = Vocabulary.build(text["train"][0], self.min_freq, self.max_vocab)
        return {
            split: (
                encode_batch(sentences, positions, self.vocab, self.max_len),
                torch.tensor(labels, dtype=torch.long),
            )
            for split, (sentences, labels, positions) in text.items()
        }

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.num_classes = max(self.num_classes, len(self.classes))
        self.input_shape = (self.max_len,)  # one example: max_len word ids

    def transform(self, x: torch.Tensor, train: bool) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Packed rows -> ``{"tokens", "padding_mask", "position"}`` (no normalisation)."""
        return unpack(x)

    def model_kwargs(self) -> dict[str, int]:
        """What the transformer needs beyond ``input_shape``/``num_classes``."""
        return {"vocab_size": len(self.vocab), "max_len": self.max_len}

    def encode(self, text: str, position: int = 0) -> dict[str, torch.Tensor]:
        """One sentence -> a batch of one, as the model takes it."""
        words = tokenize(text)
        return unpack(encode_batch([words], [position], self.vocab, self.max_len))

    # the vocabulary is part of the model: Lightning saves this in every checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "vocab": list(self.vocab.words),
            "classes": list(self.classes),
            "max_len": self.max_len,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.splits and list(state["vocab"]) != self.vocab.words:  # resuming on other text
            raise DataError(
                f"{self.name}: the checkpoint's vocabulary ({len(state['vocab'])} words) differs "
                f"from this data's ({len(self.vocab)}); resume on the data it was trained on"
            )
        self.vocab = Vocabulary(state["vocab"])
        self.classes = list(state["classes"])
        self.max_len = int(state["max_len"])

    def describe(self) -> str:
        return f"{super().describe()}; vocabulary {len(self.vocab)} words"
