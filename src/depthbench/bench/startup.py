"""Start-up: how long the small commands take, each as a fresh process (``make bench``).

A config typo, a bad value, ``train.py --help`` and ``depthbench predict`` on one PNG with a
checkpoint copied to a new path before each run (a file the process has not read), each started
``--repeats`` times in turn; the median and range of the wall time of the whole process, and
the median CPU time it used (user + system: what the wall time is on an idle machine, give or
take the disk, when other work shares the cores).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from depthbench import core
from depthbench.bench.harness import median, save_section, spread, time_process, train_run

# name -> what the user types (after `python`); {run}, {ckpt} and {png} are filled in per run
COMMANDS = {
    "typo": ["train.py", "trainer.max_epoch=1"],
    "bad value": ["train.py", "model.depth=0", "hydra.run.dir={run}"],
    "--help": ["train.py", "--help"],
    "predict one PNG": ["-m", "depthbench.cli", "predict", "{ckpt}", "{png}"],
}
EXIT = {"typo": 2, "bad value": 2, "--help": 0, "predict one PNG": 0}


def _inputs(workdir: Path) -> tuple[Path, Path]:
    """A one-epoch digits checkpoint and an 8x8 PNG for ``predict``."""
    import numpy as np
    from PIL import Image

    metrics = train_run(["trainer.max_epochs=1", "logger=none"], workdir)
    png = workdir / "digit.png"
    Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype("uint8")).save(png)
    return core.open_run(metrics["output_dir"]).last_checkpoint, png


def run(repeats: int, workdir: Path) -> dict[str, Any]:
    """Wall seconds of each command, ``repeats`` fresh processes each, in turn."""
    ckpt, png = _inputs(workdir)
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for i in range(repeats):
        for name, args in COMMANDS.items():
            unseen = workdir / f"unseen-{i}.ckpt"
            shutil.copyfile(ckpt, unseen)
            filled = [a.format(run=workdir / f"bad-{i}", ckpt=unseen, png=png) for a in args]
            wall, used = time_process(filled, expect=EXIT[name])
            seconds[name].append(wall)
            cpu[name].append(used)
    rows = {}
    for name, s in seconds.items():
        command = "python " + " ".join(COMMANDS[name])
        rows[name] = {"command": command, "median_s": round(median(s), 2),
                      "range_s": [round(v, 2) for v in spread(s)],
                      "cpu_median_s": round(median(cpu[name]), 2)}  # fmt: skip
    return {"repeats": repeats, "commands": rows}


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench startup [--repeats 5]``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench startup", description=__doc__)
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per command")
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="depthbench-startup-") as tmp:
        result = run(a.repeats, Path(tmp))
    for name, row in result["commands"].items():
        print(f"startup: {name:<16} {row['median_s']:.2f} s median ({row['range_s'][0]:.2f}-"
              f"{row['range_s'][1]:.2f} s, {a.repeats} processes), CPU "
              f"{row['cpu_median_s']:.2f} s")  # fmt: skip
    if not a.no_save:
        save_section("startup", result, " ".join([p.prog, *argv]))
    return result
