"""Controls that could have passed: the control's runs on seeds shifted by ``seed_offset``
(planned shifted by ``jobs.plan_jobs``, paired back with the claim's seeds by
``decide.control_frames``), and ``stand_in`` copies that take the place of one arm of the claim
(relabelled as that arm, the claim's other arm kept as it is).

The frames are made by hand: no run, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from depthbench.lesson import decide as DE
from depthbench.lesson import jobs as J
from depthbench.lesson.claims import Claim, Control, load_claims
from depthbench.lesson.verdict_types import CONFIRMED, NOT_CONFIRMED

SEEDS = [1000, 1001, 1002]  # the confirmation seeds of issue 28: from 1000 on
ACC = "train acc (eval)"


def claim(control: Control, verdict: str = "depthbench.lesson.verdicts.degradation") -> Claim:
    """A claim with one sweep ``resnet`` and the given control (as load_claims builds it)."""
    criterion = {"degradation_margin": 0.05, "shortfall_ratio": 0.25, "text": "t"}
    profiles = {"quick": {"sweeps": {"resnet": ["x=1", "model.residual=false,true"]}}}
    return Claim("c", 4, "t", "c", "", verdict, criterion, profiles, control=control)


def family(residual: bool, accs: dict[int, float], seeds: list[int] = SEEDS) -> pd.DataFrame:
    """One family's runs at depths 20 and 56: depth -> train acc, with 0.001 per seed."""
    return pd.DataFrame(
        [{"seed": s, "status": "ok", "model.residual": residual, "model.depth": d,
          ACC: a + 0.001 * i} for d, a in accs.items() for i, s in enumerate(seeds)]
    )  # fmt: skip


PLAIN = {20: 0.85, 56: 0.67}  # He et al.'s degradation at CPU size
RESIDUAL = {20: 0.882, 56: 0.888}
COPIES = {20: 0.879, 56: 0.884}  # independently seeded residual copies: no degradation


def own_frames() -> dict[str, pd.DataFrame]:
    return {"resnet": pd.concat([family(False, PLAIN), family(True, RESIDUAL)], ignore_index=True)}


# ---- decide.control_frames ---------------------------------------------------------------------
def test_seed_offset_pairs_the_control_runs_with_the_claims_seeds() -> None:
    c = claim(Control("deep at depth 1", sweeps={"deep": ["model.depth=1"]}, seed_offset=50))
    frames = {
        "deep": pd.DataFrame({"seed": SEEDS, "status": "ok", ACC: [0.82, 0.84, 0.83]}),
        "shallow": pd.DataFrame({"seed": SEEDS, "status": "ok", ACC: [0.70, 0.72, 0.71]}),
    }
    control = {"deep": pd.DataFrame({"seed": [1050, 1051, 1052], "status": "ok",
                                     ACC: [0.71, 0.70, 0.72]})}  # fmt: skip
    out = DE.control_frames(c, frames, control)
    assert out["deep"]["seed"].tolist() == SEEDS  # shifted back: paired seed by seed
    assert out["deep"][ACC].tolist() == [0.71, 0.70, 0.72]  # the control's numbers, not ours
    assert out["shallow"] is frames["shallow"]  # the other sweep is the claim's own
    # nothing handed in is changed: the control's own runs keep the seeds they ran on
    assert control["deep"]["seed"].tolist() == [1050, 1051, 1052]
    assert frames["deep"][ACC].tolist() == [0.82, 0.84, 0.83]


def test_stand_in_copies_replace_one_arm_relabelled_and_keep_the_other() -> None:
    c = claim(
        Control("residual copies", sweeps={"resnet": ["model.residual=true"]},
                stand_in={"key": "model.residual", "value": False}, seed_offset=50)
    )  # fmt: skip
    frames = own_frames()
    copies = family(True, COPIES, seeds=[s + 50 for s in SEEDS])
    out = DE.control_frames(c, frames, {"resnet": copies})["resnet"]
    assert len(out) == 12 and sorted(set(out["seed"])) == SEEDS
    res = out[out["model.residual"] == True]  # noqa: E712
    plain = out[out["model.residual"] == False]  # noqa: E712
    # the claim's own residual rows, exactly as they were
    mine = frames["resnet"][frames["resnet"]["model.residual"] == True]  # noqa: E712
    pd.testing.assert_frame_equal(res.reset_index(drop=True), mine.reset_index(drop=True))
    # the copies, relabelled plain (with the claim's own value and type), on the claim's seeds
    assert plain[ACC].tolist() == copies[ACC].tolist()
    assert plain["seed"].tolist() == [s - 50 for s in copies["seed"]]
    assert {type(v) for v in plain["model.residual"]} == {bool}
    # the claim's plain rows are gone; the claim's frames and the copies are unchanged
    assert not set(plain[ACC]) & set(family(False, PLAIN)[ACC])
    assert bool(copies["model.residual"].all()) and copies["seed"].min() == 1050
    assert len(frames["resnet"]) == 12


