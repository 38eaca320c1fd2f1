"""Render ``docs/results/bench.json`` as ``bench.md``: one table per benchmark, with provenance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from depthbench.report.tables import markdown_table

HEADER = """# depthbench benchmarks

Produced by `make bench` (`python -m depthbench.bench`; one section: `python -m depthbench.bench
SECTION`). Every figure below is a median over the stated number of runs, and every ratio is
taken between runs made in the same invocation, alternating, never across machines or days. Each
section names its machine, versions, date and command. Other work on the machine slows absolute
times and makes them noisy; ratios of alternating runs and CPU-time ratios are the numbers to read.
"""


PROFILE = """## Where a training step's time goes

`python -m depthbench.bench profile` writes pyinstrument's profile of `run.train` (a 20-layer MLP,
width 128, Fashion-MNIST, 300 steps, one thread) to [profile.txt](profile.txt). What the training
step keeps off its hot path, and why:

- **No `self.log` per step.** Each call moves Lightning's result store to the value's device
  (`_ResultMetric.to` -> `apply_to_collection`, with deep copies). The loss and the count of
  correct predictions are summed on the device each step (no host sync); `train/loss_step` is
  logged every `log_every_n_steps` steps, `train/loss_epoch` and `train/acc` once per epoch.
- **No metric call per training batch.** `MulticlassAccuracy.__call__` computes a per-batch value
  nobody reads and re-validates the labels; two on-device counters replace it. Validation and
  test call `metric.update` only.
- The rest is the net's forward, backward and optimizer step, and Lightning's own loop (its
  automatic-optimization closure, hook dispatch over every callback, `nn.Module.__setattr__`
  bookkeeping). The NaN guard reads one scalar per step; the atomic checkpoint callback does
  nothing between saves.
"""


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a markdown table (``report.tables.markdown_table``) of formatted cells."""
    return markdown_table(pd.DataFrame(list(rows), columns=list(columns))).splitlines()


def _machine(section: dict[str, Any]) -> str:
    m = section.get("machine", {})
    load = m.get("load_average_1min")
    return (
        f"*{m.get('cpu', '?')}, {m.get('cpu_count', '?')} cores, GPU: {m.get('gpu') or 'none'}; "
        f"torch {m.get('torch', '?')}, lightning {m.get('lightning', '?')}, "
        f"Python {m.get('python', '?')}; {m.get('date_utc', '?')} UTC; "
        + (f"1-minute load average {load}; " if load is not None else "")
        + (f"{m['note']}; " if m.get("note") else "")
        + f"`{m.get('command', '?')}`*"
    )


def _overhead(s: dict[str, Any], device: str) -> list[str]:
    out = [
        f"## Framework overhead ({device}): `train.py` path vs a raw PyTorch loop",
        "",
        _machine(s),
        "",
        f"Per training step, {s['repeats']} alternating framework/raw pairs per model, "
        f"{s['steps']} steps each (first {s['warmup_steps']} untimed), batch {s['batch_size']}, "
        f"{s['threads']} thread(s). Framework = `depthbench.run.train` with the default "
        "callbacks (atomic checkpointing, NaN guard, exact-resume state, LR monitor, progress "
        "bar) and CSV logger; raw = a hand-written loop (same net, init, optimizer, scheduler, "
        "data in memory). Ratio = framework / raw, paired per repeat, median (range).",
        "",
    ]

    def ratio(r: dict[str, Any], k: str) -> str:
        lo, hi = r[k]["ratio_range"]
        return f"**{r[k]['ratio']:.3f}** ({lo:.2f}-{hi:.2f})"

    columns = ["model", "framework ms/step (median step)", "raw ms/step", "ratio: median step",
               "ratio: 10th pct step", "ratio: CPU time", "ratio: mean over window"]  # fmt: skip
    rows = [[f"{name} (`{' '.join(r['overrides'][1:])}`)", f"{r['median_ms']['framework']:.2f}",
             f"{r['median_ms']['raw']:.2f}", ratio(r, "median_ms"), ratio(r, "p10_ms"),
             ratio(r, "cpu_ms"), ratio(r, "mean_ms")]
            for name, r in s["models"].items()]  # fmt: skip
    return [*out, *table(columns, rows), ""]


