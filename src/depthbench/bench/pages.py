"""The three result pages, each rendered from its JSON record alone: ``bench.md`` (one section per
CPU benchmark), ``bench_data.md`` (the data-path benchmark) and ``gpu.md`` (the GPU check).

Every table goes through ``report.tables.markdown_table``; every section names the machine, the
versions, the date and the command of its record. ``tests/test_bench_pages.py`` checks that each
committed page is its committed record rendered.
The wording of every committed result page sits side by side here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from depthbench.report.tables import markdown_table

BENCH_HEADER = """# depthbench benchmarks

Produced by `make bench` (`python -m depthbench.bench`; one section: `python -m depthbench.bench
SECTION`). Every figure below is a median over the stated number of runs, and every ratio is
taken between runs made in the same invocation, alternating, never across machines or days. Each
section names its machine, versions, date and command. Other work on the machine slows absolute
times and makes them noisy; ratios of alternating runs and CPU-time ratios are the numbers to read.
"""

GPU_POINTER = (
    "## GPU\n\nThe GPU figures (throughput, overhead on a GPU, time to accuracy, peak memory) "
    "are the GPU check's: `make gpu-check`, reported in [gpu.md](gpu.md).\n\n"
)
BENCH_FOOTER = (
    GPU_POINTER
    + """## Where a training step's time goes

`python -m depthbench.bench profile` profiles `run.train` (a 20-layer MLP, width 128,
Fashion-MNIST, 300 steps, one thread) into [profile.txt](profile.txt): Lightning's
`SimpleProfiler` times every hook of every callback and of the module (its first line sums what
the callbacks cost per step), and pyinstrument samples the call tree. What the training step
keeps off its hot path, and why:

- **No `self.log` per step.** Each call moves Lightning's result store to the value's device
  (`_ResultMetric.to` -> `apply_to_collection`, with deep copies). The loss and the count of
  correct predictions are summed on the device each step (no host sync); `train/loss_step` is
  logged every `log_every_n_steps` steps, `train/loss_epoch` and `train/acc` once per epoch.
- **No metric call per training batch.** `MulticlassAccuracy.__call__` computes a per-batch value
  nobody reads and re-validates the labels; two on-device counters replace it. Validation and
  test call `metric.update` only.
- The rest is the net's forward, backward and optimizer step, and Lightning's own loop (its
  automatic-optimization closure, hook dispatch over every callback, `nn.Module.__setattr__`
  bookkeeping). The divergence guard reads the loss as one float per step on a CPU (on a GPU it
  keeps it on the device and reads it every logging interval); the checkpoint callbacks do
  nothing between saves.

Data-path benchmark: see [bench_data.md](bench_data.md).
"""
)

GPU_COMMAND = (
    "make gpu-check  # = python -m depthbench.bench gpu (writes docs/results/gpu.{md,json})"
)
GPU_NO_RECORD = f"""# GPU check

**No GPU figures: `gpu.json` holds no check's record.** Every figure this page holds once it
does (fast_dev_run of every model on a GPU, ResNet images/s, framework overhead on a GPU, the
`cpu_vs_gpu` GPU column, time to 94% on Fashion-MNIST, peak GPU memory) comes from one command,
run on a machine with a CUDA GPU (offline, at most 8 minutes):

```bash
{GPU_COMMAND}
```

`python -m depthbench.bench gpu --device cpu --out /tmp/gpu-dry-run` runs the same code at tiny
sizes on a CPU (the test suite does this in `tests/test_gpu_check.py`).
"""


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a markdown table (``report.tables.markdown_table``) of formatted cells."""
    return markdown_table(pd.DataFrame(list(rows), columns=list(columns))).splitlines()


def _num(v: Any, fmt: str = "{:,.1f}") -> str:
    """A number in ``fmt``, or ``-`` when it was not measured."""
    return "-" if v is None else fmt.format(v)


def _ratio(r: dict[str, Any], digits: int = 2) -> str:
    """``**median** (low-high)`` of a paired ratio and its range over the repeats."""
    lo, hi = r["ratio_range"]
    return f"**{r['ratio']:.3f}** ({lo:.{digits}f}-{hi:.{digits}f})"


