"""``callbacks.checkpointing``: atomic, finite-only checkpoint files; last.ckpt kept current."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import FAST, ROOT, compose_config

from depthbench.core import load_checkpoint, train
from depthbench.core.build import build_trainer
from depthbench.core.callbacks.checkpointing import AtomicCheckpointIO, LastCheckpoint
from depthbench.errors import DivergenceError

OLD = {"state_dict": {"w": torch.ones(50_000)}, "global_step": 1}

# a process that starts writing a new checkpoint over ``path`` and is SIGKILLed half-way through
KILLED_WRITER = textwrap.dedent(
    """
    import io, os, signal, sys
    import torch
    from depthbench.core.callbacks.checkpointing import AtomicCheckpointIO

    real_save = torch.save

    def half_then_kill(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = half_then_kill
    new = {"state_dict": {"w": torch.zeros(50_000)}, "global_step": 2}
    AtomicCheckpointIO().save_checkpoint(new, sys.argv[1])
    """
)


@pytest.mark.process
def test_a_kill_during_the_write_leaves_the_old_checkpoint_whole(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(OLD, path)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert path.with_name("last.ckpt.tmp").stat().st_size > 0  # it died mid-write
    kept = torch.load(path, weights_only=True)  # whole and loadable
    assert kept["global_step"] == 1 and torch.equal(kept["state_dict"]["w"], OLD["state_dict"]["w"])

    AtomicCheckpointIO().save_checkpoint({**OLD, "global_step": 3}, path)  # the next write wins
    assert torch.load(path, weights_only=True)["global_step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_non_finite_weights_are_refused_and_the_old_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(OLD, path)
    weights = {"a": torch.ones(3), "b.weight": torch.tensor([1.0, float("nan")]),
               "steps": torch.tensor([7])}  # fmt: skip
    with pytest.raises(DivergenceError, match=r"not saving last\.ckpt at step 9: .* in b\.weight;"):
        io.save_checkpoint({"state_dict": weights, "global_step": 9}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 1


def test_every_run_writes_through_the_atomic_plugin(tmp_path: Path) -> None:
    trainer = build_trainer(compose_config([*FAST, "logger=none"], tmp_path))
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_last_ckpt_follows_every_epoch_when_val_acc_plateaus(tmp_path: Path) -> None:
    """lr=1e-12: val/acc never improves after epoch 0, so the best file stays at epoch 0 while
    last.ckpt (and a resume from it) is the final epoch's."""
    overrides = [*FAST, "trainer.max_epochs=3", "optimizer.lr=1e-12", "scheduler=none"]
    overrides.append("logger=none")
    metrics = train(compose_config(overrides, tmp_path))
    folder = tmp_path / "checkpoints"
    assert load_checkpoint(folder / "last.ckpt")["global_step"] == metrics["steps"] == 9
    (best,) = [p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"]
    assert best.name.startswith("epoch000") and load_checkpoint(best)["global_step"] == 3


def test_last_checkpoint_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="every_n_train_steps must be >= 1"):
        LastCheckpoint(dirpath="x", every_n_train_steps=0)
