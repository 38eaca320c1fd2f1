"""``write_metrics``, the one writer of metrics.json: statuses checked, atomic replacement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from depthbench.core.run_folder.metrics_file import STATUSES, write_metrics
from depthbench.errors import error_line
from depthbench.machine import code_state


@pytest.mark.parametrize("status", ["OK", "nan", "", "crashed"])
def test_refuses_a_status_outside_the_four(status: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ok, diverged, interrupted, failed"):
        write_metrics(tmp_path, status)
    assert not list(tmp_path.iterdir())


def test_diverged_and_failed_need_their_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs diverged_at_step, last_finite_loss"):
        write_metrics(tmp_path, "diverged", error="loss became nan")
    with pytest.raises(ValueError, match="diverged_at_step must be an int"):
        write_metrics(tmp_path, "diverged", diverged_at_step="3", last_finite_loss=1.0, error="x")
    with pytest.raises(ValueError, match="needs error"):
        write_metrics(tmp_path, "failed")


def test_writes_status_fields_and_output_dir(tmp_path: Path) -> None:
    path = write_metrics(tmp_path / "run", "diverged", diverged_at_step=3, last_finite_loss=None,
                         error="training loss became nan at step 3", steps=4)  # fmt: skip
    assert path == tmp_path / "run" / "metrics.json"
    saved = json.loads(path.read_text())
    assert saved == {
        "status": "diverged",
        "diverged_at_step": 3,
        "last_finite_loss": None,
        "error": "training loss became nan at step 3",
        "steps": 4,
        "output_dir": str(tmp_path / "run"),
        "code": code_state(),  # the commit the run ran on
    }
    assert set(STATUSES) == {"ok", "diverged", "interrupted", "failed"}


def test_replaces_the_old_file_in_one_rename(tmp_path: Path, monkeypatch) -> None:
    """Until the rename, metrics.json holds the old record and the tmp file the whole new one."""
    write_metrics(tmp_path, "ok", steps=1)
    seen = []
    rename = os.replace

    def checked_replace(src: Path, dst: Path) -> None:
        seen.append((json.loads(Path(dst).read_text())["steps"], json.loads(Path(src).read_text())))
        rename(src, dst)

    monkeypatch.setattr(os, "replace", checked_replace)  # the rename of depthbench.atomic
    write_metrics(tmp_path, "failed", error="RuntimeError: boom", steps=2)
    assert seen == [(1, {"status": "failed", "error": "RuntimeError: boom", "steps": 2,
                         "output_dir": str(tmp_path), "code": code_state()})]  # fmt: skip
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no tmp file left


def test_unserialisable_payload_leaves_the_old_file(tmp_path: Path) -> None:
    write_metrics(tmp_path, "ok", steps=1)

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot print")

    with pytest.raises(RuntimeError):
        write_metrics(tmp_path, "ok", steps=Unprintable())
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 1


def test_secrets_are_redacted_and_errors_are_one_line(tmp_path: Path) -> None:
    try:
        try:
            raise ValueError("api_key=sk-live-123\nsecond line")
        except ValueError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as e:
        line = error_line(e)
    assert line.startswith("ValueError: ") and "\n" not in line and "second" not in line
    write_metrics(tmp_path, "failed", error=line)
    assert "sk-live-123" not in (tmp_path / "metrics.json").read_text()


def test_only_global_rank_zero_writes(tmp_path, monkeypatch):
    """A DDP rank other than 0 (here a DivergenceError seen by every rank) never writes, so two
    processes never rename over one metrics.json."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    path = write_metrics(tmp_path / "run", "failed", error="x")
    assert not path.exists() and not (tmp_path / "run").exists()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert write_metrics(tmp_path / "run", "failed", error="x").is_file()
