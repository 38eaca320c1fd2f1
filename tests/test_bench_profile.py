"""``python -m depthbench.bench profile``: every hook's cost (Lightning's SimpleProfiler) and the
call tree (pyinstrument) of one short training run, in one text file."""

from __future__ import annotations

import re
from pathlib import Path

from depthbench.bench import profile

REPORT = """\
|  Action  |  Mean duration (s)  |  Num calls  |  Total time (s)  |  Percentage %  |
|  run_training_batch  |  0.008  |  10  |  0.08  |  90  |
|  [Callback]DivergenceGuard.on_train_batch_end  |  0.0001  |  10  |  0.001  |  1  |
|  [Callback]EpochLog.on_train_batch_end  |  0.0002  |  10  |  0.002  |  2  |
|  [Callback]LastCheckpoint.on_train_epoch_end  |  0.015  |  1  |  0.015  |  15  |
"""


def test_callback_cost_separates_every_step_hooks_from_once_a_fit_hooks() -> None:
    line = profile.callback_cost(REPORT, steps=10)
    assert line == (
        "Callback hooks that run every step: 0.300 ms per step; the other callback hooks: "
        "15.0 ms in all; a training batch (run_training_batch): 8.000 ms; 10 steps."
    )


def test_profile_writes_the_hook_table_and_the_call_tree(tmp_path: Path) -> None:
    out = tmp_path / "profile.txt"
    profile.main(["--steps", "6", "--out", str(out), "model.depth=2", "data.train_size=1024"])
    text = out.read_text()
    per_step = re.search(r"run every step: ([0-9.]+) ms per step", text)
    assert per_step and float(per_step.group(1)) > 0
    assert "[Callback]DivergenceGuard.on_train_batch_end" in text  # an always-on callback
    assert "## The call tree (pyinstrument)" in text and "train" in text.split("call tree")[1]
