"""The two result pages, each rendered from its JSON record alone: ``bench.md`` (a section per
CPU benchmark in ``bench.json``) and ``gpu.md`` (the GPU check's ``gpu.json``). Every section
names the machine, versions, date and command of its record; ``tests/test_bench_pages.py``
checks that each committed page is its committed record rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from depthbench.report.tables import markdown_table

Section = tuple[str, str, list[str]]  # (heading, text, table lines)

BENCH_HEADER = """# depthbench benchmarks

Produced by `make bench` (`python -m depthbench.bench`; one section: `python -m depthbench.bench
SECTION`). Every figure is a median over the stated number of runs; every ratio is taken between
alternating runs of one invocation, never across machines or days. Other work on the machine
(see each section's load average) slows absolute times: read them against the matmul peak.
"""

BENCH_FOOTER = """## GPU, and where a training step's time goes

The GPU figures (fast_dev_run of every model, host syncs per step, images/s, peak memory) are the
GPU check's: `make gpu-check`, reported in [gpu.md](gpu.md). Lightning's profiler times every
hook of every callback and of the module in any run: `python train.py +trainer.profiler=simple`.
"""

GPU_COMMAND = (
    "make gpu-check  # = python -m depthbench.bench gpu (writes docs/results/gpu.{md,json})"
)
GPU_NO_RECORD = f"""# GPU check

**No GPU figures: `gpu.json` holds no check's record.** The figures this page holds once it does
(fast_dev_run of every model, host syncs per training step, ResNet images/s, peak GPU memory)
come from one command on a machine with a CUDA GPU, offline:

```bash
{GPU_COMMAND}
```

`python -m depthbench.bench gpu --device cpu --out /tmp/gpu-dry-run` runs the same code at tiny
sizes on a CPU (as `tests/test_gpu_check.py` does).
"""


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a markdown table (``report.tables.markdown_table``) of formatted cells."""
    return markdown_table(pd.DataFrame(list(rows), columns=list(columns))).splitlines()


def _num(v: Any, fmt: str = "{:,.1f}") -> str:
    """A number in ``fmt``, or ``-`` when it was not measured."""
    return "-" if v is None else fmt.format(v)


# ---- bench.md -----------------------------------------------------------------------------
def _machine(m: dict[str, Any]) -> str:
    return (f"*{m.get('cpu')}, {m.get('cpu_count')} cores, GPU: {m.get('gpu') or 'none'}; torch "
            f"{m.get('torch')}, lightning {m.get('lightning')}, Python {m.get('python')}; "
            f"{m.get('date_utc')} UTC; 1-minute load average {m.get('load_average_1min')}; "
            f"`{m.get('command')}`*")  # fmt: skip


def _matmul_peak(s: dict[str, Any]) -> Section:
    text = (
        f"The best of {s['repeats']} timings of one {s['n']}x{s['n']} fp32 `torch.mm`, "
        f"{s['threads']} thread(s), 2n^3 FLOPs: **{s['best_gflops']:.1f} GFLOP/s** (median "
        f"{s['median_gflops']:.1f})."
    )
    return "The machine's reference: fp32 matmul peak", text, []


def _startup(s: dict[str, Any]) -> Section:
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


def _overhead(s: dict[str, Any]) -> Section:
    text = (
        f"Per training step, {s['repeats']} alternating pairs per model, {s['steps']} steps each "
        f"(first {s['warmup_steps']} untimed), {s['threads']} thread(s). Framework = "
        "`depthbench.core.train` with the default callbacks and CSV logger, validation and test "
        "off; hand-written = the same network, optimizer, scheduler and batch size in a "
        "plain loop over the training split normalised once. One timer times both: a step runs "
        "from the end of the step before to its own end, and its wait is the part before it "
        "starts (the next batch; in the framework also the loop's work between steps). "
        "ms: median step of a run, median over the runs; ratio = framework / hand-written per "
        "pair, median (range)."
    )
    rows = []
    for name, r in s["models"].items():
        lo, hi = r["ratio_range"]
        rows.append([f"{name} (`{' '.join(r['overrides'])}`)", r["batch_size"],
                     f"{r['framework_step_ms']:.2f}", f"{r['hand_step_ms']:.2f}",
                     f"**{r['ratio']:.3f}** ({lo:.2f}-{hi:.2f})",
                     f"{r['framework_wait_ms']:.3f}", f"{r['hand_wait_ms']:.3f}"])  # fmt: skip
    columns = ["model", "batch", "framework ms/step", "hand-written ms/step", "ratio (range)",
               "framework wait ms/step", "hand-written wait ms/step"]  # fmt: skip
    return "Framework overhead: `core.train` vs a hand-written loop", text, table(columns, rows)


def _time_to_acc(s: dict[str, Any]) -> Section:
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


def _seeds_together(s: dict[str, Any]) -> Section:
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
BENCH_SECTIONS: dict[str, Callable[[dict[str, Any]], Section]] = {
    "matmul_peak": _matmul_peak,
    "startup": _startup,
    "overhead": _overhead,
    "time_to_acc": _time_to_acc,
    "seeds_together": _seeds_together,
}


def render_bench(data: dict[str, Any]) -> str:
    """``bench.md``: every section present in ``data`` (bench.json) under the page's header."""
    lines = [BENCH_HEADER]
    for name, render in BENCH_SECTIONS.items():
        if name in data:
            title, text, body = render(data[name])
            lines += [f"## {title}", "", _machine(data[name].get("machine", {})), "", text, ""]
            lines += [*body, ""] if body else []
    return "\n".join([*lines, BENCH_FOOTER])


# ---- gpu.md -------------------------------------------------------------------------------
def _gpu_fast_dev_run(s: dict[str, Any]) -> list[str]:
    rows = [[name, r["status"], _num(r.get("wall_seconds"))] for name, r in s["runs"].items()]
    return table(["model", "status", "wall s"], rows)


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
            for name, r in s.items() if isinstance(r, dict)]  # fmt: skip
    return table(["net", "image", "batch", "ms/step (mean)", "images/s", "peak GPU MiB"], rows)


# GPU-check section -> (its heading, its renderer), in the check's order
GPU_SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "fast_dev_run": ("fast_dev_run of every registered model (bf16-mixed, channels-last, "
                     "GPU-resident data)", _gpu_fast_dev_run),
    "hot_path": ("Host syncs and CPU-to-device copies per training step (augmented CNN, EMA)",
                 _gpu_hot_path),
    "throughput": ("Training throughput, bf16 + channels-last, a hand-written loop on a batch "
                   "already on the device (one run each)", _gpu_throughput),
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
    ]
    for name, s in record["sections"].items():
        title, render = GPU_SECTIONS[name]
        lines += [f"## {title}", "", f"*{s['status']}, {s['seconds']} s*", ""]
        if s["status"] == "ok":
            lines += [*render(s), ""]
    return "\n".join(lines) + "\n"


# page (the stem of its .json and .md) -> its renderer
PAGES: dict[str, Callable[[dict[str, Any]], str]] = {"bench": render_bench, "gpu": render_gpu}