# ---- bench.md -----------------------------------------------------------------------------
def _machine(m: dict[str, Any]) -> str:
    load, note = m.get("load_average_1min"), m.get("note")
    return (
        f"*{m.get('cpu', '?')}, {m.get('cpu_count', '?')} cores, GPU: {m.get('gpu') or 'none'}; "
        f"torch {m.get('torch', '?')}, lightning {m.get('lightning', '?')}, "
        f"Python {m.get('python', '?')}; {m.get('date_utc', '?')} UTC; "
        + (f"1-minute load average {load}; " if load is not None else "")
        + (f"{note}; " if note else "")
        + f"`{m.get('command', '?')}`*"
    )


def _overhead(s: dict[str, Any], device: str) -> tuple[str, str, list[str]]:
    text = (
        f"Per training step, {s['repeats']} alternating framework/raw pairs per model, "
        f"{s['steps']} steps each (first {s['warmup_steps']} untimed), batch {s['batch_size']}, "
        f"{s['threads']} thread(s). Framework = `depthbench.core.run.train` with the default "
        "callbacks (atomic checkpointing, NaN guard, exact-resume state, LR monitor, progress "
        "bar) and CSV logger; raw = a hand-written loop (same net, init, optimizer, scheduler, "
        "data in memory). Ratio = framework / raw, paired per repeat, median (range)."
    )
    columns = ["model", "framework ms/step (median step)", "raw ms/step", "ratio: median step",
               "ratio: 10th pct step", "ratio: CPU time", "ratio: mean over window"]  # fmt: skip
    rows = [[f"{name} (`{' '.join(r['overrides'][1:])}`)", f"{r['median_ms']['framework']:.2f}",
             f"{r['median_ms']['raw']:.2f}",
             *(_ratio(r[k]) for k in ("median_ms", "p10_ms", "cpu_ms", "mean_ms"))]
            for name, r in s["models"].items()]  # fmt: skip
    title = f"Framework overhead ({device}): `train.py` path vs a raw PyTorch loop"
    return title, text, table(columns, rows)


def _time_to_acc(s: dict[str, Any]) -> tuple[str, str, list[str]]:
    text = (
        f"Median of {s['repeats']} run(s) each, threads: {s.get('threads', 'default')}. Wall "
        "seconds from spawning the process to its exit (imports, data loading, training, test, "
        "outputs)."
    )
    rows = []
    for r in s["results"].values():
        runs = r["runs"]
        ok = "yes" if r["all_reached"] else "**no**"
        if runs[0].get("wall_budget"):  # the recipe's whole-process budget
            ok += f"; all <= {runs[0]['wall_budget']:.0f} s: "
            ok += "yes" if r["all_within_budget"] else "**no**"
        accs = ", ".join(f"{x['test_acc']:.4f}" for x in runs)
        rows.append([f"`{r['command']}`", f"{r['target']:.0%}",
                     f"**{r['wall_seconds_median']:.1f}**", f"{accs} ({ok})", runs[0]["epochs"],
                     f"{runs[0]['fit_seconds']:.1f}"])  # fmt: skip
    columns = ["run", "target test acc", "wall s", "test acc reached", "epochs",
               "fit s (training only)"]  # fmt: skip
    title = "Time to accuracy: Fashion-MNIST on the CPU (whole process, start to end)"
    return title, text, table(columns, rows)


def _flops(s: dict[str, Any]) -> tuple[str, str, list[str]]:
    t = s["train"]
    text = (
        f"DeepMLP depth {t['depth']}, width {t['width']}, batch {t['batch']}, SGD, "
        f"{s['threads']} thread(s); FLOPs = 6 x batch x Linear weights per step; median of "
        f"{t['steps']} steps. Peak: best {s['matmul_n']}x{s['matmul_n']} fp32 `torch.mm`."
    )
    row = [f"{s['train_gflops']:.1f}", f"{s['matmul_peak_gflops']:.1f}",
           f"**{s['fraction_of_peak']:.0%}**"]  # fmt: skip
    title = "Hardware efficiency: training FLOP/s of a wide MLP vs the measured matmul peak"
    return (
        title,
        text,
        table(["training GFLOP/s", "matmul peak GFLOP/s", "fraction of peak"], [row]),
    )


