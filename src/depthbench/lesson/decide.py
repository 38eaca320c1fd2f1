"""From a claim's run folders (or a page's ``lesson.json`` record) to its verdict and its
control's: measure each run once (kept in ``lesson_measures.json``), build one table per sweep,
judge the claim and the control with the claim's own verdict function, and combine the two.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from depthbench.lesson import verdicts
from depthbench.lesson.claims import Claim
from depthbench.lesson.jobs import CONTROL, TIMES_FILE
from depthbench.lesson.measures import MEASURES
from depthbench.lesson.outcome import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    NOT_MEASURED,
    UNDECIDED,
    Verdict,
)
from depthbench.lesson.page import ClaimResult
from depthbench.report.collect import collect_runs, config_value
from depthbench.report.tables import runs_frame, swept_keys, typed

log = logging.getLogger("depthbench")
MEASURES_FILE = "lesson_measures.json"  # per run folder: the claim's measurements, kept


def _measured(claim: Claim, run: Any) -> dict[str, Any]:
    """The claim's measurements of one ok run, computed once and kept in the run folder."""
    if not claim.measures or not run.ok:
        return {}
    cache = run.path / MEASURES_FILE
    kept = json.loads(cache.read_text()) if cache.is_file() else {}
    row: dict[str, Any] = {}
    for m in claim.measures:
        where = m.get("where") or {}
        if any(str(config_value(run, k)).lower() != str(v).lower() for k, v in where.items()):
            continue
        key = m["name"] + json.dumps(m.get("args") or {}, sort_keys=True)
        if key not in kept:
            kept[key] = MEASURES[m["name"]](run, **(m.get("args") or {}))
            cache.write_text(json.dumps(kept, default=float))
        row.update(kept[key])
    return row


def _measure_folder(item: tuple[Claim, Path]) -> None:
    claim, sweep_dir = item
    import torch

    torch.set_num_threads(1)
    for run in collect_runs([sweep_dir]):
        _measured(claim, run)


def measure_all(claims: list[Claim], root: Path, lanes: int) -> None:
    """Compute every claim's measurements of its runs, ``lanes`` sweep folders at a time (each
    kept in the run folder, so deciding afterwards only reads them)."""
    from concurrent.futures import ProcessPoolExecutor

    items = []
    for c in claims:
        where = root / (c.uses or c.name)
        if c.measures and where.is_dir():
            items += [(c, p.parent) for p in where.rglob(TIMES_FILE)]
    if not items:
        return
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(_measure_folder, items))
    log.info("lesson: measurements in %.0f s", time.perf_counter() - start)


def sweep_frame(claim: Claim, sweep_dir: Path) -> tuple[pd.DataFrame | None, float, list]:
    """One row per run (or per computed seed) of a sweep folder, its seconds, and its runs."""
    seconds = sum(float(t.read_text()) for t in sweep_dir.glob(f"*/{TIMES_FILE}"))
    rows_files = sorted(sweep_dir.glob("*/seed-*.json"))
    if rows_files:  # a computed sweep
        rows = [json.loads(p.read_text()) for p in rows_files]
        return pd.DataFrame(rows), seconds, []
    runs = collect_runs([sweep_dir])
    if not runs:
        return None, seconds, []
    frame = runs_frame(runs, swept_keys(runs))
    for key in claim.config_keys:
        frame[key] = [typed(str(config_value(r, key))) for r in runs]
    extra = [_measured(claim, r) for r in runs]
    if any(extra):
        frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
    return frame, seconds, runs


def claim_frames(claim: Claim, claim_dir: Path) -> tuple[dict, dict, list, float]:
    """(sweep -> rows, control sweep -> rows, every run, seconds) of a claim's folder."""
    frames, control, runs_all, seconds = {}, {}, [], 0.0
    for where, out in ((claim_dir, frames), (claim_dir / CONTROL, control)):
        if not where.is_dir():
            continue
        for sweep in sorted(p for p in where.iterdir() if p.is_dir() and p.name != CONTROL):
            frame, took, runs = sweep_frame(claim, sweep)
            seconds += took
            runs_all += runs
            if frame is not None:
                out[sweep.name] = frame
    return frames, control, runs_all, seconds


def control_frames(claim: Claim, frames: dict, control: dict) -> dict[str, pd.DataFrame]:
    """The frames the claim's verdict reads for its control: the claim's own, with the
    control's sweeps in place of theirs, or the ``replace`` rows standing in for the others."""
    assert claim.control is not None
    out = dict(frames)
    for name in claim.control.sweeps:
        if name not in control:
            raise KeyError(f"the control's {name} runs are missing")
        out[name] = control[name]
    rep = claim.control.replace
    if rep:
        key, value, stand_in = rep["key"], str(rep["value"]).lower(), str(rep["with"]).lower()
        for name, frame in frames.items():
            if key not in frame:
                continue
            col = frame[key].astype(str).str.lower()
            twin = frame[col == stand_in].copy()
            twin[key] = frame[col == value][key].iloc[0] if (col == value).any() else value
            out[name] = pd.concat([frame[col != value], twin], ignore_index=True)
    return out


