"""``data=text_csv``: a user's own labelled text, one row per line of a CSV file.

Rows are read strictly (:func:`read_csv_rows`): a row whose quotes do not close on its line,
whose field count differs from the header's, or whose label or text is empty is an error naming
its line, or, with ``on_bad_rows=skip``, is dropped and counted; nothing is guessed.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from depthbench.data.base import check_on_bad
from depthbench.data.text import TokenDataModule, tokenize
from depthbench.errors import ConfigError, DataError

log = logging.getLogger("depthbench")


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
            raise ConfigError(
                "data.path is required: "
                "data=text_csv data.path=/path/to/train.csv model=transformer"
            )
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
