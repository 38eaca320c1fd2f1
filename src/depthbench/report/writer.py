"""Write report.md, results.csv and the figures for a set of runs, one section per experiment."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from depthbench.report import figures
from depthbench.report.collect import Run
from depthbench.report.tables import (
    METRICS,
    fixed_overrides,
    markdown_table,
    pivot,
    runs_frame,
    swept_keys,
    typed,
    x_key,
)

# per-run pictures drawn by the diagnostics callbacks, copied next to the report
RUN_IMAGES = ("attention.png", "filters.png", "feature_maps.png", "gradflow.png", "activations.png")
MAX_RUN_IMAGES = 4  # runs whose pictures are copied, per experiment and picture kind


def _section(exp: str, runs: list[Run], out_dir: Path, prefix: str) -> tuple[str, pd.DataFrame]:
    keys = swept_keys(runs)
    xk = x_key(keys)
    frame = runs_frame(runs, keys)
    failed = [r for r in runs if not r.ok]
    lines = [f"## {exp}", ""]
    lines.append(f"{len(runs)} runs, {len(runs) - len(failed)} ok, {len(failed)} failed.")
    if keys:
        swept = "; ".join(
            f"`{k}` = {', '.join(dict.fromkeys(str(r.overrides.get(k)) for r in runs))}"
            for k in keys
        )
        lines.append(f"Swept: {swept}.")
    fixed = fixed_overrides(runs)
    if fixed:
        lines.append("Fixed overrides: " + ", ".join(f"`{k}={v}`" for k, v in fixed.items()) + ".")
    lines.append("")
    if len(failed) > 5:
        lines += ["<details><summary>failed runs</summary>", ""]
    for r in failed:
        lines.append(f"- **failed**: `{r.path.name}` {label_of(r, keys)}: {r.error or r.status}")
    if failed:
        lines += ["", "</details>", ""] if len(failed) > 5 else [""]

    # the pivots: swept values as rows/columns, one metric per table
    if xk and len(runs) > 1:
        shown = ["test acc", "train acc", "train loss"]
        if "grad first/last (init)" in frame:
            shown.append("grad first/last (init)")
        if any("accelerator" in k for k in keys) or frame["test acc"].isna().all():
            shown.append("samples/s")  # a speed sweep: throughput is the measurement
        for metric in shown:
            if metric in frame and frame[metric].notna().any():
                rows = ", ".join(k for k in keys if k != xk) or "all"
                table = markdown_table(pivot(frame, keys, xk, metric), index=True)
                lines += [f"**{metric}** (rows: {rows}; columns: `{xk}`)", "", table, ""]

    # every run, every metric
    columns = ["job", *keys, "status", *METRICS.values()]
    columns += [c for c in frame.columns if c.startswith("grad ")]
    table = frame[[c for c in columns if c in frame and (frame[c].notna().any() or c in keys)]]
    lines += [
        "<details><summary>all runs</summary>",
        "",
        markdown_table(table),
        "",
        "</details>",
        "",
    ]

    pictures = _figures(runs, frame, keys, xk, out_dir, prefix)
    for title, name in pictures:
        lines += [f"**{title}**", "", f"![{title}]({name})", ""]
    return "\n".join(lines), frame


def label_of(run: Run, keys: list[str]) -> str:
    return ", ".join(f"{k}={run.overrides.get(k)}" for k in keys)


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
    add("training loss", name, figures.training_curves(runs, keys, xk, out / name))
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
    by_exp: dict[str, list[Run]] = {}
    for run in runs:
        by_exp.setdefault(run.experiment, []).append(run)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    src = " ".join(str(p) for p in sources or [])
    parts = [
        "# depthbench report",
        "",
        f"`depthbench report {src}` on {when}: {len(runs)} runs, "
        f"{sum(not r.ok for r in runs)} failed; every number is one run (one seed).",
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
    report.write_text("\n".join(parts).rstrip() + "\n")
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    results.to_csv(out_dir / "results.csv", index=False)
    return report


__all__ = ["typed", "write_report"]
