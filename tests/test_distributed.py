"""DDP on CPU processes (gloo), the rank command line of a Hydra job, GPU configs without a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import FAST, ROOT, compose_config, compose_with_hydra, run_train
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from depthbench.core import load_checkpoint, train
from depthbench.core.build import build_data, build_module, build_net
from depthbench.core.callbacks.run_config import CONFIG_KEY
from depthbench.core.config_values import check_accelerator
from depthbench.core.confusion import read_confusion_csv
from depthbench.errors import ConfigError
from depthbench.launch.distributed import hydra_rank_command

NO_GPU = not torch.cuda.is_available()


def _full_split_accuracy(ckpt: Path, split: str) -> float:
    """Accuracy of the checkpoint's weights over the whole ``split``, in this one process."""
    checkpoint = load_checkpoint(ckpt)
    saved = OmegaConf.create(checkpoint[CONFIG_KEY])
    datamodule = build_data(saved)
    module = build_module(saved, build_net(saved.model, datamodule))
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((module(x).argmax(dim=1) == y).sum())
            total += len(y)
    assert total == len(datamodule.splits[split][1])
    return correct / total


@pytest.mark.process
def test_ddp_cpu_two_processes_write_one_metrics_over_whole_val_set(tmp_path: Path) -> None:
    """accelerator=ddp_cpu trainer.devices=2: both ranks train in one run folder, rank 0 alone
    writes metrics.json, and val/test accuracy are those of the whole split (synced over ranks),
    recomputed here in one process from the saved weights."""
    run = tmp_path / "run"
    args = ["accelerator=ddp_cpu", "trainer.devices=2", "model.width=32", "trainer.max_epochs=1",
            "+trainer.limit_train_batches=3", "callbacks.progress_bar.refresh_rate=0",
            f"hydra.run.dir={run}"]  # fmt: skip
    proc = run_train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(tmp_path.rglob("metrics.json")) == [run / "metrics.json"]
    assert "MEMBER: 2/2" in (run / "train.log").read_text()  # rank 1 joined, same folder
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["steps"] == 3
    ckpt = run / "checkpoints" / "last.ckpt"
    assert metrics["val/acc"] == pytest.approx(_full_split_accuracy(ckpt, "val"), abs=1e-6)
    assert metrics["test/acc"] == pytest.approx(_full_split_accuracy(ckpt, "test"), abs=1e-6)


@pytest.mark.process
@pytest.mark.slow
def test_ddp_cpu_eval_writes_the_confusion_matrix_of_the_whole_test_set(tmp_path: Path) -> None:
    """eval.py under accelerator=ddp_cpu trainer.devices=2: the confusion matrix is reduced over
    both ranks and counts each of the 361 test examples once (an odd count: no rank pads its
    shard), its diagonal gives test/acc; predictions.csv needs every prediction in one process."""
    cfg = compose_config([*FAST, "logger=none", "data.test_size=0.2005"], tmp_path / "run")
    train(cfg)
    out = tmp_path / "eval"
    args = [f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "accelerator=ddp_cpu",
            "trainer.devices=2", f"hydra.run.dir={out}"]  # fmt: skip
    proc = run_train(args, script="eval.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    _, matrix = read_confusion_csv(out / "confusion.csv")
    assert int(matrix.sum()) == 361 == metrics["test/examples"]
    assert float(matrix.diag().sum()) / 361 == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert (out / "confusion.png").is_file() and not (out / "predictions.csv").exists()


def test_rank_command_rejoins_the_sweep_job(tmp_path: Path, monkeypatch) -> None:
    """In a multirun job, ranks 1.. rerun that job's overrides as one run in its folder: no -m,
    no sweep lists, hydra.mode=RUN, hydra.run.dir = the job's output folder."""
    import __main__

    # the job as `python train.py -m ...` starts it (a pytest-xdist worker's own program is `-c`)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "train.py")])
    monkeypatch.setattr(__main__, "__spec__", None, raising=False)
    overrides = ["accelerator=ddp_cpu", "model.depth=8", "hparams_search=mlp_optuna"]
    cfg = compose_with_hydra(overrides)
    job_dir = tmp_path / "sweep" / "3"
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(job_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
    HydraConfig.instance().set_config(cfg)
    try:
        command, cwd = hydra_rank_command(1)
    finally:
        HydraConfig.instance().cfg = None
    assert command[:2] == [sys.executable, str(ROOT / "train.py")]
    args = command[2:]
    assert cwd == str(ROOT) and "-m" not in args and "--multirun" not in args
    assert command[len(command) - 4 - len(overrides) : -4] == overrides
    assert f"hydra.run.dir='{job_dir}'" in command
    assert "hydra.mode=RUN" in command and "hydra.output_subdir=null" in command


def test_accelerator_configs_compose_without_a_gpu(tmp_path: Path) -> None:
    gpu = compose_config(["accelerator=gpu"], tmp_path)
    assert gpu.trainer.accelerator == "gpu" and gpu.trainer.precision == "bf16-mixed"
    assert gpu.trainer.benchmark is True and gpu.module.channels_last is True
    ddp = compose_config(["accelerator=ddp", "trainer.num_nodes=2"], tmp_path)
    assert ddp.trainer.devices == -1 and ddp.trainer.num_nodes == 2
    assert ddp.trainer.strategy._target_ == "depthbench.launch.distributed.HydraDDPStrategy"
    assert ddp.trainer.strategy.process_group_backend == "nccl"
    overrides = ["accelerator=ddp_cpu", "trainer.devices=4", "trainer.precision=bf16-mixed"]
    cpu = compose_config(overrides, tmp_path)
    assert cpu.trainer.strategy.process_group_backend == "gloo"
    assert (cpu.trainer.devices, cpu.trainer.precision) == (4, "bf16-mixed")
    # the strategy object instantiates (no process group is created until fit)
    from hydra.utils import instantiate

    assert type(instantiate(cpu.trainer.strategy)).__name__ == "HydraDDPStrategy"


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "ddp"])
def test_gpu_accelerator_fails_before_training_without_gpu(accelerator: str, tmp_path) -> None:
    cfg = compose_config([f"accelerator={accelerator}"], tmp_path)
    with pytest.raises(ConfigError, match="no CUDA GPU is visible; allowed here: cpu, auto, ddp"):
        check_accelerator(cfg.trainer)
    with pytest.raises(ConfigError):
        train(cfg)
    assert not list(tmp_path.iterdir())  # nothing written: it stopped before training


@pytest.mark.process
@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_gpu_run_from_the_command_line_exits_with_one_clear_line(tmp_path: Path) -> None:
    proc = run_train(["accelerator=gpu", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2  # a single run still exits non-zero
    out = proc.stdout + proc.stderr
    assert (
        "ConfigError: accelerator=gpu but no CUDA GPU is visible; allowed here: cpu, auto, ddp_cpu"
        in out
    )
    assert "Traceback" not in out


@pytest.mark.process
@pytest.mark.slow
def test_ddp_cpu_jobs_of_a_multirun_each_start_their_ranks(tmp_path: Path) -> None:
    """Two DDP jobs in one multirun (one process): each starts its own rank 1 into its own
    folder; the second job does not reuse the first job's (ended) process group."""
    sweep = tmp_path / "sweep"
    args = ["-m", "accelerator=ddp_cpu", "model.depth=1,2", "model.width=32",
            "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
            "callbacks.progress_bar.refresh_rate=0", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = run_train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "ok"
        assert "MEMBER: 2/2" in (sweep / job / "train.log").read_text()
    assert sorted(p.parent.name for p in sweep.rglob("metrics.json")) == ["0", "1"]
