"""From a claim's run folders (or a page's ``lesson.json`` record) to its verdict and its
control's: measure each run once (kept in ``lesson_measures.json``), build one table per sweep,
judge the claim and the control with the claim's own verdict function, and combine the two.

Three things make a claim undecided or inconclusive whatever its numbers: a ``--set`` that
collapses a key its verdict compares (``claims.collapsed_by``); a process of it that failed
(``failed.txt``: ``--resume`` runs it again); and a control whose compared arms are one net on
the same seeds (``self_compared``: identical resolved configs, or identical per-seed numbers).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthbench.atomic import write_text_atomic
from depthbench.core import open_run, override_key
from depthbench.lesson.claims import Claim, collapsed_by, load_claims, named_function
from depthbench.lesson.jobs import CONTROL, FAILED_FILE, SET_FILE, TIMES_FILE, batch_folders
from depthbench.lesson.verdict_types import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    NOT_MEASURED,
    UNDECIDED,
    ClaimResult,
    Verdict,
)
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
        args = m.get("args") or {}
        key = m["function"] + json.dumps(args, sort_keys=True)
        # a lesson from before the YAML named functions by dotted path kept them by bare name
        bare = m["function"].rpartition(".")[2] + json.dumps(args, sort_keys=True)
        if key not in kept and bare in kept:
            key = bare
        if key not in kept:
            kept[key] = named_function(claim.name, m["function"])(run, **args)
            write_text_atomic(cache, json.dumps(kept, default=float), per_process=True)
        row.update(kept[key])
    return row


def _measure_folder(item: tuple[Path, list[Claim]]) -> None:
    sweep_dir, claims = item
    import torch

    torch.set_num_threads(1)
    for run in collect_runs([sweep_dir]):
        for claim in claims:
            _measured(claim, run)


def measure_all(claims: list[Claim], root: Path, lanes: int) -> None:
    """Compute every claim's measurements of its runs, ``lanes`` sweep folders at a time (each
    kept in the run folder, so deciding afterwards only reads them). One process per folder,
    for every claim that reads it: one writer per ``lesson_measures.json``."""
    from concurrent.futures import ProcessPoolExecutor

    by_folder: dict[Path, list[Claim]] = {}
    for c in claims:
        where = root / (c.uses or c.name)
        if c.measures and where.is_dir():
            for p in where.rglob(TIMES_FILE):
                by_folder.setdefault(p.parent, []).append(c)
    items = list(by_folder.items())
    if not items:
        return
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(_measure_folder, items))
    log.info("lesson: measurements in %.0f s", time.perf_counter() - start)


def sweep_frame(
    claim: Claim, sweep_dir: Path
) -> tuple[pd.DataFrame | None, float, list, list[str]]:
    """One row per run (or per computed seed) of a sweep folder, its seconds, its runs, and
    the commits they ran on (``code_text``)."""
    seconds = sum(float(t.read_text()) for t in sweep_dir.glob(f"*/{TIMES_FILE}"))
    rows_files = sorted(sweep_dir.glob("*/seed-*.json"))
    if rows_files:  # a computed sweep: each row says the commit it ran on (compute_job)
        rows = [json.loads(p.read_text()) for p in rows_files]
        commits = [code_text(r.pop("code", None) or {}) for r in rows]
        return pd.DataFrame(rows), seconds, [], [c for c in commits if c]
    runs = collect_runs([sweep_dir])
    if not runs:
        return None, seconds, [], []
    frame = runs_frame(runs, swept_keys(runs))
    for key in claim.config_keys:
        frame[key] = [typed(str(config_value(r, key))) for r in runs]
    extra = [_measured(claim, r) for r in runs]
    if any(extra):
        frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
    commits = [c for c in (_commit_of(r) for r in runs) if c]
    return frame, seconds, runs, commits


def claim_frames(claim: Claim, claim_dir: Path) -> tuple[dict, dict, list, float, list[str]]:
    """(sweep -> rows, control sweep -> rows, every run, seconds, commits) of a claim's
    folder."""
    frames, control, runs_all, seconds, commits = {}, {}, [], 0.0, []
    for where, out in ((claim_dir, frames), (claim_dir / CONTROL, control)):
        if not where.is_dir():
            continue
        for sweep in sorted(p for p in where.iterdir() if p.is_dir() and p.name != CONTROL):
            frame, took, runs, ran_on = sweep_frame(claim, sweep)
            seconds += took
            runs_all += runs
            commits += ran_on
            if frame is not None:
                out[sweep.name] = frame
    return frames, control, runs_all, seconds, sorted(set(commits))


def _sweep_dirs(claim_dir: Path) -> list[Path]:
    """The claim's sweep folders and its control's."""
    out = []
    for where in (claim_dir, claim_dir / CONTROL):
        if where.is_dir():
            out += sorted(p for p in where.iterdir() if p.is_dir() and p.name != CONTROL)
    return out


def processes_of(claim_dir: Path) -> tuple[list[list[str]], list[str]]:
    """What the claim's processes left: the distinct ``--set`` lists they ran with (one list
    when they agree; none recorded: ``[]``), and one line per process that failed."""
    sets: list[list[str]] = []
    failed: list[str] = []
    for sweep in _sweep_dirs(claim_dir):
        for batch in batch_folders(sweep):
            kept = batch / SET_FILE
            extra = json.loads(kept.read_text()).get("set", []) if kept.is_file() else []
            if extra not in sets:
                sets.append(extra)
            if (batch / FAILED_FILE).is_file() and not (batch / TIMES_FILE).is_file():
                what = (batch / FAILED_FILE).read_text().strip()
                where = batch.relative_to(claim_dir.parent).as_posix()
                failed.append(f"process failed ({what}): `{where}`; `--resume` runs it again")
    return sets, failed


def control_frames(claim: Claim, frames: dict, control: dict) -> dict[str, pd.DataFrame]:
    """The frames the claim's verdict reads for its control: the claim's own, with the
    control's sweeps in place of theirs, or the ``replace`` rows standing in for the others."""
    assert claim.control is not None
    out = dict(frames)
    shift, stand = claim.control.seed_offset, claim.control.stand_in
    for name in claim.control.sweeps:
        if name not in control:
            raise KeyError(f"the control's {name} runs are missing")
        ctrl = control[name].copy()
        if shift and "seed" in ctrl:  # paired with the claim's seed they were shifted from
            ctrl["seed"] = ctrl["seed"].astype(int) - shift
        if stand:  # independently seeded copies stand in for the claim's rows key == value
            key, value = stand["key"], str(stand["value"]).lower()
            mine = frames[name]
            col = mine[key].astype(str).str.lower()
            ctrl[key] = mine[col == value][key].iloc[0] if (col == value).any() else value
            ctrl = pd.concat([mine[col != value], ctrl], ignore_index=True)
        out[name] = ctrl
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
    """The function that judges ``claim``: the one its ``verdict:`` names by dotted path."""
    return named_function(claim.name, claim.verdict)


