"""What keeps ``depthbench lesson`` from misleading, without training anything: a ``--set`` that
collapses a compared key makes the claim undecided (and says which runs it touched), ``--set`` on
a computed claim is refused, every decided claim records the commit it ran on, the header lists
the seeds the verdicts read and the commit of the criteria, a control whose arms are one net on
the same seeds is refused, and a job is finished only when its process exits 0. Run folders are
made by hand (``.hydra/config.yaml``, ``metrics.json``), as a sweep would leave them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT

from depthbench.errors import ConfigError
from depthbench.lesson import compute_job as CJ
from depthbench.lesson import decide as DE
from depthbench.lesson import jobs as J
from depthbench.lesson import measures_without_runs as M
from depthbench.lesson import run as R
from depthbench.lesson.claims import (
    Claim,
    Control,
    collapsed_by,
    compared_keys,
    criteria_state,
    is_sweep,
    load_claims,
)
from depthbench.lesson.verdict_types import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    UNDECIDED,
    Check,
    Verdict,
)
from depthbench.machine import code_state

SEEDS = [100, 101]


def _claim(control: list[str] | None = None, **kw) -> Claim:
    """A claim "deep beats shallow" with two sweeps (depth 4 and 1, each over two widths) and a
    control that changes ``control`` in the deep sweep."""
    common = ["experiment=x", "model.width=8,16"]
    profiles = {
        "quick": {
            "sweeps": {"deep": [*common, "model.depth=4"], "shallow": [*common, "model.depth=1"]},
            "compute": {},
        }
    }
    return Claim(
        "deep_beats_shallow", 1, "Deep beats shallow", "c", "", "unused", {"text": "t"},
        profiles, control=Control("depth 1", sweeps={"deep": control or ["model.depth=1"]}),
        config_keys=["model.depth"], **kw,
    )  # fmt: skip


# ---- --set -------------------------------------------------------------------------------------
def test_is_sweep_reads_hydra_values() -> None:
    assert is_sweep("2,4,8") and is_sweep("range(1,4)") and is_sweep("choice(a,b)")
    assert not is_sweep("4") and not is_sweep("[1,2]") and not is_sweep("'a,b'")
    assert not is_sweep("{a: 1, b: 2}")


def test_a_set_that_collapses_a_compared_key_is_named() -> None:
    claim = _claim()
    why = compared_keys(claim)
    assert "deep 4, shallow 1" in why["model.depth"] and "control" in why["model.depth"]
    assert why["model.width"].startswith("takes several values")
    # one value for a key the sweeps or the control set apart: the verdict compares nothing
    reason = collapsed_by(claim, ["model.depth=4"])
    assert reason.startswith("--set model.depth=4 gives every run one model.depth")
    assert "deep 4, shallow 1" in reason and "\n" not in reason
    assert collapsed_by(claim, ["model.depth=2,4"])  # still one list for both sweeps
    assert collapsed_by(claim, ["~model.depth"])
    # a multirun key: one value collapses it, other values keep the sweep
    assert "model.width" in collapsed_by(claim, ["model.width=8"])
    assert collapsed_by(claim, ["model.width=4,32"]) == ""
    # a key the verdict does not compare is the user's to change
    assert collapsed_by(claim, ["trainer.max_steps=5", "seed=7"]) == ""
    # a replace control compares its key's two values
    twin = _claim()
    twin.control = Control("residual", replace={"key": "model.residual", "value": False,
                                                "with": True})  # fmt: skip
    assert "model.residual" in collapsed_by(twin, ["model.residual=true"])


def test_set_on_a_computed_claim_or_with_from_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="shattered_gradients compute their rows"):
        R.check_set(["width=3"], load_claims(["shattered_gradients"]), None)
    with pytest.raises(ConfigError, match="--from trains nothing"):
        R.check_set(["model.depth=4"], load_claims(["depth_vs_width"]), tmp_path)
    R.check_set([], load_claims(["shattered_gradients"]), None)
    with pytest.raises(SystemExit) as stop:
        R.main(["--only", "transfer_by_layer", "--set", "pretrained=false",
                "--runs", str(tmp_path / "r")])  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "transfer_by_layer" in err
    assert not (tmp_path / "r").exists()


def _fake_runs(jobs: list[J.Job], lanes: int, gpus: int = 0) -> dict:
    """Stand-in for ``run_jobs``: each sweep job leaves one run folder per seed and setting, as
    ``train.py -m`` would (config, overrides, metrics), and is marked as the lesson marks it."""
    for job in jobs:
        args = job.cmd[job.cmd.index("-m") + 1 :]
        fixed = dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("hydra."))
        seeds = [int(s) for s in fixed.pop("seed").split(",")]
        depth = int(fixed.get("model.depth", "1").split(",")[0])
        n = 0
        for seed in seeds:
            for params in fixed.get("model.params", "1000").split(","):
                run = job.folder / str(n)
                n += 1
                (run / ".hydra").mkdir(parents=True)
                overrides = [f"{k}={v}" for k, v in fixed.items() if k != "model.params"]
                overrides += [f"model.params={params}", f"seed={seed}"]
                config = {"seed": seed, "task_name": "train",
                          "model": {"depth": depth, "params": int(params)}}  # fmt: skip
                (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
                (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                metrics = {"status": "ok", "train/acc": 0.5 + depth / 100 + seed / 1e4,
                           "code": code_state()}  # fmt: skip
                (run / "metrics.json").write_text(json.dumps(metrics))
        J.mark_job(job, 0, 1.0)
    return {}


@pytest.fixture
def fake_lesson(monkeypatch: pytest.MonkeyPatch):
    """``depthbench lesson`` in this process, its jobs replaced by ``_fake_runs``."""
    monkeypatch.setattr(R, "run_jobs", _fake_runs)
    monkeypatch.setattr(R, "measure_all", lambda *a, **k: None)
    monkeypatch.setattr(R, "write_report", lambda *a, **k: None)
    monkeypatch.setattr(R, "gpu_count", lambda: 0)
    monkeypatch.setattr(DE, "_measured", lambda claim, run: {})  # they need checkpoints

    def run(*argv: str | Path) -> tuple[dict, str]:
        out = Path(R.lesson(R.parse_args([str(a) for a in argv]))).parent
        return json.loads((out / "lesson.json").read_text()), (out / "lesson.md").read_text()

    return run


def test_set_that_collapses_depth_makes_depth_vs_width_undecided(
    fake_lesson, tmp_path: Path
) -> None:
    """The issue's case: ``--only depth_vs_width --set model.depth=4`` says undecided and why,
    and the page says the override reached the claim's runs and its control's."""
    runs = tmp_path / "runs"
    rec, page = fake_lesson("--only", "depth_vs_width", "--set", "model.depth=4", "--seeds", 1,
                            "--runs", runs, "--out", tmp_path / "out")  # fmt: skip
    (claim,) = rec["claims"]
    assert claim["verdict"] == UNDECIDED
    assert "--set model.depth=4 gives every run one model.depth" in claim["summary"]
    assert claim["sets"] == [["model.depth=4"]]
    assert "applied to every run of the claim's and its control's" in page
    assert "**undecided** — undecided: --set model.depth=4" in page
    # the control's runs got it too: the page says so because it is so
    cfg = yaml.safe_load(
        next((runs / "depth_vs_width" / "control").rglob("config.yaml")).read_text()
    )
    assert cfg["model"]["depth"] == 4
    # a --set that leaves every compared key alone decides as usual (no "undecided: --set")
    other = ("--set", "trainer.max_steps=3", "--runs", tmp_path / "r2", "--out", tmp_path / "o2")
    rec, page = fake_lesson("--only", "depth_vs_width", "--seeds", 1, *other)
    (claim,) = rec["claims"]
    assert "--set" not in claim["summary"] and claim["sets"] == [["trainer.max_steps=3"]]


def test_header_lists_the_seeds_the_verdicts_read_commits_and_criteria(
    fake_lesson, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    fake_lesson("--only", "depth_vs_width", "--first-seed", 200, "--seeds", 1, "--runs", runs,
                "--out", tmp_path / "a")  # fmt: skip
    rec, page = fake_lesson("--only", "depth_vs_width", "--resume", "--first-seed", 201,
                            "--seeds", 1, "--runs", runs, "--out", tmp_path / "b")  # fmt: skip
    (claim,) = rec["claims"]
    assert claim["seeds"] == rec["seeds"] == [200, 201]  # not "201" alone
    # a control on shifted seeds (an A/A copy) names its own seeds beside them
    shift = load_claims(["depth_vs_width"])[0].control.seed_offset
    assert claim["control_seeds"] == rec["control_seeds"] == [200 + shift, 201 + shift]
    own = f", controls on seeds {200 + shift}, {201 + shift}" if shift else ""
    shown = "seeds 200, 201" + own
    assert shown + ";" in page
    # the commit (and dirty flag) of the runs, and of the criteria, beside each other
    code = code_state()
    flag = " (dirty)" if code["dirty"] else " (clean)"
    assert claim["commits"] == rec["commits"] == [code["commit"][:10] + flag]
    last = subprocess.run(["git", "log", "-1", "--format=%H", "--", "conf/lesson"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert rec["criteria"]["commit"] == last == criteria_state()["commit"]
    assert isinstance(rec["criteria"]["dirty"], bool)
    assert rec["criteria_first"] in (True, False, None)
    assert f"Criteria (`conf/lesson/`) as of commit `{last[:10]}`" in page


def test_the_header_says_which_claims_trained_their_seeds_together() -> None:
    from depthbench.lesson.page import together_line
    from depthbench.lesson.verdict_types import ClaimResult, Verdict

    named = {
        c.name: c for c in load_claims(["fixes", "vanishing_gradients", "shattered_gradients"])
    }
    fixes, flow, computed = (
        named[n] for n in ("fixes", "vanishing_gradients", "shattered_gradients")
    )
    results = [ClaimResult(fixes, Verdict(CONFIRMED, ""), outcomes={"ok": 40}, together=40),
               ClaimResult(flow, Verdict(CONFIRMED, ""), outcomes={"ok": 29, "diverged": 1}),
               ClaimResult(computed, Verdict(CONFIRMED, ""))]  # fmt: skip
    line = together_line(results)
    assert (
        "stacked model per setting): claims 2 (40 of 40 runs); every seed apart: claims 1 (" in line
    )
    assert " 12" not in line  # a computed claim trains nothing: in neither list


TINY = "depthbench.lesson.measures_without_runs.tiny"  # set by the tests that use it


def test_a_computed_claim_records_the_commit_it_ran_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compute_job writes each row with the commit and dirty flag, through the atomic writer;
    the claim's result carries them (today's claims 12 and 13 recorded none)."""
    monkeypatch.setattr(M, "tiny", lambda seed, scale: {"value": seed * scale}, raising=False)
    folder = tmp_path / "computed" / "main" / "s100-101"
    CJ.main(["--claim", "computed", "--function", TINY, "--args", '{"scale": 0.5}',
             "--seeds", "100,101", "--out", str(folder)])  # fmt: skip
    row = json.loads((folder / "seed-100.json").read_text())
    assert row["value"] == 50.0 and row["code"] == code_state()
    assert not list(folder.glob("*.tmp"))
    (folder / J.TIMES_FILE).write_text("1.0\n")
    claim = Claim("computed", 12, "t", "c", "", "unused", {"text": "t"},
                  {"quick": {"sweeps": {}, "compute": {"main": {"function": TINY}}}})  # fmt: skip
    monkeypatch.setattr(DE, "verdict_fn", lambda c: lambda f, crit: Verdict(CONFIRMED, "ok"))
    result = DE.decide(claim, tmp_path)
    code = code_state()
    assert result.commits == [DE.code_text(code)] and result.commits[0].startswith(
        code["commit"][:10]
    )
    assert result.seeds == SEEDS and "code" not in result.frames["main"]


