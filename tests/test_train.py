"""``run.train`` and ``run.evaluate`` end to end: metrics.json, checkpoints, eval, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FAST, FMNIST_DEBIAN, compose_config

from depthbench.core import evaluate, load_checkpoint, train


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
    """A 50-layer residual MLP learns Fashion-MNIST in 40 steps: well above chance (0.1)."""
    fast = [o for o in FAST if "limit_train" not in o and "limit_test" not in o]
    overrides = ["data=fashion_mnist", "model=residual", "model.depth=50", *fast,
                 "+trainer.limit_train_batches=20", "+trainer.limit_test_batches=8"]  # fmt: skip
    metrics = train(compose_config(overrides, tmp_path))
    assert metrics["data"] == "fashion_mnist" and metrics["steps"] == 40
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] > 0.4


def test_eval_checkpoint_and_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(compose_config(FAST, run_dir))
    ckpt = run_dir / "checkpoints" / "last.ckpt"

    eval_dir = tmp_path / "eval"
    cfg = compose_config([f"ckpt_path={ckpt}", "+trainer.limit_test_batches=2"], eval_dir, "eval")
    metrics = evaluate(cfg)
    trained = json.loads((run_dir / "metrics.json").read_text())  # the same weights and batches
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"])
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
