"""ExactResume's random-generator state: one entry per global rank, CUDA state of the current
device only, and resumes on another process or GPU count that never fail; the loader position
after an epoch cut short."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from helpers import compose_config
from omegaconf import open_dict

from depthbench.core import train
from depthbench.core.callbacks.reliability import ExactResume


def _on_rank(rank: int) -> ExactResume:
    callback = ExactResume()
    callback.setup(SimpleNamespace(global_rank=rank), None, "fit")  # type: ignore[arg-type]
    return callback


def _state_after(seed: int) -> dict:
    torch.manual_seed(seed)
    random.seed(seed)
    return _on_rank(0).state_dict()["ranks"][0]


def test_one_process_saves_a_list_of_one_state_without_cuda_on_a_cpu() -> None:
    state = _on_rank(0).state_dict()
    assert list(state) == ["ranks"] and len(state["ranks"]) == 1
    if not torch.cuda.is_available():
        assert "cuda" not in state["ranks"][0]  # absent, not an empty list


def test_each_rank_restores_its_own_state() -> None:
    saved = {"ranks": [_state_after(1), _state_after(2)]}
    expected = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        random.seed(seed)
        expected.append((torch.rand(3), random.random()))
    for rank in (0, 1):
        torch.manual_seed(99)
        _on_rank(rank).load_state_dict(saved)
        assert torch.equal(torch.rand(3), expected[rank][0])
        assert random.random() == expected[rank][1]


def test_a_rank_the_checkpoint_has_no_state_for_keeps_its_seeded_generators() -> None:
    saved = {"ranks": [_state_after(1)]}
    torch.manual_seed(7)
    reference = torch.rand(3)
    torch.manual_seed(7)
    _on_rank(2).load_state_dict(saved)  # three processes now, one saved: no IndexError
    assert torch.equal(torch.rand(3), reference)


def test_an_older_single_state_with_every_gpus_cuda_state_loads_here() -> None:
    """The earlier format: one dict, ``cuda`` a list of every visible GPU's state (here more
    GPUs than this machine has, or none at all)."""
    old = {**_state_after(3), "cuda": [torch.zeros(16, dtype=torch.uint8)] * 0}
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _on_rank(0).load_state_dict(old)
    assert torch.equal(torch.rand(3), expected)


class RaiseAtEpoch(L.Callback):
    """Stop the fit with an error when epoch ``epoch`` starts (after the last epoch's last.ckpt)."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("stopped by the test")


def test_resume_after_an_epoch_cut_short_by_limit_train_batches(tmp_path: Path) -> None:
    """limit_train_batches ends each epoch with batches left in the loader; resumed from the
    epoch-end checkpoint, the next epoch starts at its first batch, as in an uninterrupted run
    (it would otherwise serve the saved epoch's remaining batches)."""
    run = ["trainer.deterministic=true", "model.dropout=0.1", "model.width=32", "logger=none",
           "callbacks.progress_bar.refresh_rate=0", "+trainer.limit_train_batches=4",
           "trainer.max_epochs=3"]  # fmt: skip
    stopped = compose_config(run, tmp_path / "stopped")
    with open_dict(stopped):
        stopped.callbacks.stop = {"_target_": "test_exact_resume.RaiseAtEpoch"}
    with pytest.raises(RuntimeError, match="stopped by the test"):
        train(stopped)
    ckpt = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    resumed = train(compose_config([*run, f"ckpt_path={ckpt}"], tmp_path / "resumed"))
    reference = train(compose_config(run, tmp_path / "reference"))
    compared = ("train/loss", "val/loss", "test/loss", "steps")
    assert {k: resumed[k] for k in compared} == {k: reference[k] for k in compared}
