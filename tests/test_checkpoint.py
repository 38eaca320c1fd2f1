"""``checkpoint.load_net``: a checkpoint back to its trained network, without the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import FAST, compose_config

import depthbench.core.build
from depthbench.callbacks.run_config import DATA_SPEC_KEY
from depthbench.core import load_checkpoint, load_net
from depthbench.core.build import build_data, build_module, build_net, build_trainer
from depthbench.errors import CheckpointError


def test_load_net_equals_the_trained_module_without_loading_data(tmp_path: Path, monkeypatch):
    """load_net: the trained weights, in eval mode, with the run config, built from the spec
    stored in the checkpoint (no data module); a checkpoint without a whole spec is refused."""
    cfg = compose_config([*FAST, "logger=none", "model.dropout=0.3"], tmp_path)
    datamodule = build_data(cfg)
    module = build_module(cfg, build_net(cfg.model, datamodule))
    build_trainer(cfg).fit(module, datamodule=datamodule)
    x = datamodule.transform(datamodule.splits["test"][0][:16], False)
    with torch.no_grad():
        expected = module.eval()(x)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"  # written after the last step

    def no_data(_cfg):
        raise AssertionError("load_net instantiated the data module")

    with monkeypatch.context() as m:
        m.setattr(depthbench.core.build, "build_data", no_data)
        net, run_cfg = load_net(ckpt)
    assert not net.training and run_cfg.model.dropout == 0.3 and run_cfg.seed == cfg.seed
    with torch.no_grad():
        assert torch.equal(net(x), expected)

    no_spec = load_checkpoint(ckpt)
    del no_spec[DATA_SPEC_KEY]["model_kwargs"]
    with pytest.raises(CheckpointError, match="no data spec"):
        load_net(no_spec)