def _startup(s: dict[str, Any]) -> tuple[str, str, list[str]]:
    text = (
        f"Each command a fresh process, {s['repeats']} in turn; wall time of the whole process, "
        "median (range), and the median CPU time (user + system) each process used. `predict` "
        "reads a checkpoint copied to a new path before each run."
    )
    rows = [[f"`{r['command']}`", f"**{r['median_s']:.2f}**",
             f"{r['range_s'][0]:.2f}-{r['range_s'][1]:.2f}", _num(r.get("cpu_median_s"), "{:.2f}")]
            for r in s["commands"].values()]  # fmt: skip
    columns = ["command", "median s", "range s", "CPU s (median)"]
    return "Start-up: the small commands", text, table(columns, rows)


def _seeds_together(s: dict[str, Any]) -> tuple[str, str, list[str]]:
    text = (
        f"`python train.py -m seed=0,...,n-1 ...`, {s['steps']} training steps per seed, "
        f"{s['threads']} thread(s), one process per cell: the seeds apart (Hydra's basic "
        "launcher, one after the other) or together (`hydra/launcher=seeds_together`, one "
        "stacked model). Whole process, wall and CPU (user + system) seconds; one run per cell."
    )
    rows = [[f"{name} (`{m['command'].removeprefix('python train.py -m ')}`)", r["seeds"],
             f"{r['apart_s']:.1f} / {r['apart_cpu_s']:.1f}",
             f"{_num(r['together_s'])} / {_num(r['together_cpu_s'])}",
             _num(r.get("together_over_apart_cpu_s"), "{:.2f}"),
             _num(r.get("together_over_one_cpu_s"), "**{:.2f}**")]
            for name, m in s["models"].items() for r in m["rows"]]  # fmt: skip
    columns = ["model", "seeds", "apart: wall / CPU s", "together: wall / CPU s",
               "together / apart (CPU)", "together / one seed alone (CPU)"]  # fmt: skip
    return "Seeds together: a sweep over seeds as one stacked model", text, table(columns, rows)


# bench.json section -> its renderer, in page order
BENCH_SECTIONS: dict[str, Callable[[dict[str, Any]], tuple[str, str, list[str]]]] = {
    "startup": _startup,
    "overhead_cpu": lambda s: _overhead(s, "CPU"),
    "overhead_cuda": lambda s: _overhead(s, "GPU"),
    "time_to_acc": _time_to_acc,
    "flops": _flops,
    "seeds_together": _seeds_together,
}


def render_bench(data: dict[str, Any]) -> str:
    """``bench.md``: every section present in ``data`` (bench.json) under the page's header."""
    lines = [BENCH_HEADER]
    for name, render in BENCH_SECTIONS.items():
        if name in data:
            title, text, body = render(data[name])
            lines += [f"## {title}", "", _machine(data[name].get("machine", {})), ""]
            lines += [text, "", *body, ""] if text else [*body, ""]
    return "\n".join([*lines, BENCH_FOOTER])


