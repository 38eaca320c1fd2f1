"""``depthbench lesson`` end to end: a tiny real run of claim 1 beside its negative control,
adding seeds with --resume, deciding again from the runs and from ``lesson.json``, pilot seeds;
its errors; and every claim's sweeps (and its control's) compose as train.py would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, compose_config
from hydra.utils import instantiate

from depthbench.lesson.claims import load_claims, merge_overrides

CLAIM = "vanishing_gradients"
TITLE = "## 1. Sigmoid gradients shrink by up to 0.25 per layer"
CONTROL = (
    "**Negative control:** tanh (largest slope 1) in place of the sigmoid (largest slope 0.25) "
    "→ **not confirmed**"
)


def lesson(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "depthbench", "lesson", *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def record(out: Path) -> dict:
    return json.loads((out / "lesson.json").read_text())


def decided(out: Path) -> tuple:
    """What a page decided: the claim's verdict and checks, its control's verdict and checks."""
    (c,) = record(out)["claims"]
    return c["verdict"], c["checks"], c["control"]["verdict"], c["control"]["checks"]


def files(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its modification time (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def trained(proc: subprocess.CompletedProcess) -> list[str]:
    """The ``train -m`` command lines a lesson started."""
    return re.findall(r"lesson: train -m .*", proc.stderr + proc.stdout)


@pytest.mark.process
@pytest.mark.slow  # 4 train.py -m processes of 10 runs each
def test_lesson_decides_claim_and_control_resumes_and_decides_again(tmp_path: Path) -> None:
    """Claim 1 is measured at initialisation (one step per run), so a tiny real run decides it:
    the claim is confirmed and its control (tanh in place of the sigmoid) is not."""
    runs, out = tmp_path / "runs", tmp_path / "out"
    proc = lesson("--only", CLAIM, "--seeds", 2, "--jobs", 2, "--runs", runs, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (out / "lesson.md").read_text()
    assert TITLE in page and "(n=2)" in page
    assert "**Verdict:** **confirmed**" in page and CONTROL in page
    assert "in place of the sigmoid (largest slope 0.25): not confirmed" in page  # the table
    assert (out / "lesson_vanishing_gradients.png").stat().st_size > 5000
    rec = record(out)
    (claim,) = rec["claims"]
    assert claim["verdict"] == "confirmed" and claim["control"]["verdict"] == "not confirmed"
    assert "tanh" in claim["control"]["change"]
    assert rec["seeds"] == claim["seeds"] == [100, 101]  # never the pilot seeds 0, 1
    assert claim["outcomes"] == {"ok": 30}  # 2 sweeps + the control's, 5 depths, 2 seeds
    # its gradient-flow diagnostics must see one net: its seeds ran apart, and the header says so
    assert claim["runs_trained_together"] == 0 and "every seed apart: claims 1 " in page
    assert set(claim["frames"]) == {"sigmoid", "relu"} and set(claim["control_frames"]) == {
        "sigmoid"
    }
    folder = runs / CLAIM
    assert sorted(p.name for p in folder.iterdir()) == ["control", "relu", "sigmoid"]
    for sweep in ("sigmoid", "relu", "control/sigmoid"):
        assert [p.name for p in (folder / sweep).iterdir() if p.is_dir()] == ["s100-101"]
        assert (folder / sweep / "s100-101" / "seconds.txt").is_file()
    metrics = json.loads(next(folder.glob("sigmoid/s100-101/*/metrics.json")).read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", metrics["code"]["commit"])
    assert isinstance(metrics["code"]["dirty"], bool)
    assert rec["commits"] and metrics["code"]["commit"][:10] in rec["commits"][0]
    first = decided(out)

    # --from the runs and --from the page's lesson.json decide again, training nothing
    before = files(runs)
    again = lesson("--only", CLAIM, "--from", runs, "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr[-2000:]
    from_json = lesson("--only", CLAIM, "--from", out / "lesson.json", "--out", tmp_path / "json")
    assert from_json.returncode == 0, from_json.stderr[-2000:]
    assert not trained(again) and not trained(from_json)
    assert decided(tmp_path / "again") == decided(tmp_path / "json") == first
    for page in ("again", "json"):  # the seeds and commits of the runs read, in the header
        assert record(tmp_path / page)["seeds"] == [100, 101]
        assert record(tmp_path / page)["commits"] == rec["commits"]
    assert CONTROL in (tmp_path / "json" / "lesson.md").read_text()
    assert files(runs) == before

    # a runs folder that holds runs is never reused without --resume: one line, exit 2
    reuse = lesson("--only", CLAIM, "--runs", runs)
    assert reuse.returncode == 2, reuse.stderr[-2000:]
    assert "already holds runs of vanishing_gradients" in reuse.stderr
    assert "Traceback" not in reuse.stderr and len(reuse.stderr.strip().splitlines()) == 1
    assert files(runs) == before

    # --seeds 3 --resume runs seed 102 only, in new folders; the finished ones stay untouched
    more = lesson("--only", CLAIM, "--seeds", 3, "--resume", "--jobs", 2, "--runs", runs,
                  "--out", tmp_path / "more")  # fmt: skip
    assert more.returncode == 0, more.stderr[-3000:]
    started = trained(more)
    assert len(started) == 3 and all("seed=102 " in line for line in started)
    for sweep in ("sigmoid", "relu", "control/sigmoid"):
        assert sorted(p.name for p in (folder / sweep).iterdir() if p.is_dir()) == [
            "s100-101",
            "s102",
        ]
    after = files(runs)
    assert {k: after[k] for k in before} == before
    (claim,) = record(tmp_path / "more")["claims"]
    assert claim["seeds"] == [100, 101, 102] and claim["outcomes"] == {"ok": 45}
    assert claim["verdict"] == "confirmed" and claim["control"]["verdict"] == "not confirmed"

    # on a pilot seed the claim is never confirmed, whatever its numbers (fewer depths: faster)
    pilot_out = tmp_path / "pilot_out"
    pilot = lesson("--only", CLAIM, "--seeds", 1, "--first-seed", 0, "--jobs", 2,
                   "--set", "model.depth=2,4,8", "--runs", tmp_path / "pilot",
                   "--out", pilot_out)  # fmt: skip
    assert pilot.returncode == 0, pilot.stderr[-3000:]
    assert all("model.depth=2,4,8 " in line and " seed=0 " in line for line in trained(pilot))
    (claim,) = record(pilot_out)["claims"]
    assert claim["seeds"] == [0] and claim["control"]["verdict"] == "not confirmed"
    assert claim["verdict"] == "inconclusive" and "pilot seeds [0]" in claim["summary"]
    assert "**inconclusive**" in (pilot_out / "lesson.md").read_text()


def _hand_made_record(tmp_path: Path, control_g: float) -> Path:
    """A lesson.json of claim 1 with hand-made rows: sigmoid g = 0.24, ReLU g = 0.97 and the
    control's tanh rows with g = ``control_g``."""

    def rows(g: float) -> list[dict]:
        return [
            {"seed": s, "status": "ok", "model.depth": d, "grad first/last (init)": 0.9 * g**d}
            for d in (2, 4, 8, 16, 32)
            for s in (100, 101)
        ]

    claim = {
        "claim": CLAIM,
        "frames": {"sigmoid": rows(0.24), "relu": rows(0.97)},
        "control_frames": {"sigmoid": rows(control_g)},
        "outcomes": {"ok": 30},
        "commits": ["0123456789 (dirty)"],
    }
    path = tmp_path / "in" / "lesson.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"claims": [claim]}))
    return path


