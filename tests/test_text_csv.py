"""``data=text_csv``: a user's ``label,text`` files, the tokenizer, clear errors, and a
transformer that trains a few steps on them."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
from helpers import FAST, compose_config

from depthbench.core import train
from depthbench.data.text import Vocabulary, tokenize
from depthbench.data.text_csv import TextCSVDataModule
from depthbench.errors import ConfigError, DataError

GOOD = ["great", "lovely", "wonderful", "fine", "excellent"]
BAD = ["awful", "terrible", "boring", "poor", "dreadful"]


def write_csv(path: Path, n: int, seed: int = 0, header=("label", "text")) -> Path:
    """``n`` rows of a two-class sentiment toy: the label is carried by one word."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            word = rng.choice(GOOD if label == "pos" else BAD)
            writer.writerow([label, f"The film was {word}, said the critic."])
    return path


def test_tokenize_and_vocabulary() -> None:
    assert tokenize("The cat didn't sit, it SAT.") == [
        "the", "cat", "didn't", "sit", ",", "it", "sat", "."
    ]  # fmt: skip
    vocab = Vocabulary.build([["b", "a", "b"], ["c"]])
    assert vocab.words[:2] == ["<pad>", "<unk>"] and vocab.words[2] == "b"
    assert vocab.encode(["a", "zebra"]) == [vocab.index["a"], 1]


def test_splits_from_files(tmp_path: Path) -> None:
    train_file = write_csv(tmp_path / "train.csv", 80)
    test_file = write_csv(tmp_path / "test.csv", 20, seed=1)
    dm = TextCSVDataModule(path=train_file, test_path=test_file, val_size=10, batch_size=8)
    dm.setup("fit")
    assert dm.classes == ["neg", "pos"] and dm.num_classes == 2
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 70, "val": 10, "test": 20}
    x, _ = next(iter(dm.train_dataloader()))
    assert x["tokens"].shape == (8, 64) and torch.equal(x["padding_mask"], x["tokens"] == 0)
    assert (x["position"] == 0).all()


def test_test_split_held_out_without_a_test_file(tmp_path: Path) -> None:
    dm = TextCSVDataModule(path=write_csv(tmp_path / "t.csv", 50), test_size=0.2, val_size=5,
                           batch_size=4)  # fmt: skip
    dm.setup("fit")
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 35, "val": 5, "test": 10}


def test_errors_are_clear(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        TextCSVDataModule(path=empty).setup("fit")
    header_only = tmp_path / "header.csv"
    header_only.write_text("label,text\n")
    with pytest.raises(DataError, match="no rows"):
        TextCSVDataModule(path=header_only).setup("fit")
    wrong = write_csv(tmp_path / "wrong.csv", 10, header=("label", "sentence"))
    with pytest.raises(DataError, match=r"no column 'text'.*label, sentence"):
        TextCSVDataModule(path=wrong).setup("fit")
    single = tmp_path / "single.csv"
    single.write_text("label,text\n1,a b\n1,c d\n1,e f\n")
    with pytest.raises(DataError, match="single class"):
        TextCSVDataModule(path=single).setup("fit")
    with pytest.raises(DataError, match="not found"):
        TextCSVDataModule(path=tmp_path / "missing.csv").setup("fit")


# one bad row of each kind a careless export makes, between good ones (line numbers: header = 1)
MALFORMED = {
    3: 'neg,"The film was awful',  # unclosed quote: would swallow the rest of the file
    4: ",an empty label",
    5: "neg",  # no text column
    6: "pos,too,many,columns",
}


def write_malformed(path: Path) -> Path:
    """A file with the ``MALFORMED`` rows among good ones; 4 good rows, 2 of each class."""
    lines = ["label,text", "pos,The film was great", *MALFORMED.values(),
             'neg,"boring, said the critic"', "pos,lovely", "", "neg,dreadful"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_rows_stop_with_their_line_numbers(tmp_path: Path) -> None:
    path = write_malformed(tmp_path / "bad.csv")
    with pytest.raises(DataError) as e:
        TextCSVDataModule(path=path).setup("fit")
    text = str(e.value)
    assert "\n" not in text
    assert f"{path} line 3: malformed CSV" in text and "unclosed quote" in text
    assert "3 more bad rows: lines 4, 5, 6" in text and "data.on_bad_rows=skip" in text


@pytest.mark.parametrize(
    ("line", "message"),
    [(4, "line 4: empty label"), (5, "line 5: 1 fields where the header has 2"),
     (6, "line 6: 4 fields where the header has 2")],
)  # fmt: skip
def test_each_kind_of_bad_row_is_named(tmp_path: Path, line: int, message: str) -> None:
    path = tmp_path / "one_bad.csv"
    rows = ["pos,good words"] * 3 + ["neg,bad words"] * 3
    rows.insert(line - 2, MALFORMED[line])
    path.write_text("label,text\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message):
        TextCSVDataModule(path=path).setup("fit")


def test_skip_drops_bad_rows_and_says_how_many(tmp_path: Path, caplog) -> None:
    path = write_malformed(tmp_path / "bad.csv")
    dm = TextCSVDataModule(path=path, on_bad_rows="skip", val_size=1, test_size=0.25,
                           batch_size=1)  # fmt: skip
    with caplog.at_level("WARNING", logger="depthbench"):
        dm.setup("fit")
    assert dm.classes == ["neg", "pos"]  # the empty label is no third class
    assert sum(len(y) for _, y in dm.splits.values()) == 4  # 4 good rows, blank line ignored
    assert "skipped 4 bad row(s)" in caplog.text and "lines 3, 4, 5, 6" in caplog.text
    with pytest.raises(ConfigError, match=r"data\.on_bad_rows must be one of error, skip"):
        TextCSVDataModule(path=path, on_bad_rows="drop")


def test_transformer_trains_on_text_csv(tmp_path: Path) -> None:
    train_file = write_csv(tmp_path / "train.csv", 120)
    cfg = compose_config(
        ["data=text_csv", f"data.path={train_file}", "data.max_len=16", "data.batch_size=16",
         "model=transformer", "model.pool=mean", "model.dim=16", "model.depth=1", "model.heads=2",
         "logger=none", "callbacks=none", *FAST[:-1]],
        tmp_path / "run",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["status"] == "ok" and metrics["steps"] == 6
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["train/loss"] > 0