def judge(claim: Claim, frames: dict) -> Verdict:
    """The claim's verdict function on ``frames``; missing runs make it undecided, never
    confirmed or not confirmed."""
    if not frames:
        return Verdict(UNDECIDED, "no runs")
    try:
        return verdict_fn(claim)(frames, claim.criterion)
    except (KeyError, IndexError, ValueError) as e:
        return Verdict(UNDECIDED, f"undecided: the runs it needs are missing ({e})")


# ---- a control that compares a net with itself ---------------------------------------------------
# top-level keys of a run's resolved config that say where it wrote, not what it trained
WHERE_KEYS = ("paths", "hydra", "task_name", "tags", "logger", "ckpt_path", "optimized_metric")
# frame columns that are not measurements of the net: bookkeeping and wall-clock times
NOT_MEASURED_COLUMNS = {
    "experiment", "job", "seed", "status", "diverged_at_step", "error", "run_dir", "code",
    "fit s", "samples/s", "seconds",
}  # fmt: skip
SELF_COMPARED = "compares a net with itself"


def _config(run_dir: Any, cache: dict) -> dict | None:
    """A run's resolved config (``.hydra/config.yaml``) without the keys that say where it
    wrote; None when the row has no run folder (a lesson.json record, a computed row)."""
    if not isinstance(run_dir, str) or not run_dir:
        return None
    if run_dir not in cache:
        import yaml

        path = open_run(run_dir).config_path
        raw = yaml.safe_load(path.read_text()) if path.is_file() else None
        cache[run_dir] = (
            {k: v for k, v in raw.items() if k not in WHERE_KEYS} if isinstance(raw, dict) else None
        )
    return cache[run_dir]


