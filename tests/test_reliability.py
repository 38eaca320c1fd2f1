"""Reliability: kill-and-resume, NaN detection, atomic checkpoints, safe loading, determinism."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
from helpers import ROOT, compose_config, run_train
from omegaconf import open_dict

from depthbench.core import evaluate, load_checkpoint, train
from depthbench.errors import CheckpointError, DivergenceError

# digits, deterministic, dropout (so the RNG state matters), last.ckpt every 3 steps
RESUMABLE = [
    "trainer.max_epochs=5",
    "trainer.deterministic=true",
    "model.dropout=0.1",
    "callbacks.last_checkpoint.every_n_train_steps=3",
    "callbacks.progress_bar.refresh_rate=0",
]
COMPARED = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "steps")


@pytest.mark.process
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "train.py", *RESUMABLE, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the worst case
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert not (run_dir / "metrics.json").exists()
    killed_at = load_checkpoint(last)["global_step"]  # whole, loadable with weights_only
    assert 0 < killed_at < 5 * 21

    # the same command again with ckpt_path=auto continues in the same folder
    resumed = train(compose_config([*RESUMABLE, "ckpt_path=auto"], run_dir))
    reference = train(compose_config(RESUMABLE, tmp_path / "reference"))
    assert resumed["status"] == reference["status"] == "ok"
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}


def test_nan_loss_stops_with_step_and_causes(tmp_path):
    cfg = compose_config(
        ["model=plain", "optimizer=sgd", "optimizer.lr=1e12",
         "callbacks.progress_bar.refresh_rate=0", "trainer.max_epochs=3"],
        tmp_path,
    )  # fmt: skip
    with pytest.raises(DivergenceError) as e:
        train(cfg)
    message = str(e.value)
    assert "training loss became nan" in message or "training loss became inf" in message
    assert "at step" in message and "learning rate too high (lr=" in message
    assert "depth 8 without normalisation" in message and "\n" not in message
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "at step" in metrics["error"]
    assert f"at step {metrics['diverged_at_step']} " in message


# every metrics.json holds these (fit_seconds: the time it trained, a diverged run's too); a
# diverged one exactly these three more
USUAL = {"status", "output_dir", "model", "data", "params", "epochs", "steps", "code",
         "fit_seconds"}  # fmt: skip
DIVERGED = USUAL | {"diverged_at_step", "last_finite_loss", "error"}
# a ReLU + He net of the vanishing-gradients experiment (which drops the callbacks group):
# finite losses at steps 0 and 1, then NaN/inf at step 2 with this learning rate
EXPLODING = ["experiment=vanishing_gradients", "model.activation=relu", "model.init=kaiming",
             "optimizer.lr=1e4", "trainer.max_steps=12"]  # fmt: skip


def _diverged_metrics(overrides: list[str], out) -> dict:
    with pytest.raises(DivergenceError):
        train(compose_config(overrides, out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == DIVERGED, set(metrics) ^ DIVERGED
    assert metrics["status"] == "diverged" and "\n" not in metrics["error"]
    assert isinstance(metrics["diverged_at_step"], int)
    return metrics


def test_lr_1e4_inside_an_experiment_without_callbacks_ends_diverged(tmp_path):
    metrics = _diverged_metrics(EXPLODING, tmp_path)
    assert metrics["diverged_at_step"] == 2 and metrics["steps"] == 3
    assert isinstance(metrics["last_finite_loss"], float) and metrics["last_finite_loss"] > 1e3
    assert "became nan at step 2" in metrics["error"] or "became inf at step 2" in metrics["error"]


def test_sparse_checks_report_the_same_step_and_loss(tmp_path):
    """check_every_n_steps > 1 keeps the first bad step and the last finite loss on the device;
    n larger than the run: the end-of-training read still finds it."""
    every = _diverged_metrics(EXPLODING, tmp_path / "every")
    for n in (4, 1000):
        sparse = _diverged_metrics(
            [*EXPLODING[:-1], "trainer.max_steps=6", "callbacks=default", "logger=none",
             "~callbacks.progress_bar", f"callbacks.divergence_guard.check_every_n_steps={n}"],
            tmp_path / str(n),
        )  # fmt: skip
        assert sparse["diverged_at_step"] == every["diverged_at_step"]
        assert sparse["last_finite_loss"] == pytest.approx(every["last_finite_loss"], rel=1e-6)
        assert sparse["steps"] == (4 if n == 4 else 6)


def test_non_finite_weights_at_the_end_are_diverged_never_ok(tmp_path):
    """Weights poisoned after the last step, every loss finite: the end-of-fit check catches it
    (Lightning's default checkpoint, which would refuse them first, is off)."""
    cfg = compose_config(["callbacks=none", "logger=none", "trainer.max_steps=3",
                          "+trainer.enable_checkpointing=false"], tmp_path)  # fmt: skip
    with open_dict(cfg):
        cfg.callbacks = {"poison": {"_target_": "test_reliability.PoisonWeights", "step": 3}}
    with pytest.raises(DivergenceError, match=r"non-finite weights in .* at the end of training"):
        train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == DIVERGED and metrics["status"] == "diverged"
    assert metrics["diverged_at_step"] == 2 and metrics["last_finite_loss"] > 0


@pytest.mark.process
def test_divergence_from_the_command_line_exits_2_with_one_line(tmp_path):
    proc = run_train([*EXPLODING, "trainer.max_steps=4", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "DivergenceError: " in line]
    assert len(lines) == 1 and "at step 2" in lines[0], out[-2000:]
    assert "Traceback" not in out
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


class PoisonWeights(L.Callback):
    """Set every weight to NaN at the end of step ``step`` (after its optimizer step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_nan_weights_never_overwrite_last_good_checkpoint(tmp_path):
    cfg = compose_config(
        ["trainer.max_epochs=3", "callbacks.last_checkpoint.every_n_train_steps=5",
         "callbacks.progress_bar.refresh_rate=0"],
        tmp_path,
    )  # fmt: skip
    with open_dict(cfg):  # poisoned after step 25's update: step 25's checkpoint must refuse
        cfg.callbacks.poison = {"_target_": "test_reliability.PoisonWeights", "step": 25}
    with pytest.raises(DivergenceError, match=r"not saving last\.ckpt at step 25: non-finite"):
        train(cfg)
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 21  # the end of epoch 0 (steps 5..20 were replaced by it)
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged_at_step"] == 25
    assert metrics["last_finite_loss"] > 0  # step 25's loss, computed before the poisoning


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['DEPTHBENCH_PWNED']}",))


@pytest.mark.parametrize("kind", ["truncated", "foreign_pickle", "not_a_checkpoint"])
def test_corrupt_or_foreign_checkpoint_rejected(kind, tmp_path, monkeypatch):
    bad = tmp_path / "bad.ckpt"
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("DEPTHBENCH_PWNED", str(pwned))
    if kind == "truncated":
        torch.save({"state_dict": {"w": torch.ones(1000)}}, bad)
        bad.write_bytes(bad.read_bytes()[:300])
    elif kind == "foreign_pickle":
        bad.write_bytes(pickle.dumps({"state_dict": _Exploit()}))
    else:
        torch.save({"weights": torch.ones(3)}, bad)
    fast = ["trainer.max_epochs=1", "callbacks=none"]
    with pytest.raises(CheckpointError, match=r"bad.ckpt"):
        train(compose_config([*fast, f"ckpt_path={bad}"], tmp_path / "train"))
    with pytest.raises(CheckpointError, match=r"bad.ckpt"):
        evaluate(compose_config([f"ckpt_path={bad}"], tmp_path / "eval", config_name="eval"))
    assert not pwned.exists()  # the pickle's code never ran


def test_same_seed_same_metrics(tmp_path):
    overrides = [
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "model.dropout=0.2",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    first = train(compose_config(overrides, tmp_path / "a"))
    second = train(compose_config(overrides, tmp_path / "b"))
    assert {k: first[k] for k in COMPARED} == {k: second[k] for k in COMPARED}


@pytest.mark.parametrize("callbacks", ["default", "early_stopping", "none"])
def test_progress_bar_off_works_with_every_callbacks_option(callbacks: str, tmp_path) -> None:
    """Lightning refuses a progress-bar callback when the bar is off; the run drops it."""
    overrides = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                 "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
                 f"callbacks={callbacks}", "trainer.enable_progress_bar=false"]  # fmt: skip
    assert train(compose_config(overrides, tmp_path))["status"] == "ok"
