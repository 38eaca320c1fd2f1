"""``depthbench lesson`` end to end on a tiny profile, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, compose_config
from hydra.utils import instantiate

from depthbench.lesson.claims import load_claims


def lesson(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "depthbench.cli", "lesson", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.process
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
    assert reuse.returncode == 2 and "already holds runs of vanishing_gradients" in reuse.stderr
    assert "Traceback" not in reuse.stderr


@pytest.mark.process
def test_lesson_unknown_claim_is_one_line(tmp_path: Path) -> None:
    proc = lesson("--only", "vanishing,degradation", "--runs", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "unknown claim vanishing; allowed: vanishing_gradients, fixes" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def _first_value(override: str) -> str:
    """``model.depth=2,4,8`` -> ``model.depth=2``: one job of the sweep, for compose()."""
    key, _, value = override.partition("=")
    return f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else override


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_claim_sweep_composes_and_builds_its_model(profile: str, tmp_path: Path) -> None:
    """Each sweep's first job composes as train.py would, and its network builds (meta device)."""
    for claim in load_claims():
        for name, overrides in claim.sweeps(profile).items():
            cfg = compose_config([_first_value(o) for o in overrides], tmp_path)
            assert cfg.model._target_, (claim.name, name)
            if "DeepMLP" in cfg.model._target_ or "DeepCNN" in cfg.model._target_:
                shape = [40] if "mnist1d" in cfg.data._target_.lower() else [1, 28, 28]
                if "DeepCNN" in cfg.model._target_ and shape == [40]:
                    shape = [1, 40]
                with torch.device("meta"):
                    instantiate(cfg.model, input_shape=shape, num_classes=10)
