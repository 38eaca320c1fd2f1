"""Shared test helpers: compose the project's Hydra configs exactly as train.py does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

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
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [], return_hydra_config=False)
    with open_dict(cfg):
        out = tmp_path if tmp_path is not None else ROOT / "outputs" / "tests"
        cfg.paths.output_dir = str(out)
        cfg.paths.data_dir = str(data_dir or ROOT / "data")
    return cfg


# a few-step training run: 2 epochs of 3 batches, tiny validation/test
FAST = [
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "callbacks.progress_bar.refresh_rate=0",
]


def run_train(args: list[str]) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` in the repo as a real process, single-threaded; output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