def verdict_fn(claim: Claim) -> Callable[[dict, Mapping], Verdict]:
    """The function that judges ``claim``: its ``verdict`` in ``verdicts`` or, for a
    demonstration, in ``demonstrations``."""
    fn = getattr(verdicts, claim.verdict, None)
    if fn is None:
        from depthbench.lesson import demonstrations

        fn = getattr(demonstrations, claim.verdict)
    return fn


def judge(claim: Claim, frames: dict) -> Verdict:
    """The claim's verdict function on ``frames``; missing runs make it undecided, never
    confirmed or not confirmed."""
    if not frames:
        return Verdict(UNDECIDED, "no runs")
    try:
        return verdict_fn(claim)(frames, claim.criterion)
    except (KeyError, IndexError, ValueError) as e:
        return Verdict(UNDECIDED, f"undecided: the runs it needs are missing ({e})")


def combine(claim: Claim, own: Verdict, control: Verdict | None, seeds: list[int]) -> Verdict:
    """The claim's outcome: its own verdict, unless its control passed (or was not measured)
    or it ran on its pilot seeds: then a confirmation is inconclusive."""
    if own.outcome != CONFIRMED or claim.figure_only:
        return own
    why = ""
    if control is None or control.outcome in (UNDECIDED, NOT_MEASURED):
        why = "its negative control was not measured"
    elif control.outcome != NOT_CONFIRMED:
        why = "its negative control passes the same criterion"
    elif set(seeds) & set(claim.pilot_seeds):
        why = f"it ran on its pilot seeds {sorted(set(seeds) & set(claim.pilot_seeds))}"
    if not why:
        return own
    return Verdict(
        INCONCLUSIVE, f"{own.summary}; inconclusive: {why}", own.checks, own.table, own.figure
    )


def decide(
    claim: Claim, root: Path | None, record: dict | None = None, gpu: bool = False
) -> ClaimResult:
    """The claim's verdict and its control's, from its runs under ``root`` or from a
    ``lesson.json`` record (``record["frames"]``)."""
    if claim.needs_gpu and not gpu and record is None:
        return ClaimResult(claim, verdict_fn(claim)({}, claim.criterion))
    source = claim.uses or claim.name
    runs: list = []
    seconds = None
    if record is not None:
        frames = {k: pd.DataFrame(v) for k, v in (record.get("frames") or {}).items()}
        control = {k: pd.DataFrame(v) for k, v in (record.get("control_frames") or {}).items()}
        seconds = record.get("seconds")
    elif root is not None and (root / source).is_dir():
        frames, control, runs, seconds = claim_frames(claim, root / source)
        if claim.uses:  # the measurements of this claim only, on the other claim's runs
            seconds = None
    else:
        return ClaimResult(claim, Verdict(UNDECIDED, "not run"))
    own = judge(claim, frames)
    ctrl = None
    if claim.control is not None:
        try:
            ctrl = judge(claim, control_frames(claim, frames, control))
        except (KeyError, IndexError, ValueError) as e:
            ctrl = Verdict(UNDECIDED, f"the control's runs are missing ({e})")
    seeds = sorted({int(s) for f in frames.values() if "seed" in f for s in f["seed"].dropna()})
    outcomes: dict[str, int] = {}
    bad = []
    for r in runs:
        outcomes[r.status] = outcomes.get(r.status, 0) + 1
        if not r.ok:
            where = " ".join(f"{k}={v}" for k, v in r.overrides.items())
            what = f"diverged at step {r.diverged_at_step}" if r.diverged else r.status
            bad.append(f"{what}: `{r.path.parent.name}/{r.path.name}` ({where}) {r.error[:160]}")
    if record is not None:
        outcomes, bad = record.get("outcomes") or {}, record.get("bad_runs") or []
    result = ClaimResult(
        claim,
        combine(claim, own, ctrl, seeds),
        root / source if root else None,
        outcomes,
        bad,
        seconds,
    )
    result.control = ctrl
    result.seeds = seeds
    result.frames, result.control_frames = frames, control
    result.commits = sorted({c for r in runs for c in [_commit_of(r)] if c})
    if record is not None:  # the commits the runs behind the record ran on
        result.commits = list(record.get("commits") or [])
    return result


def _commit_of(run: Any) -> str:
    code = run.metrics.get("code") or {}
    if not code.get("commit"):
        return ""
    return code["commit"][:10] + (" (dirty)" if code.get("dirty") else "")
