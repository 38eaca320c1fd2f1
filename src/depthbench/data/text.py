"""Text for the transformer: a word tokenizer, a vocabulary, token batches, and ``text_csv``.

Every text data module here stores a split as one ``(N, max_len + 1)`` long tensor, the word ids
padded with ``<pad>`` (id 0) followed by the *position* the model classifies from (``pool=token``
reads the transformer's output there). The in-memory base class then splits, subsets and serves
it like any image tensor, and ``transform`` unpacks each batch into the keywords the transformer
takes: ``{"tokens": (B, T) long, "padding_mask": (B, T) bool, True = pad, "position": (B,) long}``.
The vocabulary travels in the checkpoint (``state_dict``), so a trained model can read new text.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from depthbench.data.base import Batch, InMemoryDataModule, check_on_bad
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


def _parse_line(line: str, n_fields: int, label_at: int, text_at: int) -> tuple[str, str]:
    """One physical CSV line -> (label, text); a ValueError says what is wrong with it."""
    try:
        fields = next(csv.reader([line], strict=True))
    except csv.Error as e:  # an unclosed quote ends the line with "unexpected end of data"
        raise ValueError(f"malformed CSV ({e}; an unclosed quote?)") from e
    if len(fields) != n_fields:
        raise ValueError(f"{len(fields)} fields where the header has {n_fields}")
    label, text = fields[label_at].strip(), fields[text_at]
    if not label:
        raise ValueError("empty label")
    if not text.strip():
        raise ValueError("empty text")
    return label, text


def read_csv_rows(
    path: Path, label_column: str, text_column: str, on_bad_rows: str = "error"
) -> tuple[list[str], list[str]]:
    """The labels and texts of a CSV file with a header row, one row per line, every row checked.

    A row is bad when it does not parse (an unclosed quote), has more or fewer fields than the
    header, or has an empty label or text. ``on_bad_rows="error"`` stops at the first with a
    DataError naming the file and line (and how many others there are); ``"skip"`` drops them and
    logs one warning with their count and line numbers. Blank lines are ignored. Quoted fields
    may hold commas but not line breaks: a row that spans lines is what an unclosed quote looks
    like, and would otherwise swallow the rest of the file.
    """
    if not path.is_file():
        raise DataError(f"text_csv: file not found: {path}")
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        # only \n, \r\n, \r end a row (str.splitlines would also split at \u2028 and friends)
        lines = re.split(r"\r\n|\n|\r", path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"text_csv: {path} is not UTF-8 text ({e}); save it as UTF-8") from e
    if not lines or not lines[0].strip():
        raise DataError(f"text_csv: {path} is empty; expected a header row `label,text`")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    for column in (label_column, text_column):
        if column not in header:
            raise DataError(
                f"text_csv: {path} has no column {column!r}; its columns: {', '.join(header)}"
                f" (set data.label_column / data.text_column)"
            )
    label_at, text_at = header.index(label_column), header.index(text_column)
    rows: list[tuple[str, str]] = []
    bad: list[tuple[int, str]] = []  # (line number, what is wrong)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            rows.append(_parse_line(line, len(header), label_at, text_at))
        except ValueError as e:
            bad.append((number, str(e)))
    if bad and on_bad_rows == "error":
        others = f" ({len(bad) - 1} more bad rows: lines {_line_list(bad[1:])})" if bad[1:] else ""
        raise DataError(
            f"text_csv: {path} line {bad[0][0]}: {bad[0][1]}{others}; fix the file or set "
            "data.on_bad_rows=skip to drop bad rows"
        )
    if bad:
        log.warning(
            "text_csv: skipped %d bad row(s) of %s (data.on_bad_rows=skip): lines %s; first: "
            "line %d: %s", len(bad), path, _line_list(bad), bad[0][0], bad[0][1]
        )  # fmt: skip
    if not rows:
        raise DataError(f"text_csv: {path} has a header but no rows")
    labels, texts = zip(*rows)
    return list(labels), list(texts)


def _line_list(bad: list[tuple[int, str]], most: int = 10) -> str:
    numbers = ", ".join(str(n) for n, _ in bad[:most])
    return numbers + (f", ... ({len(bad)} in all)" if len(bad) > most else "")


def _class_names(labels: Iterable[str]) -> list[str]:
    """Sorted class names (numerically when every label is an integer)."""
    names = set(labels)
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


class TextCSVDataModule(TokenDataModule):
    """Your own text classification data: ``label,text`` CSV files (``val``/``test`` optional).

    Without a test file a seeded ``test_size`` fraction of the training file is held out; without
    a val file ``val_size`` of the rest is. The classified position is the first word, so use it
    with ``model.pool=mean`` or ``cls`` (``token`` reads the first word only).
    """

    name = "text_csv"

    def __init__(
        self,
        *,
        path: str | Path,
        val_path: str | Path | None = None,
        test_path: str | Path | None = None,
        test_size: float = 0.2,
        label_column: str = "label",
        text_column: str = "text",
        lowercase: bool = True,
        on_bad_rows: str = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_bad_rows = check_on_bad("data.on_bad_rows", on_bad_rows)
        if path in (None, "", "???"):
            raise ConfigError("data.path is required: data=text_csv data.path=/path/to/train.csv")
        self.path = Path(path)
        self.val_path = Path(val_path) if val_path else None
        self.test_path = Path(test_path) if test_path else None
        self.test_size, self.lowercase = test_size, lowercase
        self.label_column, self.text_column = label_column, text_column

    def load_text_splits(self) -> dict[str, tuple[list[list[str]], list[int], list[int]]]:
        files = {"train": self.path, "val": self.val_path, "test": self.test_path}
        raw = {
            s: read_csv_rows(p, self.label_column, self.text_column, self.on_bad_rows)
            for s, p in files.items()
            if p
        }
        self.classes = _class_names(raw["train"][0])
        if len(self.classes) < 2:
            raise DataError(
                f"text_csv: {self.path} has a single class ({self.classes[0]!r}); "
                "classification needs at least 2 labels"
            )
        index = {c: i for i, c in enumerate(self.classes)}
        out = {}
        for split, (labels, texts) in raw.items():
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise DataError(
                    f"text_csv: {files[split]} has labels not in the training file: "
                    f"{', '.join(unknown[:5])}"
                )
            sentences = [tokenize(t, self.lowercase) for t in texts]
            out[split] = (sentences, [index[v] for v in labels], [0] * len(sentences))
        if "test" not in out:
            out["train"], out["test"] = self._hold_out(out["train"])
        return out

    def _hold_out(self, split: tuple[list, list, list]) -> tuple[tuple, tuple]:
        """A seeded ``test_size`` fraction of ``split`` as the test split."""
        n = len(split[1])
        n_test = max(1, round(self.test_size * n))
        if n_test >= n:
            raise DataError(f"text_csv: {self.path} has {n} rows, too few to hold out a test split")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        test, train = sorted(perm[:n_test]), sorted(perm[n_test:])
        pick = lambda idx: tuple([column[i] for i in idx] for column in split)  # noqa: E731
        return pick(train), pick(test)
