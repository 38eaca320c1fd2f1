"""The lesson as one pipeline: every function a claim's YAML names resolves by its dotted path (a
wrong one is one clear error naming the claim and the path), the committed page decides again
as it was decided, a process that fails is never read as finished, and a figure is written
whole or not at all."""

from __future__ import annotations

import inspect
import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from depthbench.errors import ConfigError
from depthbench.lesson import compute_job as CJ
from depthbench.lesson import decide as DE
from depthbench.lesson import demonstration_verdicts, run_measures, verdicts
from depthbench.lesson import figures as F
from depthbench.lesson import jobs as J
from depthbench.lesson import measures_without_runs as M
from depthbench.lesson import run as R
from depthbench.lesson.claims import LESSON_DIR, check_functions, load_claims, named_function
from depthbench.lesson.verdict_types import UNDECIDED, Figure, Series

CLAIMS = load_claims()
PAGE = ROOT / "docs" / "results" / "lesson.json"


# ---- one registry: the YAML names each function by its dotted path ---------------------------
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_every_function_a_claim_names_resolves_to_what_its_role_takes(claim) -> None:
    named = claim.functions()
    verdict = named_function(claim.name, named.pop("verdict"))
    assert inspect.getmodule(verdict) in (verdicts, demonstration_verdicts)
    assert list(inspect.signature(verdict).parameters) == ["frames", "criterion"]
    for m in claim.measures:  # (run, **args), from run_measures
        fn = named_function(claim.name, m["function"])
        params = list(inspect.signature(fn).parameters)
        assert inspect.getmodule(fn) is run_measures and params[0] == "run", m
        assert set(m.get("args") or {}) <= set(params[1:]), m
    for profile in claim.profiles:  # (seed, **args), from measures_without_runs
        for sweep, job in claim.compute(profile).items():
            fn = named_function(claim.name, job["function"])
            params = list(inspect.signature(fn).parameters)
            assert inspect.getmodule(fn) is M and params[0] == "seed", job
            control = (claim.control.sweeps.get(sweep) or {}) if claim.control else {}
            assert set(job.get("args") or {}) | set(control.get("args") or {}) <= set(params)
    check_functions([claim])


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("depthbench.lesson.verdicts.degradatoin", "depthbench.lesson.verdicts has no function "
         "degradatoin"),
        ("depthbench.lesson.verdictz.degradation", "there is no module depthbench.lesson.verdictz"),
        ("depthbench.lesson.verdicts", "depthbench.lesson has no function verdicts"),
        ("degradation", "which is not a dotted path"),
    ],
)  # fmt: skip
def test_a_wrong_name_is_one_error_naming_the_claim_and_the_path(path: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        named_function("degradation", path)
    message = str(raised.value)
    assert "\n" not in message and raised.value.__cause__ is None
    assert message.startswith(f"claim 'degradation' (conf/lesson/degradation.yaml) names {path!r}")
    assert says in message
    assert "depthbench.lesson.verdicts.degradation" in message  # the form it wants


@pytest.mark.parametrize(
    ("line", "becomes", "what"),
    [
        ("verdict: depthbench.lesson.verdicts.degradation", "verdict: degradation", "verdict"),
        ("measures: [depthbench.lesson.run_measures.train_eval]", "measures: [train_eval]",
         "measure"),
    ],
)  # fmt: skip
def test_a_yaml_with_a_bare_name_is_refused_when_read(
    tmp_path: Path, line: str, becomes: str, what: str
) -> None:
    """The names of before (``verdict: degradation``) are refused as the YAML is read, before
    anything is imported or run."""
    text = (LESSON_DIR / "degradation.yaml").read_text()
    assert line in text
    (tmp_path / "degradation.yaml").write_text(text.replace(line, becomes))
    with pytest.raises(ConfigError, match=rf"claim 'degradation' .*: its {what} is "):
        load_claims(lesson_dir=tmp_path)


def test_a_missing_function_stops_the_lesson_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(LESSON_DIR / "vanishing_gradients.yaml", tmp_path)
    path = tmp_path / "vanishing_gradients.yaml"
    path.write_text(path.read_text().replace("verdicts.vanishing_gradients", "verdicts.nope"))
    args = R.parse_args(["--only", "vanishing_gradients", "--runs", str(tmp_path / "runs")])
    monkeypatch.setattr(R, "load_claims", lambda only: load_claims(only, lesson_dir=tmp_path))
    monkeypatch.setattr(R, "plan_jobs", lambda *a: pytest.fail("planned after a bad name"))
    with pytest.raises(ConfigError, match="verdicts has no function nope"):
        R.lesson(args)
    assert not (tmp_path / "runs").exists()


def test_a_module_that_imports_something_missing_keeps_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lesson_broken_module.py").write_text("import no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_package_xyz"):
        named_function("c", "lesson_broken_module.f")


# ---- decide builds, page renders: the committed page decides again as it was ------------------
def _records() -> list:
    page = json.loads(PAGE.read_text())
    return [c for c in page["claims"] if c["frames"]]  # a claim not measured here keeps none


@pytest.mark.parametrize("record", _records(), ids=lambda r: r["claim"])
def test_the_committed_page_decides_again_exactly_as_it_was_decided(record: dict) -> None:
    """``docs/results/lesson.json`` keeps every run's deciding numbers: each claim and its
    control, decided again from them, get the outcome, summary and checks it records."""
    claim = next(c for c in CLAIMS if c.name == record["claim"])
    result = DE.decide(claim, None, record=record)

    def as_recorded(v) -> dict:
        checks = [{"requirement": c.requirement, "measured": c.measured, "passed": c.passed}
                  for c in v.checks]  # fmt: skip
        return {"verdict": v.outcome, "summary": v.summary, "checks": checks}

    assert as_recorded(result.verdict) == {k: record[k] for k in ("verdict", "summary", "checks")}
    if record["control"] is None:
        assert result.control is None
    else:
        kept = {k: record["control"][k] for k in ("verdict", "summary", "checks")}
        assert as_recorded(result.control) == kept


# ---- a process that failed is never read as finished ------------------------------------------
def test_a_computed_seed_that_raises_fails_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every seed's row is written (the failed one says why), and the process exits non-zero,
    so the lesson marks the batch failed and ``--resume`` computes it again."""

    def flaky(seed: int) -> dict:
        if seed == 101:
            raise ValueError("no weights")
        return {"value": 1.0}

    monkeypatch.setattr(M, "flaky", flaky, raising=False)
    folder = tmp_path / "c" / "main" / "s100-101-102"
    with pytest.raises(SystemExit) as stop:
        CJ.main(["--claim", "c", "--function", "depthbench.lesson.measures_without_runs.flaky",
                 "--seeds", "100,101,102", "--out", str(folder)])  # fmt: skip
    assert stop.value.code not in (None, 0) and "101" in str(stop.value.code)
    rows = {p.name: json.loads(p.read_text()) for p in folder.glob("seed-*.json")}
    assert [r["status"] for _, r in sorted(rows.items())] == ["ok", "failed", "ok"]
    assert rows["seed-101.json"]["error"] == "ValueError: no weights"


@pytest.mark.process
def test_a_compute_job_naming_no_function_is_marked_failed_not_finished(tmp_path: Path) -> None:
    folder = tmp_path / "c" / "main" / "s100"
    spec = {"function": "depthbench.lesson.no_such_module.f", "args": {}}
    job = J.Job(J.compute_command("c", spec, folder, [100]), folder, "c")
    J.run_jobs([job], lanes=1)
    assert not (folder / J.TIMES_FILE).exists()
    assert (folder / J.FAILED_FILE).read_text().startswith("exit 1 after")
    log = folder.with_suffix(".log").read_text()
    assert "claim 'c'" in log and "no module depthbench.lesson.no_such_module" in log
    assert "Traceback" not in log
    assert J.failed_batches(tmp_path) == [folder] and J.finished_seeds(folder.parent) == []


def test_a_lesson_whose_process_failed_is_not_finished_and_resume_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs folder gets no ``finished.txt`` while a process of it failed: ``--resume``
    without ``--runs`` continues it, and its page says the claim is undecided, naming the exit
    code."""
    lessons = tmp_path / "outputs" / "lesson"
    root = lessons / "quick" / "2026-01-01_10-00-00"
    batch = root / "vanishing_gradients" / "sigmoid" / "s100"
    failing = J.Job([sys.executable, "-c", "import sys; sys.exit(3)"], batch, "vanishing_gradients")
    monkeypatch.setattr(R, "plan_jobs", lambda *a: [failing])
    args = R.parse_args(["--only", "vanishing_gradients", "--seeds", "1", "--runs", str(root)])
    page = R.lesson(args)
    assert (batch / J.FAILED_FILE).read_text().startswith("exit 3")
    assert not (root / R.DONE_FILE).exists() and R.unfinished(root)
    assert R.newest_unfinished("quick", lessons) == root
    (claim,) = json.loads(page.with_suffix(".json").read_text())["claims"]
    assert claim["verdict"] == UNDECIDED and "exit 3" in claim["failed_processes"][0]
    # set aside by the next plan, as --resume does: nothing failed is left in the folder
    J.set_aside_failed(batch.parent, root)
    assert J.failed_batches(root) == [] and (root / J.FAILED_DIR).is_dir()


def test_a_finished_folder_with_a_failed_batch_is_unfinished(tmp_path: Path) -> None:
    (tmp_path / R.DONE_FILE).write_text("x\n")
    assert not R.unfinished(tmp_path)
    batch = tmp_path / "fixes" / "relu_he" / "s100"
    batch.mkdir(parents=True)
    (batch / J.FAILED_FILE).write_text("exit 1 after 2.0 s\n")
    assert R.unfinished(tmp_path)
    (batch / J.TIMES_FILE).write_text("2.0\n")  # a batch that ended well is finished
    assert not R.unfinished(tmp_path)


# ---- atomic writes ------------------------------------------------------------------------------
def test_a_figure_that_fails_mid_save_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.figure

    figure = Figure("x", "y", [Series("plain", [1, 2], [0.5, 0.6], [0.0, 0.0])])
    path = F.draw(figure, tmp_path / "lesson_c.png", "a claim")
    old = path.read_bytes()
    assert old.startswith(b"\x89PNG")

    def half(self, f, **kwargs) -> None:
        f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half)
    with pytest.raises(OSError, match="disk full"):
        F.draw(figure, path, "a claim")
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["lesson_c.png"]  # no temporary file left
