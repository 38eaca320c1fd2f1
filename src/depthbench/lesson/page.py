"""Write ``lesson.md`` (and ``lesson.json``, one figure per claim) from the claims' verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from depthbench.atomic import write_text_atomic
from depthbench.lesson.figures import draw
from depthbench.lesson.verdict_types import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    UNDECIDED,
    ClaimResult,
    Verdict,
)
from depthbench.report.tables import markdown_table

BADGE = {
    CONFIRMED: "**confirmed**",
    NOT_CONFIRMED: "**not confirmed**",
    INCONCLUSIVE: "**inconclusive**",
    UNDECIDED: "**undecided**",
}


def _verdict_line(v: Verdict) -> str:
    return BADGE.get(v.outcome, f"**{v.outcome}**")


def write_page(
    results: list[ClaimResult],
    out_dir: Path,
    header: dict[str, Any],
    command: str,
    note: str = "",
) -> Path:
    """Write ``out_dir/lesson.md``, ``lesson.json`` and ``lesson_<claim>.png``; return the page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# The lesson, checked",
        "",
        "Each claim of *Deep Neural Networks — Why Depth Changes Everything* with the criterion "
        "written in `conf/lesson/<claim>.yaml` before the runs, the numbers measured over "
        "several seeds (mean ± sample std, n = ok runs), and a verdict. Diverged and failed runs "
        "are counted apart, never as an accuracy.",
        "",
        "Every claim runs beside its **negative control**: the same experiment with the "
        "claimed cause removed by one named change, judged by the claim's own verdict function. "
        "A claim is confirmed only when its criterion holds and its control's does not; when the "
        "control passes too (or was not measured, or the runs used the claim's pilot seeds) the "
        "claim is *inconclusive*; when the runs its verdict needs are missing it is *undecided*.",
        "",
        f"Made by `{command}` on {header['date']}; profile `{header['profile']}`, seeds "
        f"{_seeds(header['seeds'])}{_seeds_by_claim(results)}{_control_seeds(header)}; "
        f"{header['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in header["versions"].items())
        + f"; wall time {header['wall']}. Code the runs ran on: "
        + (", ".join(f"`{c}`" for c in header.get("commits") or []) or "not recorded")
        + ".",
        "",
    ]
    if "criteria" in header:
        lines += [criteria_line(header["criteria"], header.get("criteria_first")), ""]
    lines += [together_line(results), ""]
    timed = [(r.claim.order, r.claim.name, r.seconds) for r in results if r.seconds]
    if timed:
        lines += [
            "Process time per claim (claim + control, summed over its processes; two run side "
            "by side): " + ", ".join(f"{o}. {n} {s / 60:.1f} min" for o, n, s in timed) + ".",
            "",
        ]
    if note:
        lines += [note, ""]
    lines += [
        "| # | claim | verdict | negative control (one change) | measured |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        link = f"[{r.claim.title}](#{r.claim.order}-{_anchor(r.claim.title)})"
        summary = r.verdict.summary.replace("|", "\\|")
        lines.append(
            f"| {r.claim.order} | {link} | {_verdict_line(r.verdict)} | {_control_cell(r)} "
            f"| {summary} |"
        )
    lines.append("")
    records = []
    for r in results:
        c, v = r.claim, r.verdict
        lines += [f"## {c.order}. {c.title}", "", f"> {c.claim}", ""]
        if c.sources:
            lines += [f"Sources: {c.sources}.", ""]
        text = " ".join(str(c.criterion.get("text", "")).split())
        lines += [f"**Criterion** (`conf/lesson/{c.name}.yaml`): {text}", ""]
        if c.criterion.get("convergence"):
            conv = " ".join(str(c.criterion["convergence"]).split())
            lines += [f"**Convergence** (pilot seeds {_seeds(c.pilot_seeds)}): {conv}", ""]
        lines += [f"**Verdict:** {_verdict_line(v)} — {v.summary}.", ""]
        extra = sorted({o for s in r.sets for o in s})
        if extra:
            whose = "the claim's and its control's" if c.control is not None else "the claim's"
            if c.uses:
                whose = f"the runs of claim `{c.uses}` that it reads, claim and control alike"
            lines += [f"**`--set`:** {', '.join(f'`{o}`' for o in extra)}, applied to every run "
                      f"of {whose}.", ""]  # fmt: skip
        if v.checks:
            lines += ["| requirement | measured | holds |", "|---|---|---|"]
            for ch in v.checks:
                holds = "n/a" if ch.passed is None else ("yes" if ch.passed else "**no**")
                lines.append(f"| {ch.requirement} | {ch.measured} | {holds} |")
            lines.append("")
        if c.control is not None:
            ctrl = r.control
            lines += [
                f"**Negative control:** {c.control.change} → "
                + (f"{_verdict_line(ctrl)} ({ctrl.summary})." if ctrl else "not measured."),
                "",
            ]
            if c.control.could_pass:
                lines += [f"*Why it could have passed:* {c.control.could_pass}.", ""]
            failing = [ch for ch in (ctrl.checks if ctrl else []) if ch.passed is False]
            if failing:
                far = "; ".join(f"{ch.requirement}: {ch.measured}" for ch in failing)
                lines += [f"*How far it was from passing* (the checks it failed): {far}.", ""]
            if ctrl is not None and ctrl.checks:
                lines += ["| control: requirement | measured | holds |", "|---|---|---|"]
                for ch in ctrl.checks:
                    holds = "n/a" if ch.passed is None else ("yes" if ch.passed else "no")
                    lines.append(f"| {ch.requirement} | {ch.measured} | {holds} |")
                lines.append("")
        if v.table is not None and not v.table.empty:
            lines += [markdown_table(v.table), ""]
        if v.figure is not None and v.figure.series:
            name = f"lesson_{c.name}.png"
            ctrl = r.control.figure if r.control is not None else None
            draw(v.figure, out_dir / name, c.title, ctrl, c.control.change if c.control else "")
            lines += [f"![{c.title}]({name})", ""]
        if r.outcomes:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(r.outcomes.items()))
            when = f" in {r.seconds:.0f} s" if r.seconds is not None else ""
            every = ""
            if r.report is not None:
                every = f" [every run]({r.report.relative_to(out_dir).as_posix()});"
            where = (
                f"folders under `{r.runs_dir}`"
                if r.runs_dir is not None
                else "their numbers read from a lesson.json"
            )
            lines += [f"Runs: {sum(r.outcomes.values())} ({counts}){when};{every} {where}.", ""]
        for bad in [*r.failed, *r.bad_runs]:
            lines.append(f"- {bad}")
        if r.bad_runs or r.failed:
            lines.append("")
        records.append(
            {
                "claim": c.name,
                "title": c.title,
                "verdict": v.outcome,
                "summary": v.summary,
                "checks": [ch.__dict__ for ch in v.checks],
                "control": None
                if r.control is None
                else {
                    "change": c.control.change if c.control else "",
                    "verdict": r.control.outcome,
                    "summary": r.control.summary,
                    "checks": [ch.__dict__ for ch in r.control.checks],
                },
                "seeds": r.seeds,
                "control_seeds": r.control_seeds,
                "outcomes": r.outcomes,
                "bad_runs": r.bad_runs,
                "seconds": r.seconds,
                "commits": r.commits,
                "sets": r.sets,  # the --set lists its processes ran with
                "failed_processes": r.failed,
                "runs_trained_together": r.together,
                # every run's deciding numbers: `depthbench lesson --from lesson.json` decides
                # and draws again from these, without the run folders
                "frames": {k: _records(f) for k, f in r.frames.items()},
                "control_frames": {k: _records(f) for k, f in r.control_frames.items()},
            }
        )
    page = out_dir / "lesson.md"
    write_text_atomic(page, "\n".join(lines).rstrip() + "\n")
    write_text_atomic(
        out_dir / "lesson.json",
        json.dumps({**header, "command": command, "claims": records}, indent=2, default=str) + "\n",
    )
    return page


def criteria_line(criteria: dict[str, Any], first: bool | None) -> str:
    """The header's line on the criteria: the commit that last changed ``conf/lesson/``, whether
    it was dirty, and whether it is an ancestor of every commit the runs ran on."""
    if not criteria.get("commit"):
        return "Criteria (`conf/lesson/`): commit not recorded (no git checkout)."
    state = "with uncommitted changes" if criteria.get("dirty") else "clean"
    when = f" of {criteria['date'][:16].replace('T', ' ')}" if criteria.get("date") else ""
    order = {
        True: "it is an ancestor of every commit the runs ran on: the criteria came first",
        False: "it is **not** an ancestor of every commit the runs ran on: the criteria changed "
        "after the runs",
        None: "whether it precedes the runs' commits could not be told",
    }[first]
    if criteria.get("dirty"):
        order = "criteria not committed cannot be shown to have come before the runs"
    return (
        f"Criteria (`conf/lesson/`) as of commit `{criteria['commit'][:10]}`{when}, {state}; "
        f"{order}."
    )


def _control_seeds(header: dict[str, Any]) -> str:
    """``, controls on seeds 150-152`` where controls ran on seeds of their own."""
    own = [s for s in header.get("control_seeds") or [] if s not in header["seeds"]]
    return f", controls on seeds {_seeds(sorted(header.get('control_seeds') or []))}" if own else ""


def together_line(results: list[ClaimResult]) -> str:
    """Which claims' runs trained with their seeds as one stacked model (``hydra/launcher=
    seeds_together``) and which ran apart (``docs/performance.md`` says where it applies)."""
    trained = [r for r in results if r.outcomes]  # a claim with runs of its own
    together = [f"{r.claim.order} ({r.together} of {sum(r.outcomes.values())} runs)"
                for r in trained if r.together]  # fmt: skip
    apart = [str(r.claim.order) for r in trained if not r.together]
    return (
        "Seeds trained together (one stacked model per setting): claims "
        + (", ".join(together) or "none")
        + "; every seed apart: claims "
        + (", ".join(apart) or "none")
        + " (convolutions on a CPU, callbacks that must see one net, the fine-tuner; "
        "docs/performance.md). Computed claims train nothing."
    )


def _seeds_by_claim(results: list[ClaimResult]) -> str:
    """`` (claim 6: 200, 201)`` for each claim whose verdict used other seeds than the rest."""
    used = [r for r in results if r.seeds]
    if len({tuple(r.seeds) for r in used}) <= 1:
        return ""
    common = max({tuple(r.seeds) for r in used}, key=lambda s: sum(tuple(r.seeds) == s
                                                                 for r in used))  # fmt: skip
    odd = [f"claim {r.claim.order}: {_seeds(r.seeds)}" for r in used if tuple(r.seeds) != common]
    return f" ({'; '.join(odd)})"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows a verdict reads, JSON-ready (no run-folder paths, NaN as null)."""
    keep = frame.drop(columns=[c for c in ("run_dir", "error") if c in frame])
    rows = keep.astype(object).where(keep.notna(), None).to_dict(orient="records")
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _seeds(seeds: list[int]) -> str:
    if not seeds:
        return "none"
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _control_cell(r: ClaimResult) -> str:
    if r.claim.control is None:
        return "—"
    out = r.control.outcome if r.control is not None else "not measured"
    return f"{r.claim.control.change}: {out}".replace("|", "\\|")


def _anchor(title: str) -> str:
    """GitHub's heading anchor of the words after "N. "."""
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")