# ---- a control that compares a net with itself -------------------------------------------------
def _run_folder(path: Path, depth: int, seed: int) -> str:
    (path / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "model": {"depth": depth, "width": 8},
              "paths": {"output_dir": str(path)}, "task_name": path.name}  # fmt: skip
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return str(path)


def _arm(tmp_path: Path, name: str, depth: int, accs: list[float], folders: bool = True):
    return pd.DataFrame(
        {
            "seed": SEEDS,
            "status": ["ok"] * len(SEEDS),
            "model.depth": [depth] * len(SEEDS),
            "train acc": accs,
            "fit s": [1.0 + i for i in range(len(SEEDS))],  # wall time: never compared
            "run_dir": [
                _run_folder(tmp_path / name / str(s), depth, s) if folders else None for s in SEEDS
            ],
        }
    )


def _deep_beats_shallow(frames: dict) -> Verdict:
    """A verdict that compares the deep arm with the shallow one, per seed."""
    deep, shallow = frames["deep"]["train acc"], frames["shallow"]["train acc"]
    gap = float((deep.to_numpy() - shallow.to_numpy()).min())
    return Verdict.from_checks([Check("deep above shallow in every seed", f"{gap:+.3f}",
                                      gap > 0)], f"gap {gap:+.3f}")  # fmt: skip