@pytest.mark.process
def test_lesson_from_a_lesson_json_decides_claim_and_control(tmp_path: Path) -> None:
    """``--from lesson.json`` decides from the rows kept in it, without run folders."""
    out = tmp_path / "out"
    proc = lesson("--only", CLAIM, "--from", _hand_made_record(tmp_path, 0.99), "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not trained(proc)
    page = (out / "lesson.md").read_text()
    assert "**Verdict:** **confirmed**" in page and CONTROL in page
    (claim,) = record(out)["claims"]
    assert claim["verdict"] == "confirmed" and claim["control"]["verdict"] == "not confirmed"
    assert claim["seeds"] == [100, 101] and claim["outcomes"] == {"ok": 30}
    # the header: the seeds and commits of the runs read, not --seeds' default
    assert record(out)["seeds"] == [100, 101]
    assert record(out)["commits"] == claim["commits"] == ["0123456789 (dirty)"]
    assert "seeds 100, 101" in page and "`0123456789 (dirty)`" in page
    assert "read from a lesson.json" in page and "`None`" not in page
    # a control that passes the claim's criterion makes the claim inconclusive
    out2 = tmp_path / "out2"
    proc = lesson("--only", CLAIM, "--from", _hand_made_record(tmp_path / "x", 0.24),
                  "--out", out2)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (claim,) = record(out2)["claims"]
    assert claim["control"]["verdict"] == "confirmed" and claim["verdict"] == "inconclusive"


@pytest.mark.process
def test_lesson_refuses_a_used_runs_folder_and_bad_seeds(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / CLAIM).mkdir(parents=True)
    proc = lesson("--only", CLAIM, "--runs", runs)
    assert proc.returncode == 2 and "already holds runs of vanishing_gradients" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert [p.name for p in runs.rglob("*")] == [CLAIM]
    bad = lesson("--only", CLAIM, "--first-seed", -1, "--runs", tmp_path / "r2")
    assert bad.returncode == 2 and "--first-seed" in bad.stderr
    assert not (tmp_path / "r2").exists()


@pytest.mark.process
def test_lesson_unknown_claim_is_one_line(tmp_path: Path) -> None:
    proc = lesson("--only", "vanishing,degradation", "--runs", tmp_path / "r")
    assert proc.returncode == 2
    assert "unknown claim vanishing; allowed: vanishing_gradients, fixes" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def _first_value(override: str) -> str:
    """``model.depth=2,4,8`` -> ``model.depth=2``: one job of the sweep, for compose()."""
    key, _, value = override.partition("=")
    return f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else override


def _sweeps_with_controls(profile: str) -> list[tuple[str, str, list[str]]]:
    """(claim, sweep, overrides) of every sweep of ``profile`` and every control sweep (the
    claim's overrides with the control's change merged in). Claims that read another claim's
    runs (``uses``) have none; computed sweeps (``claim.compute``) run no train.py."""
    out = []
    for claim in load_claims():
        sweeps = claim.sweeps(profile)
        if claim.uses:
            assert not sweeps and not claim.compute(profile), claim.name
        for name, overrides in sweeps.items():
            out.append((claim.name, name, overrides))
        control = claim.control.sweeps if claim.control else {}
        for name, change in control.items():
            if name in sweeps:
                out.append((claim.name, f"control {name}", merge_overrides(sweeps[name], change)))
    return out


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_claim_sweep_composes_and_builds_its_model(profile: str, tmp_path: Path) -> None:
    """Each sweep's first job (the control's too) composes as train.py would, and its network
    builds (meta device)."""
    sweeps = _sweeps_with_controls(profile)
    assert any(name.startswith("control") for _, name, _ in sweeps)
    for claim, name, overrides in sweeps:
        cfg = compose_config([_first_value(o) for o in overrides], tmp_path)
        assert cfg.model._target_, (claim, name)
        if "DeepMLP" in cfg.model._target_ or "DeepCNN" in cfg.model._target_:
            shape = [40] if "mnist1d" in cfg.data._target_.lower() else [1, 28, 28]
            if "DeepCNN" in cfg.model._target_ and shape == [40]:
                shape = [1, 40]
            with torch.device("meta"):
                instantiate(cfg.model, input_shape=shape, num_classes=10)