def test_stand_in_with_no_rows_of_that_arm_labels_them_with_its_value() -> None:
    """``--set model.residual=true`` left the claim no plain rows: the copies still take the
    plain arm's label (as the YAML spells it)."""
    c = claim(
        Control("copies", sweeps={"resnet": ["model.residual=true"]},
                stand_in={"key": "model.residual", "value": False}, seed_offset=50)
    )  # fmt: skip
    frames = {"resnet": family(True, RESIDUAL)}
    out = DE.control_frames(c, frames, {"resnet": family(True, COPIES, [1050, 1051, 1052])})
    labels = out["resnet"]["model.residual"].astype(str).str.lower()
    assert (labels == "false").sum() == 6 and (labels == "true").sum() == 6


def test_stand_in_copies_are_judged_by_the_claims_verdict() -> None:
    """The copies fall less than the margin from depth 20 to 56: not confirmed. The same
    verdict on the claim's own runs: confirmed."""
    c = claim(
        Control("copies", sweeps={"resnet": ["model.residual=true"]},
                stand_in={"key": "model.residual", "value": False}, seed_offset=50)
    )  # fmt: skip
    frames = own_frames()
    assert DE.judge(c, frames).outcome == CONFIRMED
    copies = family(True, COPIES, seeds=[1050, 1051, 1052])
    judged = DE.control_frames(c, frames, {"resnet": copies})
    v = DE.judge(c, judged)
    assert v.outcome == NOT_CONFIRMED and not v.checks[0].passed
    assert v.checks[0].measured.startswith("per seed 0")  # residual copies: no shortfall
    assert DE.self_compared(c, judged) == ""  # two different nets, never one


def test_a_stand_in_that_repeats_the_claims_own_runs_is_refused() -> None:
    """A control whose "copies" are the claim's own residual runs (the offset lost, say):
    both arms of the judged frames are one net on the same seeds, so the control could not
    have passed by construction, and self_compared says so."""
    c = claim(
        Control("copies", sweeps={"resnet": ["model.residual=true"]},
                stand_in={"key": "model.residual", "value": False}, seed_offset=50)
    )  # fmt: skip
    frames = own_frames()
    mine = frames["resnet"][frames["resnet"]["model.residual"] == True]  # noqa: E712
    judged = DE.control_frames(c, frames, {"resnet": mine.assign(seed=mine.seed + 50)})
    why = DE.self_compared(c, judged)
    assert why.startswith(DE.SELF_COMPARED) and "identical per-seed numbers" in why


def test_the_yaml_controls_with_an_offset_stand_in_for_an_arm_they_run() -> None:
    """Every control with a seed offset runs sweeps of its own; a stand-in names the key and
    the value of the arm its copies replace, and the copies are of the other value."""
    shifted = [c for c in load_claims() if c.control is not None and c.control.seed_offset]
    assert {c.name for c in shifted} >= {"degradation", "depth_vs_width", "lesion"}
    for c in shifted:
        assert c.control.sweeps and c.control.could_pass, c.name
        if c.control.stand_in:
            stand = c.control.stand_in
            assert set(stand) == {"key", "value"}, c.name
            change = [o for ch in c.control.sweeps.values() for o in ch]
            assert any(o.startswith(f"{stand['key']}=") for o in change), c.name
            assert f"{stand['key']}={str(stand['value']).lower()}" not in change, c.name


def test_a_claim_reading_another_claims_control_runs_shifts_them_back_alike() -> None:
    """Claim 11 reads claim 4's control runs (``uses``): its control must name the same sweeps
    and the same offset, or its copies would be paired with the wrong seeds."""
    claims = {c.name: c for c in load_claims()}
    readers = [c for c in claims.values() if c.uses and c.control and c.control.sweeps]
    assert "lesion" in {c.name for c in readers}
    for c in readers:
        source = claims[c.uses].control
        assert source is not None, c.name
        assert c.control.sweeps == source.sweeps, c.name
        assert c.control.seed_offset == source.seed_offset, c.name


# ---- jobs.plan_jobs: the control's seeds, shifted ------------------------------------------------
def _seeds_of(job: J.Job) -> list[int]:
    if "--seeds" in job.cmd:
        return [int(s) for s in job.cmd[job.cmd.index("--seeds") + 1].split(",")]
    (arg,) = [a for a in job.cmd if a.startswith("seed=")]
    return [int(s) for s in arg.removeprefix("seed=").split(",")]


