"""The foundation: every config composes and instantiates; deep nets build; train/eval/resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import CONF_DIR, FAST, FMNIST_DEBIAN, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from depthbench.checkpoint import load_checkpoint
from depthbench.models import DeepCNN, DeepMLP
from depthbench.run import evaluate, train

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


@pytest.mark.parametrize("family", [DeepMLP, DeepCNN])
@pytest.mark.parametrize("depth", [1, 10, 200])
@pytest.mark.parametrize(
    "flags", [{}, {"residual": True}, {"batchnorm": True}], ids=["plain", "residual", "batchnorm"]
)
def test_deep_nets_forward_backward(family, depth: int, flags: dict) -> None:
    torch.manual_seed(0)
    width = 8 if family is DeepCNN else 32
    net = family(input_shape=[1, 8, 8], num_classes=10, depth=depth, width=width, **flags)
    x = torch.randn(16, 1, 8, 8)
    out = net(x)
    assert out.shape == (16, 10)
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.arange(16) % 10).backward()
    first = net.blocks[0].layer.weight.grad
    last = net.blocks[-1].layer.weight.grad
    assert first is not None and torch.isfinite(last).all()
    if flags == {"batchnorm": True} and depth == 200:
        # Plain nets with batch norm have exploding gradients at init (Yang et al. 2019,
        # "A Mean Field Theory of Batch Normalization"): the first layer's gradient is orders of
        # magnitude above the last layer's, or overflows.
        assert not torch.isfinite(first).all() or first.norm() > 1e3 * last.norm()
    else:
        assert torch.isfinite(first).all()


def test_deep_mlp_builds_at_1000_blocks() -> None:
    net = DeepMLP(input_shape=[64], num_classes=10, depth=1200, width=8, residual=True)
    assert len(net.blocks) == 1200
    out = net(torch.randn(2, 64))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth must be an integer >= 1"),
        ({"width": -3}, "width must be an integer >= 1"),
        ({"activation": "swishy"}, "unknown activation 'swishy'; allowed: relu"),
        ({"init": "orthogonal"}, "unknown init 'orthogonal'"),
    ],
)
def test_deep_net_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeepMLP(input_shape=[8], num_classes=2, **kwargs)


def test_residual_flag_changes_only_skips() -> None:
    plain = DeepMLP(input_shape=[16], num_classes=4, depth=5, width=16)
    residual = DeepMLP(input_shape=[16], num_classes=4, depth=5, width=16, residual=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(plain) == count(residual)  # 16 -> 16: identity shortcuts, no projection


def test_reset_classifier() -> None:
    net = DeepCNN(input_shape=[1, 8, 8], num_classes=10, depth=3)
    net.reset_classifier(3)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)


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
    assert json.loads((eval_dir / "metrics.json").read_text())["ckpt_path"] == str(ckpt)

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


@pytest.mark.parametrize("family", [DeepMLP, DeepCNN])
def test_preactivation_keeps_deep_relu_residual_sums_bounded(family) -> None:
    """Post-activation ReLU branches add a positive mean each block; pre-activation ones do not."""
    torch.manual_seed(0)
    depth, shape = (1202, [1, 8, 8]) if family is DeepMLP else (200, [1, 8, 8])
    kw = {"input_shape": shape, "num_classes": 10, "depth": depth, "width": 16, "residual": True}
    x = torch.randn(8, *shape)
    with torch.no_grad():
        pre = family(**kw, preactivation=True).forward_features(x).norm(dim=1).mean()
        post = family(**kw).forward_features(x).norm(dim=1).mean()
    assert torch.isfinite(pre) and pre < 1e3
    assert post > 10 * pre


def test_logger_none_trains_with_the_default_callbacks(tmp_path: Path) -> None:
    metrics = train(compose_config([*FAST, "logger=none"], tmp_path))
    assert metrics["status"] == "ok" and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "csv").exists()