def test_a_control_whose_arms_are_one_net_on_the_same_seeds_is_refused(tmp_path: Path) -> None:
    """The control's deep arm at depth 1 is the shallow net: the same resolved config (all but
    where it wrote) on the same seeds, and the same numbers."""
    claim = _claim()
    frames = {
        "deep": _arm(tmp_path / "control", "deep", 1, [0.61, 0.63]),
        "shallow": _arm(tmp_path, "shallow", 1, [0.61, 0.63]),
    }
    why = DE.self_compared(claim, frames, _deep_beats_shallow)
    assert why.startswith(
        "compares a net with itself: `deep model.depth=1` and `shallow model.depth=1` are one net"
    )
    assert "identical resolved configs on seeds 100, 101" in why
    # from a lesson.json (no run folders): the per-seed numbers tell it
    numbers = {k: f.assign(run_dir=None) for k, f in frames.items()}
    why = DE.self_compared(claim, numbers, _deep_beats_shallow)
    assert "identical per-seed numbers on seeds 100, 101" in why
    # the same runs standing in for another arm (a replace control): refused too
    same = {"deep": frames["shallow"].copy(), "shallow": frames["shallow"]}
    assert "the same runs" in DE.self_compared(claim, same, _deep_beats_shallow)


def test_a_control_with_genuinely_different_arms_passes(tmp_path: Path) -> None:
    claim = _claim()
    frames = {
        "deep": _arm(tmp_path / "control", "deep", 2, [0.62, 0.60]),
        "shallow": _arm(tmp_path, "shallow", 1, [0.61, 0.63]),
    }
    assert DE.self_compared(claim, frames, _deep_beats_shallow) == ""
    numbers = {k: f.assign(run_dir=None) for k, f in frames.items()}
    assert DE.self_compared(claim, numbers, _deep_beats_shallow) == ""
    # the same net on other seeds (an A/A control, independently seeded) is not the same runs
    other = frames["shallow"].assign(seed=[300, 301], run_dir=None, **{"train acc": [0.6, 0.7]})
    assert DE.self_compared(claim, {"deep": other, "shallow": numbers["shallow"]},
                            _deep_beats_shallow) == ""  # fmt: skip
    # equal counts alone (parameters, steps) do not make two nets one
    ints = {k: f.assign(run_dir=None, **{"train acc": [3, 4]}) for k, f in frames.items()}
    assert DE.self_compared(claim, ints, _deep_beats_shallow) == ""


