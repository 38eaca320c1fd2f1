"""SIGINT/SIGTERM to a real ``python train.py``: a step-boundary stop, ``interrupted``, a loadable
last.ckpt, exit 128 + signal, and a resume equal to an uninterrupted run; SLURM's requeue path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, compose_config, compose_with_hydra

from depthbench.core import load_checkpoint, load_net, train

# 640 digits (10 batches per epoch), deterministic, dropout (the RNG state matters), last.ckpt
# every 2 steps: its first appearance is the "training is under way" marker
INTERRUPTIBLE = [
    "data.train_size=640",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "model.dropout=0.1",
    "callbacks.last_checkpoint.every_n_train_steps=2",
    "callbacks.progress_bar.refresh_rate=0",
]
COMPARED = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "steps")
STEPS = 3 * 10


def start_train(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), proc.stdout.read().decode()[-3000:] if proc.stdout else path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return train(compose_config(INTERRUPTIBLE, tmp_path_factory.mktemp("uninterrupted")))


@pytest.mark.process
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_at_a_step_with_last_ckpt_and_resumes_exactly(
    tmp_path: Path, signum: int, uninterrupted: dict
) -> None:
    run_dir = tmp_path / "run"
    proc = start_train([*INTERRUPTIBLE, f"hydra.run.dir={run_dir}"])
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signum)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 128 + signum, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert f"interrupted by {signal.Signals(signum).name} at step" in out
    assert (
        "resume with: python train.py " in out and f"hydra.run.dir={run_dir} ckpt_path=auto" in out
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["signal"] == signal.Signals(signum).name
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == metrics["steps"] < STEPS  # saved at the stopping step
    net, _ = load_net(checkpoint)
    assert sum(p.numel() for p in net.parameters()) == metrics["params"]

    resumed = train(compose_config([*INTERRUPTIBLE, "ckpt_path=auto"], run_dir))
    assert resumed["status"] == "ok" and resumed["steps"] == STEPS
    assert {k: resumed[k] for k in COMPARED} == {k: uninterrupted[k] for k in COMPARED}


@pytest.mark.process
def test_slurm_requeue_signal_then_sigterm(tmp_path: Path) -> None:
    """Faked SLURM job: Lightning's auto-requeue handles SIGUSR1 (HPC checkpoint, `scontrol
    requeue <job>`), then SLURM's SIGTERM stops the run at a step with last.ckpt."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "depthbench", "SLURM_NTASKS": "1",
             "SLURM_NTASKS_PER_NODE": "1", "SLURM_NODELIST": "localhost", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
             "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    run_dir = tmp_path / "run"
    proc = start_train([*INTERRUPTIBLE, f"hydra.run.dir={run_dir}"], env=slurm)
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGUSR1)
    wait_for(calls, proc, timeout=60)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert calls.read_text().split() == ["requeue", "4242"]
    assert list(run_dir.glob("hpc_ckpt_*.ckpt"))  # Lightning's requeue checkpoint
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    load_checkpoint(run_dir / "checkpoints" / "last.ckpt")


def test_submitit_slurm_launcher_sends_lightnings_requeue_signal() -> None:
    cfg = compose_with_hydra(["hydra/launcher=submitit_slurm"])
    launcher = cfg.hydra.launcher
    assert launcher.additional_parameters.signal == f"USR1@{launcher.signal_delay_s}"
    from lightning.fabric.plugins.environments import SLURMEnvironment

    assert SLURMEnvironment().requeue_signal == signal.SIGUSR1  # what Lightning listens for
