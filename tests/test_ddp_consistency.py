"""Two CPU processes (``accelerator=ddp_cpu``, gloo) give the answer of one: a NaN on one rank
stops both, fine-tuning keeps the ranks' weights equal through unfreezing, and a killed DDP run
resumes to the uninterrupted run's metrics. Each of those tests starts real ``python train.py``
ranks. On a GPU the divergence check runs every logging interval instead of every step."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import run_train

from depthbench.core.callbacks.reliability import DivergenceGuard
from depthbench.errors import DivergenceError
from depthbench.launch.sweeps import JOBS_FILE

# two ranks on digits, quiet; MLP: a tiny MLP
DDP = ["accelerator=ddp_cpu", "trainer.devices=2", "callbacks.progress_bar.refresh_rate=0"]
MLP = [*DDP, "model.width=32"]


@pytest.mark.process
@pytest.mark.parametrize(
    "ranks", [2, pytest.param(3, marks=pytest.mark.slow, id="3 ranks, NaN on the last")]
)
def test_nan_on_one_rank_stops_every_rank_diverged_in_a_sweep(tmp_path: Path, ranks: int) -> None:
    """The last rank's loss alone is NaN at step 3 (helpers.NaNInputOnRank): every rank stops at
    that step (no hang, no rank left waiting), the sweep records the job diverged, and there is
    one metrics.json, written by rank 0, naming step 3 and that rank."""
    sweep, bad = tmp_path / "sweep", ranks - 1
    args = ["-m", *MLP, f"trainer.devices={ranks}", "trainer.max_epochs=1",
            "+trainer.limit_train_batches=8", "+callbacks.nan._target_=helpers.NaNInputOnRank",
            f"+callbacks.nan.rank={bad}", "+callbacks.nan.step=3",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = run_train(args, timeout=300)  # a rank stuck in a collective would time out here
    out = proc.stdout + proc.stderr
    assert list(sweep.rglob("metrics.json")) == [sweep / "0" / "metrics.json"], out[-3000:]
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["status"] == "diverged", metrics
    assert metrics["diverged_at_step"] == 3 and metrics["steps"] == 4  # stopped at that step
    assert f"became nan at step 3 on rank {bad}" in metrics["error"]
    assert isinstance(metrics["last_finite_loss"], float)
    (job,) = [json.loads(line) for line in (sweep / JOBS_FILE).read_text().splitlines()]
    assert job["status"] == "diverged" and job["diverged_at_step"] == 3
    # every rank raised it at the same step (each logs the one line)
    assert out.count(f"DivergenceError: training loss became nan at step 3 on rank {bad}") == ranks


@pytest.mark.process
@pytest.mark.slow  # two EfficientNet-Lite0 ranks
def test_finetune_unfreeze_keeps_every_parameter_equal_across_ranks(tmp_path: Path) -> None:
    """Fine-tuning with unfreeze_at_epoch=1 on two ranks: at the end every parameter and buffer
    is the same on both ranks (each rank saves its own; compared here), and the backbone did
    train after unfreezing (Lightning issue #20340: a backbone frozen by requires_grad=False
    before DDP wraps the model is never all-reduced after unfreezing)."""
    run, weights = tmp_path / "run", tmp_path / "weights"
    args = [*DDP, "data=digits", "model=finetune", "model.image_size=32",
            "model.unfreeze_at_epoch=1", "trainer.max_epochs=2", "+trainer.limit_train_batches=3",
            "+trainer.limit_val_batches=1", "test=false",
            "+callbacks.save._target_=helpers.SaveWeightsPerRank",
            f"+callbacks.save.dirpath={weights}", f"hydra.run.dir={run}"]  # fmt: skip
    proc = run_train(args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(weights / "weights_rank0.pt", weights_only=True)
    rank1 = torch.load(weights / "weights_rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    differ = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
    assert not differ, f"{len(differ)} tensors differ across ranks, e.g. {differ[:3]}"
    from depthbench.models.efficientnet_lite import lite0_weights_path

    pretrained = torch.load(lite0_weights_path(), weights_only=True)
    key = "_conv_stem.weight"
    assert not torch.equal(rank0[f"net.backbone.net.{key}"], pretrained[key])  # unfrozen, trained


# deterministic, dropout (so each rank's RNG state matters), 3 epochs of 4 steps per rank
RESUMABLE = [*MLP, "trainer.max_epochs=3", "data.train_size=500", "data.batch_size=64",
             "trainer.deterministic=true", "model.dropout=0.3",
             "+callbacks.seed._target_=helpers.SeedPerRank"]  # fmt: skip
COMPARED = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "steps")


@pytest.mark.process
@pytest.mark.slow
def test_ddp_run_killed_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    """Both ranks SIGKILLed at the start of epoch 1 (helpers.KillAtEpoch, after epoch 0's
    last.ckpt), the same command resumed with ckpt_path=auto: the metrics are exactly those of an
    uninterrupted two-rank run. helpers.SeedPerRank gives each rank its own dropout masks, so
    the resume is exact only when each rank gets back its own RNG state, not rank 0's."""
    killed = tmp_path / "killed"
    kill = ["+callbacks.kill._target_=helpers.KillAtEpoch", "+callbacks.kill.epoch=1"]
    proc = run_train([*RESUMABLE, *kill, f"hydra.run.dir={killed}"], timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (killed / "checkpoints" / "last.ckpt").is_file()
    assert not (killed / "metrics.json").exists()
    proc = run_train([*RESUMABLE, "ckpt_path=auto", f"hydra.run.dir={killed}"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_train([*RESUMABLE, f"hydra.run.dir={tmp_path / 'reference'}"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((killed / "metrics.json").read_text())
    reference = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    assert resumed["status"] == reference["status"] == "ok"
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}


@pytest.mark.parametrize(
    ("device", "configured", "every"),
    [("cpu", None, 1), ("cuda", None, 50), ("cuda", 7, 7), ("cpu", 7, 7)],
)
def test_divergence_check_interval_follows_the_device(device, configured, every) -> None:
    """check_every_n_steps=null: every step on a CPU, every log_every_n_steps on a GPU (one host
    sync per logging interval); a configured value wins on both."""
    guard = DivergenceGuard(configured)
    strategy = SimpleNamespace(root_device=torch.device(device))
    trainer = SimpleNamespace(global_step=0, log_every_n_steps=50, strategy=strategy, world_size=1)
    guard.on_train_start(trainer, None)  # type: ignore[arg-type]
    assert guard._every == every


@pytest.mark.parametrize(
    ("configured", "world_size", "on_host"), [(None, 1, True), (5, 1, False), (None, 2, False)]
)
def test_divergence_guard_stops_at_the_first_bad_step_read_on_the_host_or_the_device(
    configured, world_size, on_host
) -> None:
    """A single CPU process checking every step reads each loss as a float; with a longer
    interval or several processes the losses stay on the device until a check. Both stop with
    the step of the first non-finite loss and keep the last finite loss they saw."""
    guard = DivergenceGuard(check_every_n_steps=configured)
    strategy = SimpleNamespace(root_device=torch.device("cpu"), reduce=lambda t, reduce_op: t)
    trainer = SimpleNamespace(global_step=0, log_every_n_steps=50, strategy=strategy,
                              world_size=world_size, global_rank=0, optimizers=[],
                              checkpoint_callbacks=[], current_epoch=0)  # fmt: skip
    net = torch.nn.Linear(2, 2)
    guard.on_train_start(trainer, net)  # type: ignore[arg-type]
    assert guard._on_host == on_host
    with pytest.raises(DivergenceError, match="became nan at step 2"):
        for step, loss in enumerate([2.0, 1.5, float("nan"), float("inf"), 1.0, 0.5]):
            trainer.global_step = step
            guard.on_train_batch_start(trainer, net, None, step)  # type: ignore[arg-type]
            guard.on_train_batch_end(trainer, net, torch.tensor(loss), None, step)  # type: ignore[arg-type]
    assert guard.diverged_at_step == 2
    assert guard.last_finite_loss == (1.5 if configured is None else 1.0)