def test_an_arm_the_verdict_does_not_read_is_not_compared(tmp_path: Path) -> None:
    """A duplicate arm that the verdict never reads (drawn only) does not refuse the control."""
    claim = _claim()
    frames = {
        "deep": _arm(tmp_path / "c", "deep", 2, [0.62, 0.60]),
        "shallow": _arm(tmp_path, "shallow", 1, [0.61, 0.63]),
        "drawn": _arm(tmp_path, "drawn", 1, [0.61, 0.63]),
    }
    frames["drawn"]["run_dir"] = frames["shallow"]["run_dir"]
    assert DE.self_compared(claim, frames, _deep_beats_shallow) == ""


def test_decide_reports_a_self_compared_control_as_inconclusive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``decide`` on run folders: the claim's own verdict passes, its control's fails,
    but the control's deep arm is the shallow net on the same seeds: inconclusive, in one line."""
    claim = _claim()
    claim.profiles["quick"]["sweeps"] = {"deep": ["model.depth=4"], "shallow": ["model.depth=1"]}
    root = tmp_path / "runs"
    for where, depth, accs in (("deep", 4, [0.9, 0.92]), ("shallow", 1, [0.61, 0.63]),
                               ("control/deep", 1, [0.61, 0.63])):  # fmt: skip
        for seed, acc in zip(SEEDS, accs, strict=True):
            run = Path(_run_folder(root / claim.name / where / "s100-101" / str(seed), depth, seed))
            (run / ".hydra" / "overrides.yaml").write_text(
                yaml.safe_dump([f"model.depth={depth}", f"seed={seed}"])
            )
            (run / "metrics.json").write_text(json.dumps({"status": "ok", "train/acc": acc}))
        (root / claim.name / where / "s100-101" / J.TIMES_FILE).write_text("1.0\n")

    def verdict(frames: dict, criterion: dict) -> Verdict:
        return _deep_beats_shallow(frames)

    monkeypatch.setattr(DE, "verdict_fn", lambda c: verdict)
    monkeypatch.setattr(DE, "_measured", lambda c, run: {})
    result = DE.decide(claim, root)
    assert result.control.outcome == INCONCLUSIVE
    assert result.control.summary.startswith("compares a net with itself")
    assert result.control.summary.endswith(f"as judged: {NOT_CONFIRMED}")
    assert result.verdict.outcome == INCONCLUSIVE
    assert "inconclusive: its negative control compares a net with itself" in (
        result.verdict.summary
    )