# ---- bench_data.md ------------------------------------------------------------------------
def render_data(record: dict[str, Any]) -> str:
    """``bench_data.md``: one table per model and the epoch-without-model table."""
    info = record["machine"]
    lines = [
        "# Data path benchmark (Fashion-MNIST)",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['cpu']} ({info['cpu_count']} cores), GPU: {info['gpu'] or 'none'}; "
        f"torch {info['torch']}, Python {info['python']}; {info['date_utc']} UTC; 1-minute load "
        f"average {info['load_average_1min'][0]} at the start, {info['load_average_1min'][1]} "
        "at the end.  ",
        f"{record['train_examples']:,} training examples, batch {record['batch_size']}, "
        f"{record['threads']} torch thread(s) in the training process; {record['steps']} timed "
        f"steps after {record['warmup_steps']} warm-up steps; medians of {record['repeats']} "
        "alternating repeats (range in brackets). Wait/epoch = time blocked on the next batch, "
        "scaled to one epoch.",
        "",
    ]
    for model, r in record["models"].items():
        raw = r["paths"]["raw"]["samples_per_second"]
        rows = []
        for name, p in r["paths"].items():
            lo, hi = p["samples_per_second_range"]
            mark = " (best workers)" if name == r["best_torchvision"] else ""
            speed = f"{p['samples_per_second']:,.0f} [{lo:,.0f}-{hi:,.0f}]"
            rows.append([f"{name}{mark}", speed, f"{p['samples_per_second'] / raw:.3f}",
                         f"{p['wait_seconds_per_epoch']:.2f}",
                         f"{100 * p['wait_share']:.1f}%"])  # fmt: skip
        wait_lo, wait_hi = (100 * v for v in r["memory_added_wait_vs_raw_range"])
        slow_lo, slow_hi = (100 * v for v in r["memory_overhead_vs_raw_range"])
        lines += [
            f"## {model} (`{' '.join(r['overrides'])}`)",
            "",
            *table(["data path", "samples/s", "vs raw", "wait/epoch (s)", "wait share"], rows),
            "",
            "Memory path against the raw loop (goal: adds < 3%): waiting for batches adds "
            f"{100 * r['memory_added_wait_vs_raw']:+.2f}% [{wait_lo:+.2f}, {wait_hi:+.2f}] of the "
            f"raw loop's time; end-to-end slowdown {100 * r['memory_overhead_vs_raw']:+.1f}% "
            f"[{slow_lo:+.1f}, {slow_hi:+.1f}] (paired medians; the end-to-end figure carries the "
            "noise of other work on the machine). Memory path vs the best torchvision DataLoader "
            f"({r['best_torchvision']}): {r.get('memory_speedup_vs_torchvision', 0):.2f}x the "
            "samples/s.",
            "",
        ]
    every = record["epoch_without_model_all"]
    lines += [
        "## One epoch of batches without a model",
        "",
        f"Timed over {record['loader_batches']} batches after 5 warm-up batches, scaled to the "
        f"{-(-record['train_examples'] // record['batch_size'])} batches of an epoch.",
        "",
        *table(["data path", "seconds (median)", "all runs"],
               [[name, f"{s:.2f}", ", ".join(f"{v:.2f}" for v in every[name])]
                for name, s in record["epoch_without_model_seconds"].items()]),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


# ---- gpu.md -------------------------------------------------------------------------------
def _runs(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The per-run entries of a GPU-check section (its other keys are the status and timings)."""
    return [(name, r) for name, r in s.items() if isinstance(r, dict)]


def _gpu_fast_dev_run(s: dict[str, Any]) -> list[str]:
    rows = [[name, r["status"], _num(r.get("wall_seconds")), _num(r.get("peak_gpu_mib"), "{:,.0f}")]
            for name, r in s.get("runs", {}).items()]  # fmt: skip
    return table(["model", "status", "wall s", "peak GPU MiB"], rows)


def _gpu_hot_path(s: dict[str, Any]) -> list[str]:
    rows = [[r["step"], r["syncs"], r["copies"], "yes" if r["logging_step"] else ""]
            for r in s.get("steps", [])]  # fmt: skip
    head = (f"Between logging steps: **{s.get('syncs_between_logging_steps')} syncs, "
            f"{s.get('copies_between_logging_steps')} copies**.")  # fmt: skip
    return [head, "", *table(["step", "host syncs", "CPU-to-device copies", "logging step"], rows)]


def _gpu_throughput(s: dict[str, Any]) -> list[str]:
    rows = [[r["arch"], r["image_size"], r["batch"], f"{r['step_ms']:.2f}",
             f"**{r['images_per_second']:,.0f}**", _num(r["peak_gpu_mib"], "{:,.0f}")]
            if r.get("status") == "ok" else [name, "", "", r.get("status"), "", ""]
            for name, r in _runs(s)]  # fmt: skip
    return table(["net", "image", "batch", "ms/step (median)", "images/s", "peak GPU MiB"], rows)


def _gpu_overhead(s: dict[str, Any]) -> list[str]:
    rows = [[name, f"{r['framework_ms']:.3f}", f"{r['raw_ms']:.3f}", _ratio(r, 3),
             f"{r['data_path_ms']:.3f}", f"{r['data_path_share']:.1%}",
             _num(r["peak_gpu_mib"], "{:,.0f}")]
            if r.get("status") == "ok" else [name, r.get("status"), "", "", "", "", ""]
            for name, r in _runs(s)]  # fmt: skip
    return table(["net", "framework ms/step", "hand loop ms/step", "ratio (range)",
                  "data path ms/batch", "data share of step", "peak GPU MiB"], rows)  # fmt: skip


def _gpu_cpu_vs_gpu(s: dict[str, Any]) -> list[str]:
    rows = [[name, r.get("status"), _num(r.get("train_samples_per_second")),
             _num(r.get("wall_seconds")), _num(r.get("peak_gpu_mib"), "{:,.0f}")]
            for name, r in _runs(s)]  # fmt: skip
    return table(["run", "status", "samples/s", "wall s", "peak GPU MiB"], rows)


def _gpu_fmnist(s: dict[str, Any]) -> list[str]:
    curve = ", ".join(f"{p['epoch']}: {p['test_acc']:.4f} @ {p['seconds']:.0f} s"
                      for p in s.get("curve", []))  # fmt: skip
    reached = s.get("seconds_to_target")
    head = (f"**{reached:.1f} s** of training to 94%" if reached is not None
            else "**94% not reached** within the cap")  # fmt: skip
    return [f"{head}; final test acc {_num(s.get('test_acc'), '{:.4f}')}, {s.get('epochs')} "
            f"epochs, wall {_num(s.get('wall_seconds'))} s, peak GPU "
            f"{_num(s.get('peak_gpu_mib'), '{:,.0f}')} MiB. Test accuracy per epoch: "
            f"{curve or '-'}.", "", f"Recipe: `{' '.join(s.get('recipe', []))}`"]  # fmt: skip


# GPU-check section -> (its heading, its renderer), in the check's order
GPU_SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "fast_dev_run": ("fast_dev_run of every registered model (bf16-mixed, channels-last, "
                     "GPU-resident data)", _gpu_fast_dev_run),
    "hot_path": ("Host syncs and CPU-to-device copies per training step (augmented CNN, EMA)",
                 _gpu_hot_path),
    "throughput": ("Training throughput, bf16 + channels-last, synthetic data on the device "
                   "(one run each)", _gpu_throughput),
    "overhead": ("Framework over a hand-written loop, both on GPU-resident data", _gpu_overhead),
    "cpu_vs_gpu": ("`experiment=cpu_vs_gpu`: the accelerator column of this device",
                   _gpu_cpu_vs_gpu),
    "fmnist_94": ("Time to 94% test accuracy on Fashion-MNIST, CIFAR ResNet-20 (one run)",
                  _gpu_fmnist),
}  # fmt: skip


def render_gpu(record: dict[str, Any]) -> str:
    """``gpu.md`` for a check's record; the page naming the command for an empty one."""
    env = record.get("environment")
    if not env or not record.get("sections"):
        return GPU_NO_RECORD
    lines = ["# GPU check", ""]
    if env["device"] != "cuda":
        lines += ["**Dry run on a CPU at tiny sizes: these are not GPU figures.**", ""]
    lines += [
        f"*{env.get('gpu') or 'no GPU'}, driver {env.get('driver') or '-'}; torch "
        f"{env['torch']}, CUDA {env.get('cuda') or '-'}, cuDNN {env.get('cudnn') or '-'}, "
        f"lightning {env['lightning']}, Python {env['python']}; {env['date_utc']} UTC; "
        f"`{env['command']}`; whole check {record.get('total_seconds')} s.*",
        "",
        f"`{record.get('budget', '')}`",
        "",
    ]
    for name, s in record["sections"].items():
        title, render = GPU_SECTIONS[name]
        lines += [
            f"## {title}",
            "",
            f"*{s['status']}, {s['seconds']} s (cap {s['cap_seconds']} s)*",
            "",
        ]
        if s["status"] == "ok":
            lines += [*render(s), ""]
    return "\n".join(lines) + "\n"


# page (the stem of its .json and .md) -> its renderer
PAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "bench": render_bench,
    "bench_data": render_data,
    "gpu": render_gpu,
}
