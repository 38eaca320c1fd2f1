"""``depthbench attention CKPT SENTENCE --word it`` on a tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import FAST, compose_config

from depthbench.cli import main
from depthbench.core import train
from depthbench.tools.attention import load_text_model, read_sentence

LESSON = "the cat sat on the mat because it was tired"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("attention_run")
    cfg = compose_config(
        ["experiment=attention_it", "data.n_train=200", "data.n_val=32", "data.n_test=32",
         "model.dim=16", "model.heads=2", "logger=none", "~callbacks.lr_monitor",
         "~callbacks.referent_attention", *FAST[:-1]],
        out,
    )  # fmt: skip
    train(cfg)
    return out / "checkpoints" / "last.ckpt"


def _table_rows(text: str) -> list[list[float]]:
    """The numeric rows of the printed table: per layer, the words' weights then the sum."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0].isdigit():
            rows.append([float(v) for v in parts[1:]])
    return rows


def test_prints_rows_summing_to_one(ckpt: Path, tmp_path: Path, capsys) -> None:
    heat = tmp_path / "heat.png"
    main(["attention", str(ckpt), LESSON, "--word", "it", "--out", str(heat)])
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert len(rows) == 2  # one per layer
    for row in rows:
        *weights, total = row
        assert len(weights) == 10 and total == pytest.approx(1.0, abs=0.005)
        assert sum(weights) == pytest.approx(1.0, abs=10 * 0.005)  # two-decimal rounding
    assert 'layer 2 (last): "it" -> ' in out and "prediction from" in out
    assert heat.is_file() and heat.read_bytes()[:4] == b"\x89PNG"


def test_rows_sum_to_one_exactly(ckpt: Path) -> None:
    model = load_text_model(ckpt)
    result = read_sentence(model, LESSON, "it")
    assert result.rows.shape == (2, 10) and result.position == 7
    assert torch.allclose(result.rows.sum(dim=-1), torch.ones(2), atol=1e-5)
    assert result.prediction in model.classes


def test_unknown_words_are_named(ckpt: Path, tmp_path: Path, capsys) -> None:
    main(["attention", str(ckpt.parent.parent), "the zebra sat on the mat because it was tired",
          "--out", str(tmp_path / "a.png")])  # fmt: skip
    captured = capsys.readouterr()
    assert "zebra" in captured.err and "<unk>" in captured.err
    assert "zebra*" in captured.out
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", str(ckpt), "the zebra sat on the mat", "--word", "zebra"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'zebra'" in err and "vocabulary" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["attention", str(ckpt), "the cat sat on the mat", "--word", "it"])
    assert "'it' is not in the sentence" in capsys.readouterr().err


def test_a_checkpoint_without_text_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "digits.ckpt"
    config = {"data": {"_target_": "depthbench.data.digits.DigitsDataModule"}, "model": {}}
    torch.save({"state_dict": {}, "depthbench_config": config}, path)
    with pytest.raises(SystemExit):
        main(["attention", str(path), LESSON])
    assert "no vocabulary" in capsys.readouterr().err