# ---- jobs: finished only on exit 0 -------------------------------------------------------------
def _job(root: Path, sweep: str, code: int) -> J.Job:
    cmd = [sys.executable, "-c", f"import sys; sys.exit({code})"]
    return J.Job(cmd, root / "vanishing_gradients" / sweep / "s100-101", "vanishing_gradients")


def test_a_failed_job_is_never_marked_finished_and_runs_again_on_resume(tmp_path: Path) -> None:
    ok, bad = _job(tmp_path, "sigmoid", 0), _job(tmp_path, "relu", 3)
    J.run_jobs([ok, bad], lanes=2)
    assert (ok.folder / J.TIMES_FILE).is_file() and not (ok.folder / J.FAILED_FILE).exists()
    assert not (bad.folder / J.TIMES_FILE).exists()
    assert (bad.folder / J.FAILED_FILE).read_text().startswith("exit 3 after")
    assert json.loads((bad.folder / J.SET_FILE).read_text()) == {"set": []}
    assert J.finished_seeds(ok.folder.parent) == SEEDS
    assert J.finished_seeds(bad.folder.parent) == []
    # the page reports it, and the claim is undecided until it ran
    sets, failed = DE.processes_of(tmp_path / "vanishing_gradients")
    assert sets == [[]] and len(failed) == 1 and "exit 3" in failed[0]
    assert "--resume" in failed[0]
    claim = load_claims(["vanishing_gradients"])[0]
    assert "1 of its processes failed" in DE.undecided_because(claim, sets, failed)
    # --resume: the failed batch is set aside (never overwritten) and its seeds planned again
    claims = load_claims(["vanishing_gradients"])
    jobs = J.plan_jobs(claims, tmp_path, "quick", SEEDS, [], gpu=False)
    where = {j.folder.relative_to(tmp_path).as_posix() for j in jobs}
    assert where == {"vanishing_gradients/relu/s100-101",
                     "vanishing_gradients/control/sigmoid/s100-101"}  # fmt: skip
    aside = tmp_path / J.FAILED_DIR / "vanishing_gradients" / "relu" / "s100-101"
    assert (aside / J.FAILED_FILE).is_file() and not bad.folder.exists()
    assert (aside.parent / "s100-101.log").is_file()
    assert DE.processes_of(tmp_path / "vanishing_gradients")[1] == []


def test_an_interrupted_lesson_marks_its_running_jobs_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl+C while jobs run: each running process is waited for and marked failed (never
    finished), so ``--resume`` runs it again."""
    job = J.Job([sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(130)"],
                tmp_path / "c" / "main" / "s1", "c")  # fmt: skip
    calls = {"n": 0}
    real_sleep = J.time.sleep

    def interrupt(seconds: float) -> None:  # Ctrl+C in the lesson's first wait, only there
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(J.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        J.run_jobs([job], lanes=1)
    assert (job.folder / J.FAILED_FILE).read_text().startswith("exit 130")
    assert not (job.folder / J.TIMES_FILE).exists()


def test_every_file_the_lesson_writes_goes_through_the_atomic_writer() -> None:
    """No plain ``write_text`` / ``open(.., "w")`` in the lesson's writers (the job's log, which
    its process streams into, aside), and a figure saved only into ``atomic_write``'s file."""
    lesson = ROOT / "src" / "depthbench" / "lesson"
    for path in sorted(lesson.glob("*.py")):
        text, name = path.read_text(), path.name
        assert ".write_text(" not in text and ".write_bytes(" not in text, name
        opened = [ln for ln in text.splitlines() if "open(" in ln and '"w' in ln]
        assert all(".log" in ln for ln in opened), (name, opened)
        saved = [ln for ln in text.splitlines() if ".savefig(" in ln]
        assert all(".savefig(f," in ln for ln in saved), (name, saved)
        assert not saved or 'with atomic_write(path, "wb") as f:' in text, name
