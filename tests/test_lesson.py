"""``depthbench lesson`` end to end on a tiny profile, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def lesson(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "depthbench.cli", "lesson", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_lesson_only_runs_the_claim_and_writes_the_page(tmp_path: Path) -> None:
    """Claim 1 is measured at initialisation, so even its one-step profile decides it."""
    runs, out = tmp_path / "runs", tmp_path / "out"
    proc = lesson("--only", "vanishing_gradients", "--seeds", "2", "--runs", str(runs),
                  "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (out / "lesson.md").read_text()
    assert "## 1. Sigmoid gradients shrink by up to 0.25 per layer" in page
    assert "(n=2)" in page and "**confirmed**" in page
    assert (out / "lesson_vanishing_gradients.png").stat().st_size > 5000
    record = json.loads((out / "lesson.json").read_text())
    (claim,) = record["claims"]
    assert claim["verdict"] == "confirmed" and claim["outcomes"] == {"ok": 20}
    assert sorted(p.name for p in (runs / "vanishing_gradients").iterdir() if p.is_dir()) == [
        "relu", "sigmoid"]  # fmt: skip

    # --from decides again from the same runs, training nothing; the runs are untouched
    before = sorted(str(p) for p in runs.rglob("metrics.json"))
    again = lesson("--only", "vanishing_gradients", "--seeds", "2", "--from", str(runs),
                   "--out", str(tmp_path / "again"))  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "lesson: train" not in again.stderr + again.stdout
    assert sorted(str(p) for p in runs.rglob("metrics.json")) == before
    assert "**confirmed**" in (tmp_path / "again" / "lesson.md").read_text()

    # a runs folder that holds runs is never reused: one line, exit 2
    reuse = lesson("--only", "vanishing_gradients", "--runs", str(runs))
    assert reuse.returncode == 2 and "already holds runs" in reuse.stderr
    assert "Traceback" not in reuse.stderr


def test_lesson_unknown_claim_is_one_line(tmp_path: Path) -> None:
    proc = lesson("--only", "vanishing,degradation", "--runs", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "unknown claim vanishing; allowed: vanishing_gradients, fixes" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()