def _time_to_acc(s: dict[str, Any]) -> list[str]:
    out = [
        "## Time to accuracy: Fashion-MNIST on the CPU (whole process, start to end)",
        "",
        _machine(s),
        "",
        f"Median of {s['repeats']} run(s) each, threads: {s.get('threads', 'default')}. Wall "
        "seconds from spawning the process to its exit (imports, data loading, training, test, "
        "outputs).",
        "",
    ]
    rows = []
    for r in s["results"].values():
        runs = r["runs"]
        accs = ", ".join(f"{x['test_acc']:.4f}" for x in runs)
        ok = "yes" if r["all_reached"] else "**no**"
        budget = runs[0].get("wall_budget")
        if budget:  # the recipe's whole-process budget
            ok += f"; all <= {budget:.0f} s: " + ("yes" if r["all_within_budget"] else "**no**")
        wall = f"**{r['wall_seconds_median']:.1f}**"
        rows.append([f"`{r['command']}`", f"{r['target']:.0%}", wall, f"{accs} ({ok})",
                     runs[0]["epochs"], f"{runs[0]['fit_seconds']:.1f}"])  # fmt: skip
    columns = ["run", "target test acc", "wall s", "test acc reached", "epochs",
               "fit s (training only)"]  # fmt: skip
    return [*out, *table(columns, rows), ""]


def _flops(s: dict[str, Any]) -> list[str]:
    t = s["train"]
    return [
        "## Hardware efficiency: training FLOP/s of a wide MLP vs the measured matmul peak",
        "",
        _machine(s),
        "",
        f"DeepMLP depth {t['depth']}, width {t['width']}, batch {t['batch']}, SGD, "
        f"{s['threads']} thread(s); FLOPs = 6 x batch x Linear weights per step; median of "
        f"{t['steps']} steps. Peak: best {s['matmul_n']}x{s['matmul_n']} fp32 `torch.mm`.",
        "",
        *table(
            ["training GFLOP/s", "matmul peak GFLOP/s", "fraction of peak"],
            [
                [
                    f"{s['train_gflops']:.1f}",
                    f"{s['matmul_peak_gflops']:.1f}",
                    f"**{s['fraction_of_peak']:.0%}**",
                ]
            ],
        ),
        "",
    ]


def _scaling(s: dict[str, Any]) -> list[str]:
    out = ["## Scaling: seconds per epoch against depth and training-set size", "", _machine(s)]
    for key, col in (("depth_sweep", "depth"), ("size_sweep", "train_size")):
        sw = s[key]
        f = sw["fit"]
        extra = f", {sw['train_size']} training images" if "train_size" in sw else ""
        out += [
            "",
            f"**{col}** ({sw['model']}{extra}; median of {s['repeats']} runs, epochs "
            f"2..{s['epochs_per_run']} of each; validation off): least-squares line seconds = "
            f"{f['intercept_s']:.3f} + "
            f"{f['slope_s']:.3g} x {col}, R^2 = **{f['r2']:.4f}**, log-log slope "
            f"{f['loglog_slope']:.2f}.",
            "",
            *table([col, "s/epoch", "ms per unit"],
                   [[p[col], f"{p['epoch_seconds']:.3f}",
                     f"{p['epoch_seconds'] / p[col] * 1e3:.3f}"] for p in sw["points"]]),
        ]  # fmt: skip
    return [*out, ""]


def _gpu() -> list[str]:
    return [
        "## GPU",
        "",
        "The GPU figures (throughput, overhead on a GPU, time to accuracy, peak memory) are the "
        "GPU check's: `make gpu-check`, reported in [gpu.md](gpu.md).",
        "",
    ]


def _load(s: dict[str, Any]) -> list[str]:
    rss, fds, early = s["rss_mib"], s["open_fds"], s["early_job"]
    return [
        f"## Load: a {s['jobs']}-job multirun in one process (basic launcher)",
        "",
        _machine(s),
        "",
        f"`python train.py -m seed=range(0,{s['jobs']}) {s['job_overrides']}`: every job in the "
        "same process, with the default callbacks (checkpoints), the CSV logger, Hydra's job "
        "log file and the sweep records. Measured once per job, after it returned (one sweep).",
        "",
        *table(
            ["", f"after job {early}", f"after job {s['jobs']}", "change per job"],
            [
                [
                    "resident memory (MiB)",
                    f"{rss['early']:.1f}",
                    f"{rss['last']:.1f}",
                    f"{s['rss_mib_per_job']:+.2f}",
                ],
                [
                    "open file descriptors",
                    fds["early"],
                    fds["last"],
                    f"{(fds['last'] - fds['early']) / max(1, s['jobs'] - early):+.2f}",
                ],
            ],
        ),
        "",
    ]


def render(data: dict[str, Any]) -> str:
    """Markdown for every section present in ``data``."""
    lines = [HEADER]
    if "overhead_cpu" in data:
        lines += _overhead(data["overhead_cpu"], "CPU")
    if "overhead_cuda" in data:
        lines += _overhead(data["overhead_cuda"], "GPU")
    if "time_to_acc" in data:
        lines += _time_to_acc(data["time_to_acc"])
    if "flops" in data:
        lines += _flops(data["flops"])
    if "scaling" in data:
        lines += _scaling(data["scaling"])
    if "load" in data:
        lines += _load(data["load"])
    lines += _gpu()
    lines.append(PROFILE)
    lines.append("Data-path benchmark: see [bench_data.md](bench_data.md).")
    return "\n".join(lines) + "\n"
