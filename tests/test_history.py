"""A run resumed into its own folder continues csv/metrics.csv and gradflow.csv, row for row."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
from helpers import compose_config
from omegaconf import open_dict

from depthbench.core import train
from depthbench.core.run_folder.history import ResumableCSVLogger, keep_rows_before

# digits subset: 5 full batches per epoch, rows at every other step, deterministic
HISTORY = [
    "data.train_size=320",
    "trainer.deterministic=true",
    "model.dropout=0.1",
    "diagnostics=gradflow",
    "diagnostics.gradflow.every_n_steps=2",
    "diagnostics.gradflow.plot=false",
    "trainer.log_every_n_steps=2",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "callbacks.progress_bar.refresh_rate=0",
]
HISTORY_FILES = ("csv/metrics.csv", "gradflow.csv")
COMPARED = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "steps")


def assert_same_history(resumed: Path, reference: Path) -> None:
    for name in HISTORY_FILES:
        got, want = pd.read_csv(resumed / name), pd.read_csv(reference / name)
        assert list(got.columns) == list(want.columns), name
        assert got["step"].tolist() == want["step"].tolist(), name
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=name)


def test_resume_with_more_epochs_keeps_every_earlier_row(tmp_path: Path) -> None:
    """max_epochs=2 then max_epochs=4 with ckpt_path=auto in the same folder = 4 epochs at once
    (constant learning rate: a cosine schedule depends on max_epochs)."""
    overrides = [*HISTORY, "scheduler=none"]
    run_dir = tmp_path / "run"
    train(compose_config([*overrides, "trainer.max_epochs=2"], run_dir))
    first = pd.read_csv(run_dir / "csv" / "metrics.csv")
    assert first["val/acc"].notna().sum() == 2 and first["test/acc"].notna().sum() == 1
    first = first[first["step"] < 10].reset_index(drop=True)  # the test row (step 10) goes
    resumed = train(compose_config([*overrides, "trainer.max_epochs=4", "ckpt_path=auto"], run_dir))
    reference = train(compose_config([*overrides, "trainer.max_epochs=4"], tmp_path / "ref"))
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}
    assert_same_history(run_dir, tmp_path / "ref")
    kept = pd.read_csv(run_dir / "csv" / "metrics.csv")
    pd.testing.assert_frame_equal(kept[kept["step"] < 10][first.columns].reset_index(drop=True),
                                  first, check_exact=True)  # fmt: skip
    assert pd.read_csv(run_dir / "gradflow.csv")["step"].min() == 0  # the step-0 ratios stay


class SignalAt(L.Callback):
    """Send ``signum`` to this process at the end of optimizer step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize(
    ("step", "signum"),
    [(7, signal.SIGTERM), (10, signal.SIGINT)],  # mid-epoch; the last step of epoch 1
)
def test_interrupted_and_resumed_history_equals_uninterrupted(tmp_path, step, signum) -> None:
    overrides = [*HISTORY, "trainer.max_epochs=3"]
    run_dir = tmp_path / "run"
    cfg = compose_config(overrides, run_dir)
    with open_dict(cfg):
        cfg.callbacks.signal_at = {"_target_": "test_history.SignalAt", "step": step,
                                   "signum": int(signum)}  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 128 + signum
    resumed = train(compose_config([*overrides, "ckpt_path=auto"], run_dir))
    reference = train(compose_config(overrides, tmp_path / "ref"))
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}
    assert_same_history(run_dir, tmp_path / "ref")


def test_keep_rows_before_drops_later_steps_atomically(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("step,x\n0,a\n1,b\n2,c\n1,d\n")
    assert keep_rows_before(path, 2) == 3
    assert path.read_text().splitlines() == ["step,x", "0,a", "1,b", "1,d"]
    assert keep_rows_before(path, 0) == 0 and path.read_text() == "step,x\n"
    assert not list(tmp_path.glob("*.tmp"))
    assert keep_rows_before(tmp_path / "absent.csv", 3) == 0
    assert not (tmp_path / "absent.csv").exists()


def test_csv_logger_keeps_rows_moved_aside_by_a_kill(tmp_path: Path) -> None:
    """A kill while the logger reopens the folder leaves the rows in metrics.csv.resume."""
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "metrics.csv.resume").write_text("loss,step\n0.5,0\n0.25,1\n")
    logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    logger.log_metrics({"loss": 0.125}, step=2)
    logger.save()
    assert (folder / "metrics.csv").read_text().splitlines() == [
        "loss,step", "0.5,0", "0.25,1", "0.125,2"
    ]  # fmt: skip
    assert not (folder / "metrics.csv.resume").exists()


def test_resume_continues_tensorboard_folder_and_wandb_run(tmp_path: Path, caplog) -> None:
    """logger=many, wandb offline: the resumed run keeps the wandb id (run folder and
    checkpoint), says what it did in one line, and TensorBoard writes into the same folder."""
    from depthbench.core.run_folder.checkpoint import load_checkpoint
    from depthbench.core.tracking import WANDB_ID_KEY

    overrides = [*[o for o in HISTORY if "gradflow" not in o], "logger=many", "scheduler=none"]
    run_dir = tmp_path / "run"
    train(compose_config([*overrides, "trainer.max_epochs=1"], run_dir))
    run_id = (run_dir / "wandb" / "run-id").read_text().strip()
    with caplog.at_level("WARNING", logger="depthbench"):
        train(compose_config([*overrides, "trainer.max_epochs=2", "ckpt_path=auto"], run_dir))
    assert (run_dir / "wandb" / "run-id").read_text().strip() == run_id
    offline_runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(run_id) for p in offline_runs)
    lines = [r.getMessage() for r in caplog.records if f"run {run_id} continues" in r.getMessage()]
    assert len(lines) == 1 and "wandb sync" in lines[0]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")[WANDB_ID_KEY] == run_id
    # both runs' event files in the one folder TensorBoard reads together (no version_1/)
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 2
    assert not [p for p in (run_dir / "tensorboard").iterdir() if p.is_dir()]
    assert (pd.read_csv(run_dir / "csv" / "metrics.csv")["epoch"] == 0).any()  # epoch 0 kept


def test_the_csv_logger_writes_each_row_as_it_is_logged(tmp_path: Path) -> None:
    """``logger=csv`` flushes every logged row (a SIGKILL loses at most the step it hits)."""
    from hydra.utils import instantiate

    logger = instantiate(compose_config(["logger=csv"], tmp_path).logger.csv)
    logger.log_metrics({"loss": 0.5}, step=0)
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == ["loss,step", "0.5,0"]
