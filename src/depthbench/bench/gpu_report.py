"""Render the GPU check's record (``gpu.json``) as ``gpu.md``."""

from __future__ import annotations

from typing import Any

from depthbench.bench.report import table

COMMAND = "make gpu-check  # = python -m depthbench.bench gpu (writes docs/results/gpu.{md,json})"

NO_RECORD = f"""# GPU check

**No GPU figures: `gpu.json` holds no check's record.** Every figure this page holds once it
does (fast_dev_run of every model on a GPU, ResNet images/s, framework overhead on a GPU, the
`cpu_vs_gpu` GPU column, time to 94% on Fashion-MNIST, peak GPU memory) comes from one command,
run on a machine with a CUDA GPU (offline, at most 8 minutes):

```bash
{COMMAND}
```

`python -m depthbench.bench gpu --device cpu --out /tmp/gpu-dry-run` runs the same code at tiny
sizes on a CPU (the test suite does this in `tests/test_gpu_check.py`).
"""


def _mib(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _num(v: Any, fmt: str = "{:,.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _fast_dev_run(s: dict[str, Any]) -> list[str]:
    rows = [[name, r["status"], _num(r.get("wall_seconds")), _mib(r.get("peak_gpu_mib"))]
            for name, r in s.get("runs", {}).items()]  # fmt: skip
    return table(["model", "status", "wall s", "peak GPU MiB"], rows)


def _hot_path(s: dict[str, Any]) -> list[str]:
    rows = [[r["step"], r["syncs"], r["copies"], "yes" if r["logging_step"] else ""]
            for r in s.get("steps", [])]  # fmt: skip
    head = (f"Between logging steps: **{s.get('syncs_between_logging_steps')} syncs, "
            f"{s.get('copies_between_logging_steps')} copies**.")  # fmt: skip
    return [head, "", *table(["step", "host syncs", "CPU-to-device copies", "logging step"], rows)]


def _results(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The per-run entries of a section (its other keys are the status and timings)."""
    return [(name, r) for name, r in s.items() if isinstance(r, dict)]


def _throughput(s: dict[str, Any]) -> list[str]:
    rows = []
    for name, r in _results(s):
        if r.get("status") != "ok":
            rows.append([name, "", "", r.get("status"), "", ""])
            continue
        rows.append([r["arch"], r["image_size"], r["batch"], f"{r['step_ms']:.2f}",
                     f"**{r['images_per_second']:,.0f}**", _mib(r["peak_gpu_mib"])])  # fmt: skip
    return table(["net", "image", "batch", "ms/step (median)", "images/s", "peak GPU MiB"], rows)


def _overhead(s: dict[str, Any]) -> list[str]:
    rows = []
    for name, r in _results(s):
        if r.get("status") != "ok":
            rows.append([name, r.get("status"), "", "", "", "", ""])
            continue
        lo, hi = r["ratio_range"]
        rows.append([name, f"{r['framework_ms']:.3f}", f"{r['raw_ms']:.3f}",
                     f"**{r['ratio']:.3f}** ({lo:.3f}-{hi:.3f})", f"{r['data_path_ms']:.3f}",
                     f"{r['data_path_share']:.1%}", _mib(r["peak_gpu_mib"])])  # fmt: skip
    return table(["net", "framework ms/step", "hand loop ms/step", "ratio (range)",
                  "data path ms/batch", "data share of step", "peak GPU MiB"], rows)  # fmt: skip


def _cpu_vs_gpu(s: dict[str, Any]) -> list[str]:
    rows = [[name, r.get("status"), _num(r.get("train_samples_per_second")),
             _num(r.get("wall_seconds")), _mib(r.get("peak_gpu_mib"))]
            for name, r in _results(s)]  # fmt: skip
    return table(["run", "status", "samples/s", "wall s", "peak GPU MiB"], rows)


def _fmnist(s: dict[str, Any]) -> list[str]:
    curve = ", ".join(f"{p['epoch']}: {p['test_acc']:.4f} @ {p['seconds']:.0f} s"
                      for p in s.get("curve", []))  # fmt: skip
    reached = s.get("seconds_to_target")
    head = (f"**{reached:.1f} s** of training to 94%" if reached is not None
            else "**94% not reached** within the cap")  # fmt: skip
    return [f"{head}; final test acc {_num(s.get('test_acc'), '{:.4f}')}, {s.get('epochs')} "
            f"epochs, wall {_num(s.get('wall_seconds'))} s, peak GPU "
            f"{_mib(s.get('peak_gpu_mib'))} MiB. Test accuracy per epoch: {curve or '-'}.",
            "", f"Recipe: `{' '.join(s.get('recipe', []))}`"]  # fmt: skip


RENDER = {
    "fast_dev_run": ("fast_dev_run of every registered model (bf16-mixed, channels-last, "
                     "GPU-resident data)", _fast_dev_run),
    "hot_path": ("Host syncs and CPU-to-device copies per training step (augmented CNN, EMA)",
                 _hot_path),
    "throughput": ("Training throughput, bf16 + channels-last, synthetic data on the device "
                   "(one run each)", _throughput),
    "overhead": ("Framework over a hand-written loop, both on GPU-resident data", _overhead),
    "cpu_vs_gpu": ("`experiment=cpu_vs_gpu`: the accelerator column of this device", _cpu_vs_gpu),
    "fmnist_94": ("Time to 94% test accuracy on Fashion-MNIST, CIFAR ResNet-20 (one run)",
                  _fmnist),
}  # fmt: skip


def render(record: dict[str, Any]) -> str:
    """Markdown for a check's record; the page naming the command for an empty one."""
    env = record.get("environment")
    if not env or not record.get("sections"):
        return NO_RECORD
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
        title, fn = RENDER[name]
        timing = f"*{s['status']}, {s['seconds']} s (cap {s['cap_seconds']} s)*"
        lines += [f"## {title}", "", timing, ""]
        if s["status"] == "ok":
            lines += [*fn(s), ""]
    return "\n".join(lines) + "\n"
