"""``checkpoint.load_net``: a checkpoint back to its trained network, without the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import FAST, compose_config
from omegaconf import open_dict

import depthbench.core.build
from depthbench.core import load_checkpoint, load_net
from depthbench.core.build import build_data, build_module, build_net, build_trainer
from depthbench.core.callbacks.run_config import DATA_SPEC_KEY
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


def test_a_checkpoint_saved_before_the_pipeline_moved_still_evaluates(tmp_path: Path) -> None:
    """A run saved with the module paths of before ``depthbench.core`` (``depthbench.module.
    Classifier``, ``depthbench.rundir...``) evaluates and resumes: its stored config is read
    through ``saved_names``; the file on disk is left as it was."""
    from depthbench.core import compose, evaluate, train
    from depthbench.core.callbacks.run_config import CONFIG_KEY
    from depthbench.core.run_folder.resume import comparable
    from depthbench.core.run_folder.saved_names import RENAMED

    run = tmp_path / "run"
    train(compose_config(FAST, run))
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    old = {new: old for old, new in RENAMED.items()}
    saved[CONFIG_KEY]["module"]["_target_"] = old["depthbench.core.classifier.Classifier"]
    torch.save(saved, ckpt)
    before = ckpt.read_bytes()

    cfg = compose([f"ckpt_path={ckpt}", "+trainer.limit_test_batches=2"], "eval")
    cfg.paths.output_dir = str(tmp_path / "eval")
    assert evaluate(cfg)["status"] == "ok"
    assert ckpt.read_bytes() == before
    now = compose_config(FAST, run)
    then = now.copy()
    then.module._target_ = old["depthbench.core.classifier.Classifier"]
    for callback in then.callbacks.values():  # LastCheckpoint, DivergenceGuard, ...
        callback._target_ = old.get(callback._target_, callback._target_)
        if "dirpath" in callback:
            callback.dirpath = "${paths.output_dir}/checkpoints"
    then.logger.csv._target_ = old[now.logger.csv._target_]
    with open_dict(then):  # now the logger's defaults, spelled out in the old config
        then.logger.csv.name, then.logger.csv.version = "csv", ""
    assert then != now  # the saved config holds the old names
    assert comparable(then) == comparable(now)  # ckpt_path=auto still finds the older run
