"""The depth-vs-width report: test accuracy against parameters, one line per depth.

    python -m depthbench.report.depth_vs_width outputs/multiruns/depth_vs_width/<time> \\
        --out docs/results/depth_vs_width [--target fashion_mnist=0.85]

Reads the runs of ``experiment=depth_vs_width`` (any folders ``depthbench report`` reads) and
writes ``report.md`` (accuracy per budget x depth, with the solved widths, and the smallest
budget at which each depth reaches a target accuracy), ``results.csv`` and
``depth_vs_width.png``. The default target of a data set is what the *shallowest* network
reaches with the *largest* budget: the table then reads "how many parameters does each depth
need to match the widest shallow network".
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from depthbench.report.collect import Run, collect_runs, config_value
from depthbench.report.tables import markdown_table

# where a sweep names the data set: the experiment's own group, or the plain data group
DATA_KEYS = ("experiment/depth_vs_width_data", "data")
# the input shape of one example per data set, to recover the solved width from the budget
INPUT_SHAPES = {"fashion_mnist": [1, 28, 28], "mnist": [1, 28, 28], "mnist1d": [1, 40]}


def solved_width(run: Run) -> int | None:
    """The width ``model.params`` gave this run's MLP (recomputed exactly; None if unknown)."""
    from depthbench.models.budget import solve_width
    from depthbench.models.deep import DeepMLP

    model = run.config.get("model", {})
    shape = INPUT_SHAPES.get(data_name(run))
    if shape is None or model.get("params") is None or "DeepMLP" not in str(model.get("_target_")):
        return None
    keys = ("depth", "activation", "residual", "batchnorm", "init", "dropout", "residual_scale")
    kwargs = {k: model[k] for k in keys if k in model}
    return solve_width(DeepMLP, int(model["params"]), input_shape=shape, num_classes=10, **kwargs)


