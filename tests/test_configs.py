"""Every option of every config group composes and instantiates; ``train.py --help`` lists them.

Experiments are composed (and run at their CPU size) in ``test_experiments.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import CONF_DIR, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from depthbench.core.config_compose import NOT_GROUPS

# every config group of train.yaml: not conf/hydra (Hydra's own settings) nor NOT_GROUPS
# (conf/lesson: the claims `depthbench lesson` reads, checked in test_lesson.py)
GROUPS = sorted(
    p.name
    for p in Path(CONF_DIR).iterdir()
    if p.is_dir() and p.name != "hydra" and p.name not in NOT_GROUPS
)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


ALL_OPTIONS = [(g, o) for g in GROUPS if g != "experiment" for o in _options(g)]


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_group_option_composes(group: str, option: str, tmp_path: Path) -> None:
    """Each option of each group composes; data/model options also instantiate."""
    cfg = compose_config([f"{group}={option}"], tmp_path)
    assert cfg.trainer.accelerator and cfg.data._target_ and cfg.model._target_
    if group == "data":
        for key in OmegaConf.missing_keys(cfg):  # required user paths (text_csv's data.path)
            if key.startswith("data."):
                OmegaConf.update(cfg, key, str(tmp_path / "user_file.csv"))
        datamodule = instantiate(cfg.data)
        assert hasattr(datamodule, "setup")
    if group == "model":
        net = instantiate(cfg.model, input_shape=[1, 28, 28], num_classes=10)
        assert isinstance(net, torch.nn.Module)
        assert net.head.out_features == 10
    if group in ("optimizer",):
        opt = instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(2))])
        assert opt.param_groups[0]["lr"] > 0
    if group == "scheduler" and cfg.scheduler:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        sched = instantiate(cfg.scheduler)(optimizer=opt, total_steps=100)
        for _ in range(10):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] > 0


@pytest.mark.process
def test_train_help_lists_groups(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(CONF_DIR).parent
    out = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    for group in ("model", "data", "optimizer", "scheduler", "trainer", "accelerator", "logger"):
        assert f"{group}:" in out
