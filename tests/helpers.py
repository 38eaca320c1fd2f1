"""Shared test helpers: compose the project's Hydra configs exactly as train.py does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, open_dict

from depthbench.core import compose as compose_with_depthbench

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = str(ROOT / "conf")
FMNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def compose_config(
    overrides: list[str] | None = None,
    tmp_path: Path | None = None,
    config_name: str = "train",
    data_dir: Path | None = None,
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides``; outputs go to ``tmp_path``.

    The data folder defaults to ``<repo>/data`` (shared by the tests, so Fashion-MNIST is
    decompressed once); loggers and progress bars stay on unless overridden.
    """
    cfg = compose_with_hydra(overrides, config_name, hydra_node=False)
    with open_dict(cfg):
        out = tmp_path if tmp_path is not None else ROOT / "outputs" / "tests"
        cfg.paths.output_dir = str(out)
        cfg.paths.data_dir = str(data_dir or ROOT / "data")
    return cfg


def compose_with_hydra(
    overrides: list[str] | None = None, config_name: str = "train", hydra_node: bool = True
) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides`` as Hydra composes it for a run, with its
    ``hydra`` node (launcher, sweeper, run folders) unless ``hydra_node=False``; the one place
    the tests compose configs (``depthbench.core.config_compose``, as depthbench does)."""
    return compose_with_depthbench(overrides or [], config_name, with_hydra=hydra_node)


def sweep_jobs(cfg: DictConfig) -> list[list[str]]:
    """The job override lists Hydra's BasicSweeper makes from the config's sweep params."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides(params)
    batches = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return [job for batch in batches for job in batch]


# a few-step training run: 2 epochs of 3 batches, tiny validation/test
FAST = [
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "callbacks.progress_bar.refresh_rate=0",
]


def run_train(
    args: list[str], timeout: float = 600, script: str = "train.py"
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` (or ``script``, e.g. ``eval.py``) in the repo as a real process,
    single-threaded; output captured.

    ``tests/`` is on its ``PYTHONPATH``, so ``+callbacks.x._target_=helpers.NaNInputOnRank``
    works, also in the processes of the other DDP ranks (they inherit the environment).
    """
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class NaNInputOnRank(L.Callback):
    """Test-only: fill the input batch of global step ``step`` with NaN on rank ``rank`` alone,
    so that rank's training loss (and no other rank's) is NaN at that step."""

    def __init__(self, rank: int = 1, step: int = 3) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            batch[0].fill_(float("nan"))  # the batch is a fresh copy (indexing) of the split


class KillAtEpoch(L.Callback):
    """Test-only: SIGKILL this process (every rank does it) when epoch ``epoch`` starts, after
    the previous epoch's ``last.ckpt`` was written: no clean-up, the worst case."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


class SaveWeightsPerRank(L.Callback):
    """Test-only: at the end of training, save this rank's weights (the LightningModule's state
    dict) to ``<dirpath>/weights_rank<global rank>.pt``, to compare the ranks afterwards."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        self.dirpath.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, self.dirpath / f"weights_rank{trainer.global_rank}.pt")


class SeedPerRank(L.Callback):
    """Test-only: reseed torch with ``seed + global rank`` at ``setup`` (before a resume restores
    the checkpoint's generators), so each rank draws its own dropout masks."""

    def __init__(self, seed: int = 1000) -> None:
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        import torch

        torch.manual_seed(self.seed + trainer.global_rank)


class ResourceProbe:
    """Test-only Hydra callback: after each job of a multirun, append this process's resident
    memory (MiB, ``VmRSS``) and open file descriptors to ``<sweep dir>/resources.jsonl``."""

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        import json

        from hydra.core.hydra_config import HydraConfig

        status = Path("/proc/self/status").read_text().splitlines()
        rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        hydra_cfg = HydraConfig.get()
        record = {"job": hydra_cfg.job.num, "pid": os.getpid(), "rss_mib": rss_kib / 1024,
                  "open_fds": len(os.listdir("/proc/self/fd"))}  # fmt: skip
        with open(Path(hydra_cfg.sweep.dir) / "resources.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