def test_plan_jobs_runs_the_control_on_seeds_shifted_by_its_offset(tmp_path: Path) -> None:
    deg = load_claims(["degradation"])
    offset = deg[0].control.seed_offset
    assert offset > 0
    jobs = J.plan_jobs(deg, tmp_path, "quick", SEEDS, [], gpu=False)
    where = {j.folder.relative_to(tmp_path).as_posix(): j for j in jobs}
    shifted = [s + offset for s in SEEDS]
    assert set(where) == {
        "degradation/resnet/s1000-1001-1002",
        f"degradation/control/resnet/{J.seed_folder(shifted)}",
    }
    own = where["degradation/resnet/s1000-1001-1002"]
    ctrl = where[f"degradation/control/resnet/{J.seed_folder(shifted)}"]
    assert _seeds_of(own) == SEEDS and _seeds_of(ctrl) == shifted
    assert "model.residual=true" in ctrl.cmd and "model.residual=false,true" not in ctrl.cmd
    # the claim's own seeds finished, the control's not: only the control runs again
    own.folder.mkdir(parents=True)
    (own.folder / J.TIMES_FILE).write_text("1.0\n")
    again = J.plan_jobs(deg, tmp_path, "quick", SEEDS, [], gpu=False)
    assert [_seeds_of(j) for j in again] == [shifted]
    # the control's shifted seeds finished: one more seed runs as 1003 and 1003 + offset
    ctrl.folder.mkdir(parents=True)
    (ctrl.folder / J.TIMES_FILE).write_text("1.0\n")
    assert J.plan_jobs(deg, tmp_path, "quick", SEEDS, [], gpu=False) == []
    more = J.plan_jobs(deg, tmp_path, "quick", [*SEEDS, 1003], [], gpu=False)
    assert sorted(_seeds_of(j) for j in more) == [[1003], [1003 + offset]]


def test_plan_jobs_never_reads_the_claims_own_seeds_as_the_controls(tmp_path: Path) -> None:
    """A control batch that happens to hold the claim's seeds (an offset changed after a run)
    does not count as the shifted seeds: those still run."""
    deg = load_claims(["degradation"])
    offset = deg[0].control.seed_offset
    stale = tmp_path / "degradation" / J.CONTROL / "resnet" / J.seed_folder(SEEDS)
    stale.mkdir(parents=True)
    (stale / J.TIMES_FILE).write_text("1.0\n")
    jobs = J.plan_jobs(deg, tmp_path, "quick", SEEDS, [], gpu=False)
    ctrl = [j for j in jobs if J.CONTROL in j.folder.parts]
    assert [_seeds_of(j) for j in ctrl] == [[s + offset for s in SEEDS]]


SHATTERED = "depthbench.lesson.measures_without_runs.shattered_gradients"


def test_plan_jobs_shifts_a_computed_controls_seeds_too(tmp_path: Path) -> None:
    c = Claim(
        "comp", 12, "t", "c", "", "depthbench.lesson.demonstration_verdicts.shattered_gradients",
        {},
        {"quick": {"compute": {"main": {"function": SHATTERED, "args": {"depth": 32}}}}},
        control=Control("depth 2", sweeps={"main": {"args": {"depth": 2}}}, seed_offset=7),
    )  # fmt: skip
    jobs = J.plan_jobs([c], tmp_path, "quick", [5, 6], [], gpu=False)
    by = {J.CONTROL in j.folder.parts: j for j in jobs}
    assert _seeds_of(by[False]) == [5, 6] and _seeds_of(by[True]) == [12, 13]
    assert json.loads(by[True].cmd[by[True].cmd.index("--args") + 1]) == {"depth": 2}
    assert by[True].folder.name == "s12-13"


def test_a_control_without_an_offset_runs_the_claims_seeds(tmp_path: Path) -> None:
    vg = load_claims(["vanishing_gradients"])
    assert vg[0].control.seed_offset == 0
    jobs = J.plan_jobs(vg, tmp_path, "quick", SEEDS, [], gpu=False)
    assert all(_seeds_of(j) == SEEDS for j in jobs)


# ---- decide: the seeds a verdict used ------------------------------------------------------------
def test_decide_reports_the_claims_seeds_and_the_controls_shifted_ones_apart() -> None:
    deg = next(c for c in load_claims(["degradation"]) if c.name == "degradation")
    offset = deg.control.seed_offset
    shifted = [s + offset for s in SEEDS]
    record = {
        "frames": {k: f.to_dict(orient="records") for k, f in own_frames().items()},
        "control_frames": {"resnet": family(True, COPIES, seeds=shifted).to_dict("records")},
    }
    result = DE.decide(deg, None, record=record)
    assert result.control.outcome == NOT_CONFIRMED
    assert result.seeds == SEEDS and result.control_seeds == shifted
