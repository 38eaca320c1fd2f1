"""Write report.md, results.csv and the figures for a set of runs, one section per experiment."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from depthbench.atomic import atomic_write, write_text_atomic
from depthbench.report import curves, figures
from depthbench.report.collect import Run, setting_value
from depthbench.report.tables import (
    METRICS,
    SEED_KEY,
    fixed_overrides,
    markdown_table,
    pivot,
    runs_frame,
    seed_summary,
    seeds_per_setting,
    setting_keys,
    swept_keys,
    typed,
    x_key,
)

# per-run pictures drawn by the diagnostics callbacks, copied next to the report
RUN_IMAGES = ("attention.png", "filters.png", "feature_maps.png", "gradflow.png", "activations.png")
MAX_RUN_IMAGES = 4  # runs whose pictures are copied, per experiment and picture kind


def outcome_counts(runs: list[Run]) -> str:
    """``"4 runs, 2 ok, 2 failed."``, with ``"1 interrupted, "`` and ``"1 diverged, "`` before
    "failed" when there are any: each outcome counted apart."""
    interrupted = sum(r.interrupted for r in runs)
    diverged = sum(r.diverged for r in runs)
    failed = sum(not r.ok and not r.diverged and not r.interrupted for r in runs)
    middle = f"{interrupted} interrupted, " if interrupted else ""
    middle += f"{diverged} diverged, " if diverged else ""
    ok = len(runs) - interrupted - diverged - failed
    return f"{len(runs)} runs, {ok} ok, {middle}{failed} failed."


def _seed_text(seed: object) -> str:
    """``3`` and ``3.0`` (an int column with a gap) both read ``3``."""
    if isinstance(seed, (int, float)) and not isinstance(seed, bool) and float(seed).is_integer():
        return str(int(seed))
    return str(seed)


def _seeds_line(frame: pd.DataFrame, settings: list[str]) -> tuple[str, str]:
    """A sentence on the number of seeds per setting, and the caption the tables carry."""
    fewest, most = seeds_per_setting(frame, settings)
    seeds = ", ".join(dict.fromkeys(_seed_text(s) for s in frame[SEED_KEY] if pd.notna(s)))
    seeds = f" (`seed` = {seeds})" if seeds else ""
    if most <= 1:
        return (
            f"One run per setting{seeds}: n = 1, so no spread across seeds is measured.",
            "one run per cell, n = 1",
        )
    n = f"{most}" if fewest == most else f"{fewest}-{most}"
    return (
        f"{n} runs per setting{seeds}: cells are mean ± sample std over the ok runs (n).",
        f"mean ± std over seeds, n = {n} runs",
    )


def _outcome_line(run: Run, keys: list[str]) -> str:
    what = "interrupted" if run.status == "interrupted" else "failed"
    if run.diverged:
        step = run.diverged_at_step
        what = "diverged" if step is None else f"diverged at step {step}"
    return f"- **{what}**: `{run.path.name}` {label_of(run, keys)}: {run.error or run.status}"


def _section(exp: str, runs: list[Run], out_dir: Path, prefix: str) -> tuple[str, pd.DataFrame]:
    keys = swept_keys(runs)
    settings = setting_keys(keys)  # the seed is a sweep axis but never a row or column
    xk = x_key(settings)
    frame = runs_frame(runs, keys)
    not_ok = [r for r in runs if not r.ok]
    lines = [f"## {exp}", ""]
    lines.append(outcome_counts(runs))
    if keys:
        swept = "; ".join(
            f"`{k}` = {', '.join(dict.fromkeys(str(setting_value(r, k)) for r in runs))}"
            for k in keys
        )
        lines.append(f"Swept: {swept}.")
    fixed = fixed_overrides(runs)
    if fixed:
        lines.append("Fixed overrides: " + ", ".join(f"`{k}={v}`" for k, v in fixed.items()) + ".")
    seeds_sentence, caption = _seeds_line(frame, settings)
    lines += [seeds_sentence, ""]
    if len(not_ok) > 5:
        lines += ["<details><summary>diverged and failed runs</summary>", ""]
    lines += [_outcome_line(r, keys) for r in not_ok]
    if not_ok:
        lines += ["", "</details>", ""] if len(not_ok) > 5 else [""]

    # the pivots: swept values as rows/columns, one metric per table, seeds aggregated per cell
    shown = ["test acc", "train acc", "train loss"]
    if "grad first/last (init)" in frame:
        shown.append("grad first/last (init)")
    if any("accelerator" in k for k in keys) or frame["test acc"].isna().all():
        shown.append("samples/s")  # a speed sweep: throughput is the measurement
    shown = [m for m in shown if m in frame and frame[m].notna().any()]
    if xk and len(runs) > 1:
        for metric in shown:
            rows = ", ".join(k for k in settings if k != xk) or "all"
            table = markdown_table(pivot(frame, settings, xk, metric), index=True)
            lines += [f"**{metric}** (rows: {rows}; columns: `{xk}`; {caption})", "", table, ""]
    elif len(runs) > 1 and shown:  # seeds only: one row, a column per metric
        table = markdown_table(seed_summary(frame, settings, shown))
        lines += [f"**{', '.join(shown)}** ({caption})", "", table, ""]

    # every run, every metric
    columns = ["job", *keys, "status", "diverged_at_step", *METRICS.values()]
    if SEED_KEY not in keys:
        columns.insert(1 + len(keys), SEED_KEY)
    columns += [c for c in frame.columns if c.startswith("grad ")]
    table = frame[[c for c in columns if c in frame and (frame[c].notna().any() or c in keys)]]
    results = [c for c in ("train acc", "test acc", "train loss", "test loss") if c in table]
    table = table.astype(object).where(table.notna(), None)  # missing: a blank cell
    table.loc[table.status != "ok", results] = None  # a diverged run's numbers are no result
    lines += [
        "<details><summary>all runs</summary>",
        "",
        markdown_table(table),
        "",
        "</details>",
        "",
    ]

    pictures = _figures(runs, frame, settings, xk, out_dir, prefix)
    for title, name in pictures:
        lines += [f"**{title}**", "", f"![{title}]({name})", ""]
    return "\n".join(lines), frame


def label_of(run: Run, keys: list[str]) -> str:
    return ", ".join(f"{k}={setting_value(run, k)}" for k in keys)


def _figures(
    runs: list[Run], frame: pd.DataFrame, keys: list[str], xk: str | None, out: Path, prefix: str
) -> list[tuple[str, str]]:
    """Draw what this sweep calls for; return (title, file name) pairs."""
    made: list[tuple[str, str]] = []

    def add(title: str, name: str, path: Path | None) -> None:
        if path is not None:
            made.append((title, name))

    if xk:
        name = f"{prefix}metrics_vs_{figures.short(xk)}.png"
        add(f"error and loss against {figures.short(xk)}",
            name, figures.metrics_vs_x(frame, keys, xk, out / name))  # fmt: skip
        name = f"{prefix}grad_ratio_vs_{figures.short(xk)}.png"
        add("first/last-layer gradient ratio",
            name, figures.grad_ratio_vs_depth(frame, keys, xk, out / name))  # fmt: skip
    name = f"{prefix}gradflow_init.png"
    add("gradient norm per layer at initialisation",
        name, figures.gradflow_at_init(runs, keys, xk, out / name))  # fmt: skip
    name = f"{prefix}training_curves.png"
    add("training loss", name, curves.training_curves(runs, keys, xk, out / name))
    for image in RUN_IMAGES:
        with_image = [r for r in runs if r.file(image)]
        if image in ("gradflow.png", "activations.png") and len(runs) > MAX_RUN_IMAGES:
            continue  # big sweeps: the faceted figures above say it better
        for run in with_image[:MAX_RUN_IMAGES]:
            name = f"{prefix}{run.path.name}_{image}"
            shutil.copyfile(run.file(image), out / name)
            add(
                f"{image.removesuffix('.png')}: {label_of(run, keys) or run.path.name}",
                name,
                out / name,
            )
    return made


def write_report(
    runs: list[Run], out_dir: Path, sources: list[Path] | None = None, note: str = ""
) -> Path:
    """Write ``report.md``, ``results.csv`` and the figures of ``runs`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    refused = [r for r in runs if r.refused]  # bad input, nothing trained: no result to show
    runs = [r for r in runs if not r.refused]
    by_exp: dict[str, list[Run]] = {}
    for run in runs:
        by_exp.setdefault(run.experiment, []).append(run)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    src = " ".join(str(p) for p in sources or [])
    parts = [
        "# depthbench report",
        "",
        f"`depthbench report {src}` on {when}: {outcome_counts(runs)} Runs that differ only "
        "by `seed` are one setting: a cell is the mean ± sample standard deviation over its "
        "runs that finished ok, with n their number (n=1: a single run, no spread). Diverged "
        "and failed runs are counted beside it, never averaged in; in figures, diverged runs "
        "are red crosses at the top of the axis.",
        "",
    ]
    if refused:
        folders = ", ".join(f"`{r.path.name}`" for r in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        parts += [
            f"{len(refused)} refused command{'s' if len(refused) > 1 else ''} (bad input, "
            f"nothing trained) left out: {folders}{more}.",
            "",
        ]
    if note:
        parts += [note, ""]
    frames = []
    for exp, exp_runs in by_exp.items():
        prefix = "" if len(by_exp) == 1 else f"{exp}_"
        text, frame = _section(exp, exp_runs, out_dir, prefix)
        parts.append(text)
        frames.append(frame)
    report = out_dir / "report.md"
    write_text_atomic(report, "\n".join(parts).rstrip() + "\n")
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with atomic_write(out_dir / "results.csv", newline="") as f:
        results.to_csv(f, index=False)
    return report


__all__ = ["typed", "write_report"]