def _same(a: Any, b: Any) -> bool | None:
    """Whether two cells hold the same number(s); None when either is missing."""
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return None
    if isinstance(b, float) and math.isnan(b):
        return None
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        try:
            x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        except (TypeError, ValueError):
            return a == b
        return x.shape == y.shape and bool(np.allclose(x, y, rtol=1e-9, atol=0, equal_nan=True))
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _fractional(value: Any) -> bool:
    """A measured number that is not a whole count (an accuracy, a loss, a curve)."""
    try:
        values = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return False
    values = values[np.isfinite(values)]
    return bool(len(values)) and bool(np.any(values != np.round(values)))


def same_net(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], cache: dict | None = None) -> str:
    """Why the rows ``a`` and ``b`` (two arms, one row per seed) are one net on the same seeds,
    or "" when they are not (or it cannot be told): on every seed they share, the same run
    folder, or resolved configs that are identical but for where they wrote, or every measured
    number identical (at least one of them fractional: an accuracy or a loss, not a count)."""
    cache = {} if cache is None else cache
    if "seed" not in a or "seed" not in b:
        return ""
    seeds = sorted(set(a["seed"].dropna()) & set(b["seed"].dropna()))
    if not seeds:
        return ""
    pairs = [(a[a["seed"] == s].iloc[0], b[b["seed"] == s].iloc[0]) for s in seeds]
    shown = ", ".join(str(int(s)) for s in seeds)
    if all(ra.get("run_dir") is not None and ra.get("run_dir") == rb.get("run_dir")
           for ra, rb in pairs):  # fmt: skip
        return f"the same runs on seeds {shown}"
    configs = [(_config(ra.get("run_dir"), cache), _config(rb.get("run_dir"), cache))
               for ra, rb in pairs]  # fmt: skip
    if all(ca is not None and ca == cb for ca, cb in configs):
        return f"identical resolved configs on seeds {shown}"
    columns = [c for c in a.columns if c in b.columns and c not in NOT_MEASURED_COLUMNS]
    columns = [c for c in columns if c not in keys]
    compared, fractional = 0, False
    for ra, rb in pairs:
        for c in columns:
            same = _same(ra[c], rb[c])
            if same is None:
                continue
            if not same:
                return ""
            compared += 1
            fractional = fractional or _fractional(ra[c])
    if compared and fractional:
        return f"identical per-seed numbers on seeds {shown} ({compared} values)"
    return ""