def data_name(run: Run) -> str:
    """The run's data set, also for a run that failed before writing its metrics."""
    for value in (run.metrics.get("data"), *(run.overrides.get(k) for k in DATA_KEYS)):
        if value:
            return str(value)
    return str(config_value(run, "data._target_")).rsplit(".", 1)[-1]


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: data, depth, budget, exact params, width, test accuracy, status."""
    rows = []
    for run in runs:
        rows.append(
            {
                "data": data_name(run),
                "depth": int(config_value(run, "model.depth")),
                "budget": int(config_value(run, "model.params")),
                "params": run.metrics.get("params"),
                "width": solved_width(run) if run.ok else None,
                "test_acc": run.metric("test/acc") if run.ok else math.nan,
                "train_acc": run.metric("train/acc") if run.ok else math.nan,
                "fit_seconds": run.metrics.get("fit_seconds"),
                "seed": run.config.get("seed"),
                "status": run.status,
                "path": str(run.path),
            }
        )
    return pd.DataFrame(rows).sort_values(["data", "depth", "budget", "seed"], ignore_index=True)


def smallest_budget(frame: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per depth: the smallest budget (mean over seeds) whose test accuracy reaches ``target``."""
    mean = frame.groupby(["depth", "budget"], as_index=False)[["test_acc", "params"]].mean()
    rows = []
    for depth, group in mean.groupby("depth"):
        hit = group[group.test_acc >= target].sort_values("budget")
        rows.append(
            {
                "depth": depth,
                "smallest budget": int(hit.budget.iloc[0]) if len(hit) else "not reached",
                "its params": int(hit.params.iloc[0]) if len(hit) else "",
                "its test acc": float(hit.test_acc.iloc[0]) if len(hit) else math.nan,
                "best test acc": float(group.test_acc.max()),
            }
        )
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path) -> Path:
    """Test accuracy against exact parameter count (log x), one line per depth, per data set."""
    from depthbench.diagnostics.common import pyplot

    plt = pyplot()
    datasets = sorted(frame.data.unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.8), squeeze=False)
    depths = sorted(frame.depth.unique())
    colors = plt.get_cmap("viridis")([i / max(1, len(depths) - 1) for i in range(len(depths))])
    for ax, data in zip(axes[0], datasets):
        ok = frame[(frame.data == data) & (frame.status == "ok")]
        for color, depth in zip(colors, depths):
            cells = ok[ok.depth == depth].groupby("budget")
            line, spread = cells[["params", "test_acc"]].mean(), cells.test_acc.std().fillna(0.0)
            if len(line):  # the mean over seeds, with their standard deviation where several
                ax.errorbar(
                    line.params,
                    line.test_acc,
                    yerr=spread,
                    fmt="o-",
                    color=color,
                    capsize=2,
                    label=f"depth {depth}",
                )
        ax.set_xscale("log")
        ax.set_xlabel("parameters (exact count)")
        ax.set_ylabel("test accuracy")
        ax.set_title(data)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("residual + batch-norm MLPs at equal parameter budgets", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(runs: list[Run], out: Path, targets: dict[str, float]) -> Path:
    """Write report.md, results.csv and depth_vs_width.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    frame = runs_table(runs)
    frame.drop(columns=["path"]).to_csv(out / "results.csv", index=False)
    plot(frame, out / "depth_vs_width.png")
    failed = frame[frame.status != "ok"]
    lines = ["# Depth vs width at equal parameter budgets", ""]
    lines.append(f"{len(frame)} runs, {len(frame) - len(failed)} ok, {len(failed)} failed.")
    for _, r in failed.iterrows():
        lines.append(f"- **failed**: `{r.path}` depth {r.depth}, budget {r.budget}: {r.status}")
    lines += ["", "![test accuracy against parameters](depth_vs_width.png)", ""]
    for data in sorted(frame.data.unique()):
        sub = frame[frame.data == data]
        ok = sub[sub.status == "ok"]
        acc = ok.pivot_table(index="budget", columns="depth", values="test_acc", aggfunc="mean")
        width = ok.pivot_table(index="budget", columns="depth", values="width", aggfunc="first")
        lines += [f"## {data}", "", "Test accuracy (rows: parameter budget; columns: depth):", ""]
        lines += [markdown_table(acc.rename(columns=lambda d: f"depth {d}"), index=True), ""]
        seeds = ok.groupby(["depth", "budget"]).size()
        if seeds.max() > 1:
            std = ok.pivot_table(index="budget", columns="depth", values="test_acc", aggfunc="std")
            n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
            table = std.round(4).rename(columns=lambda d: f"depth {d}")
            lines += [f"Mean over {n} seeds per cell; their standard deviation:", ""]
            lines += [markdown_table(table, index=True), ""]
        train = ok.pivot_table(index="budget", columns="depth", values="train_acc", aggfunc="mean")
        lines += ["Training accuracy (last epoch, running mean over its batches):", ""]
        lines += [markdown_table(train.rename(columns=lambda d: f"depth {d}"), index=True), ""]
        if width.notna().any().any():
            lines += ["Solved width (units per hidden layer):", ""]
            table = width.astype("Int64").rename(columns=lambda d: f"depth {d}")
            lines += [markdown_table(table, index=True), ""]
        shallow = ok[ok.depth == ok.depth.min()]
        default = shallow[shallow.budget == shallow.budget.max()].test_acc.mean()
        target = targets.get(data, default)
        source = (
            f"the depth-{ok.depth.min()} network's at the largest budget, {shallow.budget.max():,}"
        )
        source = "given" if data in targets else source
        lines += [f"Smallest budget reaching test accuracy {target:.4f} ({source}):", ""]
        lines += [markdown_table(smallest_budget(ok, target)), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m depthbench.report.depth_vs_width PATH [PATH ...] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m depthbench.report.depth_vs_width", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run / multirun folders")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: PATH)")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="DATA=ACC",
        help="target test accuracy of a data set, e.g. mnist1d=0.6",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        targets = {k: float(v) for k, v in (t.split("=", 1) for t in args.target)}
        runs = collect_runs(args.paths)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e} (targets look like mnist1d=0.6)", file=sys.stderr)
        sys.exit(2)
    runs = [r for r in runs if config_value(r, "model.params") is not None]
    if not runs:
        print(f"error: no runs with model.params under {args.paths}", file=sys.stderr)
        sys.exit(2)
    report = write_report(runs, args.out or args.paths[0], targets)
    print(f"{report}: {len(runs)} runs")


if __name__ == "__main__":
    main()
