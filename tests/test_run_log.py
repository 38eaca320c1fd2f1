"""A run's log is for reading later: one plain line per epoch, none of Lightning's noise, no
progress bar when stdout is not a terminal; training throughput leaves validation out."""

from __future__ import annotations

import time

import lightning as L
import pytest
from helpers import FAST, compose_config, run_train

from depthbench.core import train

NOISE = (
    "GPU available",
    "TPU available",
    "Tip:",
    "litlogger",
    "litmodels",
    "LeafSpec",
    "log_every_n_steps",
    "estimate number of stepping batches",
    "it/s]",
)


@pytest.mark.process
def test_piped_run_logs_one_line_per_epoch_and_no_noise(tmp_path):
    proc = run_train(
        [
            "trainer.max_epochs=3",
            "+trainer.limit_train_batches=4",
            "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    log = (tmp_path / "train.log").read_text()
    epochs = [line for line in log.splitlines() if "][depthbench][INFO] - epoch " in line]
    assert [e.split(" - ")[1].split()[1] for e in epochs] == ["1/3", "2/3", "3/3"]
    assert all("train loss" in e and "val loss" in e and "samples/s" in e for e in epochs)
    assert "59,146 parameters, 59,146 trainable" in log and f"outputs in {tmp_path}" in log
    assert "done  DeepMLP" in log and "3 epochs, 12 steps" in log
    for noise in NOISE:
        assert noise not in out, noise
    assert len(out) < 3000 and len(log.splitlines()) <= 8, out  # no progress bar redraws


class SlowValidation(L.Callback):
    """Validation that takes 0.2 s a batch: it must not count as training time."""

    batches = 0

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        SlowValidation.batches += 1
        time.sleep(0.2)


def test_train_samples_per_second_counts_training_only(tmp_path):
    SlowValidation.batches = 0
    cfg = compose_config(
        [*FAST, "logger=none", "+callbacks.slow._target_=test_run_log.SlowValidation"], tmp_path
    )
    metrics = train(cfg)
    assert SlowValidation.batches >= 2  # every epoch validated
    slept = 0.2 * SlowValidation.batches
    assert metrics["fit_seconds"] - metrics["train_seconds"] >= slept, metrics
    rate, seconds = metrics["train_samples_per_second"], metrics["train_seconds"]
    # 2 epochs of 3 batches of 64; metrics.json rounds the rate to 0.1 and the seconds to 0.001
    assert rate * seconds == pytest.approx(2 * 3 * 64, abs=0.0005 * rate + 0.05 * seconds + 0.01)