def arm_keys(claim: Claim, frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that tell its arms apart: the override keys the claim (or the
    claim whose runs it reads) and its control set, and its ``config_keys``; not the seed."""
    source = claim
    if claim.uses:
        source = next(c for c in load_claims([claim.uses]) if c.name == claim.uses)
    keys = set(claim.config_keys) | set(source.config_keys)
    for c in (claim, source):
        for profile in c.profiles.values():
            for overrides in (profile.get("sweeps") or {}).values():
                keys |= {override_key(o) for o in overrides}
        if c.control is not None:
            for change in c.control.sweeps.values():
                if isinstance(change, list):
                    keys |= {override_key(o) for o in change}
            if c.control.replace:
                keys.add(str(c.control.replace["key"]))
    return [k for k in frame.columns if k in keys and k not in NOT_MEASURED_COLUMNS]


def arms(claim: Claim, frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each arm a verdict can compare: a sweep, or one setting of the keys swept inside it
    (``deep model.params=10000``), named by both."""
    out: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        keys = arm_keys(claim, frame)
        if not keys or frame.empty:
            out[name] = frame
            continue
        for values, rows in frame.groupby([frame[k].astype(str) for k in keys], sort=False):
            values = values if isinstance(values, tuple) else (values,)
            label = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
            out[f"{name} {label}"] = rows
    return out


def _signature(v: Verdict) -> tuple:
    return (v.outcome, v.summary if not v.checks else "",
            tuple((c.requirement, c.measured, c.passed) for c in v.checks))  # fmt: skip


def self_compared(
    claim: Claim,
    frames: Mapping[str, pd.DataFrame],
    judge_frames: Callable[[dict], Verdict] | None = None,
) -> str:
    """Why the verdict on ``frames`` (a control's) compares a net with itself, or "".

    The arms it compares are those it reads: leaving one arm's rows out changes its outcome or
    its checks (or it cannot decide without them). Two of those that are one net on the same
    seeds (``same_net``) refuse the control: its verdict could not have passed by construction.
    ``judge_frames``: the verdict function on frames (default: the claim's own)."""
    judge_frames = judge_frames or (lambda f: verdict_fn(claim)(f, claim.criterion))
    parts = arms(claim, frames)
    cache: dict = {}
    same = []  # first the pairs that are one net (cheap), then whether the verdict reads both
    names = list(parts)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            keys = sorted(set(arm_keys(claim, parts[x])) | set(arm_keys(claim, parts[y])))
            why = same_net(parts[x], parts[y], keys, cache)
            if why:
                same.append((x, y, why))
    if not same:
        return ""
    try:
        whole = _signature(judge_frames(dict(frames)))
    except Exception:  # undecidable as it stands: nothing compared
        return ""
    read: dict[str, bool] = {}

    def reads(name: str) -> bool:
        if name not in read:
            sweep = name.split(" ", 1)[0]
            without = {k: f for k, f in frames.items() if k != sweep}
            rest = frames[sweep].drop(index=parts[name].index)
            if not rest.empty:
                without[sweep] = rest
            try:
                read[name] = _signature(judge_frames(without)) != whole
            except Exception:
                read[name] = True
        return read[name]

    for x, y, why in same:
        if reads(x) and reads(y):
            return f"{SELF_COMPARED}: `{x}` and `{y}` are one net ({why})"
    return ""


def combine(claim: Claim, own: Verdict, control: Verdict | None, seeds: list[int]) -> Verdict:
    """The claim's outcome: its own verdict, unless its control passed (or was not measured, or
    compares a net with itself) or it ran on its pilot seeds: then a confirmation is
    inconclusive."""
    if own.outcome != CONFIRMED or claim.figure_only:
        return own
    why = ""
    if control is None or control.outcome in (UNDECIDED, NOT_MEASURED):
        why = "its negative control was not measured"
    elif control.summary.startswith(SELF_COMPARED):
        why = f"its negative control {control.summary}"
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
    commits: list[str] = []
    sets: list[list[str]] = []
    failed: list[str] = []
    if record is not None:
        frames = {k: pd.DataFrame(v) for k, v in (record.get("frames") or {}).items()}
        control = {k: pd.DataFrame(v) for k, v in (record.get("control_frames") or {}).items()}
        seconds = record.get("seconds")
        commits = list(record.get("commits") or [])  # the commits the runs behind it ran on
        sets = [list(s) for s in record.get("sets") or []]
        failed = list(record.get("failed_processes") or [])
    elif root is not None and (root / source).is_dir():
        frames, control, runs, seconds, commits = claim_frames(claim, root / source)
        sets, failed = processes_of(root / source)
        if claim.uses:  # the measurements of this claim only, on the other claim's runs
            seconds = None
    else:
        return ClaimResult(claim, Verdict(UNDECIDED, "not run"))
    own = judge(claim, frames)
    ctrl = None
    if claim.control is not None:
        try:
            judged = control_frames(claim, frames, control)
            ctrl = judge(claim, judged)
            if ctrl.outcome in (CONFIRMED, NOT_CONFIRMED):
                why = self_compared(claim, judged)
                if why:  # refused: it could not have passed, whatever the verdict function
                    ctrl = Verdict(INCONCLUSIVE, f"{why}; as judged: {ctrl.outcome}",
                                   ctrl.checks, ctrl.table, ctrl.figure)  # fmt: skip
        except (KeyError, IndexError, ValueError) as e:
            ctrl = Verdict(UNDECIDED, f"the control's runs are missing ({e})")
    seeds, control_seeds = _seeds_of(frames), _seeds_of(control)  # the control's own seeds
    outcomes: dict[str, int] = {}
    bad = []
    for r in runs:
        outcomes[r.status] = outcomes.get(r.status, 0) + 1
        if not r.ok:
            where = " ".join(f"{k}={v}" for k, v in r.overrides.items())
            what = f"diverged at step {r.diverged_at_step}" if r.diverged else r.status
            bad.append(f"{what}: `{r.path.parent.name}/{r.path.name}` ({where}) {r.error[:160]}")
    together = sum(bool(r.metrics.get("seeds_together")) for r in runs)
    if record is not None:
        outcomes, bad = record.get("outcomes") or {}, record.get("bad_runs") or []
        together = int(record.get("runs_trained_together") or 0)
    verdict = combine(claim, own, ctrl, sorted({*seeds, *control_seeds}))
    why = undecided_because(claim, sets, failed)
    if why and verdict.outcome != NOT_MEASURED:
        verdict = Verdict(UNDECIDED, f"undecided: {why}", own.checks, own.table, own.figure)
    return ClaimResult(
        claim, verdict, root / source if root else None, outcomes, bad, seconds,
        control=ctrl, seeds=seeds, control_seeds=control_seeds, frames=frames,
        control_frames=control, commits=commits, sets=sets, failed=failed, together=together,
    )  # fmt: skip


def _seeds_of(frames: Mapping[str, pd.DataFrame]) -> list[int]:
    """Every seed of the rows in ``frames`` (a control on shifted seeds: its own seeds)."""
    return sorted({int(s) for f in frames.values() if "seed" in f for s in f["seed"].dropna()})


def undecided_because(claim: Claim, sets: list[list[str]], failed: list[str]) -> str:
    """Why the claim cannot be decided from its processes, whatever its numbers ("" if it can):
    its processes ran with different ``--set`` lists, a ``--set`` collapses a key its verdict
    compares, or a process of it failed."""
    if len(sets) > 1:
        shown = "; ".join(" ".join(s) or "none" for s in sets)
        return f"its processes ran with different --set ({shown})"
    source = None
    if claim.uses:
        source = next(c for c in load_claims([claim.uses]) if c.name == claim.uses)
    why = collapsed_by(claim, sets[0], source) if sets else ""
    if why:
        return why
    if failed:
        return f"{len(failed)} of its processes failed; `--resume` runs them again"
    return ""


def code_text(code: Mapping[str, Any]) -> str:
    """``2ecea3a449 (clean)`` / ``(dirty)``: the commit a run ran on and whether the checkout
    differed from it ("" when not recorded)."""
    if not code.get("commit"):
        return ""
    dirty = code.get("dirty")
    return code["commit"][:10] + ("" if dirty is None else " (dirty)" if dirty else " (clean)")


def _commit_of(run: Any) -> str:
    return code_text(run.metrics.get("code") or {})
