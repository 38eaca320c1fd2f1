"""The foundation: every config composes and instantiates; deep nets build; train/eval/resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import CONF_DIR, FAST, FMNIST_DEBIAN, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

import depthbench.checkpoint
from depthbench.checkpoint import SHAPES_KEY, load_checkpoint, load_net
from depthbench.run import build_data, build_module, build_net, build_trainer, evaluate, train

# groups whose options are instantiated objects, and the groups that only set values
GROUPS = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra")


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


def test_train_help_lists_groups(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(CONF_DIR).parent
    out = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    for group in ("model", "data", "optimizer", "scheduler", "trainer", "accelerator", "logger"):
        assert f"{group}:" in out


def test_train_digits_writes_metrics_and_checkpoints(tmp_path: Path) -> None:
    metrics = train(compose_config(FAST, tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("train/loss", "val/acc", "test/acc", "test/loss", "epochs", "steps", "params"):
        assert saved[key] is not None, key
    assert saved["steps"] == 6 and saved["epochs"] == 2
    assert saved["params"] == metrics["params"] > 0
    assert saved["fit_seconds"] > 0 and saved["train_samples_per_second"] > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")  # weights_only=True
    assert ckpt["depthbench_config"]["model"]["depth"] == 4


def test_default_job_reaches_95_percent(tmp_path: Path) -> None:
    """The default job (`python train.py`): digits, MLP, CPU, > 95% test accuracy."""
    metrics = train(compose_config(["callbacks.progress_bar.refresh_rate=0"], tmp_path))
    assert metrics["test/acc"] > 0.95


@pytest.mark.skipif(not FMNIST_DEBIAN.is_dir(), reason="run `make data` (Debian fashion-mnist)")
def test_train_fashion_mnist_residual(tmp_path: Path) -> None:
    overrides = ["data=fashion_mnist", "model=residual", "model.depth=50", *FAST]
    metrics = train(compose_config(overrides, tmp_path))
    assert metrics["data"] == "fashion_mnist"
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] > 0.0


def test_eval_checkpoint_and_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(compose_config(FAST, run_dir))
    ckpt = run_dir / "checkpoints" / "last.ckpt"

    eval_dir = tmp_path / "eval"
    cfg = compose_config([f"ckpt_path={ckpt}", "+trainer.limit_test_batches=2"], eval_dir, "eval")
    metrics = evaluate(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    saved = json.loads((eval_dir / "metrics.json").read_text())
    assert saved["ckpt_path"] == str(ckpt) and saved["status"] == "ok"
    assert saved["model"] == "DeepMLP" and saved["steps"] == 6 and saved["params"] > 0
    assert saved["output_dir"] == str(eval_dir)

    # resume: 2 more epochs on top of the 2 in last.ckpt
    overrides = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    resumed = train(
        compose_config([*overrides, "trainer.max_epochs=4", f"ckpt_path={run_dir}"], tmp_path / "r")
    )
    assert resumed["epochs"] == 4 and resumed["steps"] == 12


def test_last_checkpoint_follows_the_final_epoch_even_when_val_acc_plateaus(tmp_path: Path) -> None:
    """last.ckpt must hold the final epoch, not the epoch of the best val/acc."""
    overrides = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    # lr 0: val/acc never improves after epoch 0, so no top-k save happens later
    train(compose_config([*overrides, "trainer.max_epochs=4", "optimizer.lr=1e-12"], tmp_path))
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 12 and ckpt["epoch"] == 3


def test_logger_none_trains_with_the_default_callbacks(tmp_path: Path) -> None:
    metrics = train(compose_config([*FAST, "logger=none"], tmp_path))
    assert metrics["status"] == "ok" and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "csv").exists()


def test_load_net_equals_the_trained_module_without_loading_data(tmp_path: Path, monkeypatch):
    """load_net: the trained weights, in eval mode, with the run config, built from the spec
    stored in the checkpoint (no data module), and from the data for an older checkpoint."""
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
        m.setattr(depthbench.checkpoint, "build_data", no_data)
        net, run_cfg = load_net(ckpt)
    assert not net.training and run_cfg.model.dropout == 0.3 and run_cfg.seed == cfg.seed
    with torch.no_grad():
        assert torch.equal(net(x), expected)

    legacy = load_checkpoint(ckpt)
    del legacy[SHAPES_KEY]["model_kwargs"]  # written before the spec held the model's extras
    with torch.no_grad():
        assert torch.equal(load_net(legacy)[0](x), expected)
