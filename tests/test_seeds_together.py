"""Seeds trained together (depthbench.core.together, hydra/launcher=seeds_together) are the separate
runs: the same initial weights (bitwise), the same batches (bitwise, augmentations included),
the same training losses (1e-3 relative over 50 steps), a diverged seed leaves the others
unchanged, and each seed's checkpoint loads and evaluates as a separately trained one."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import pytest
import torch
from helpers import ROOT, compose_config, run_train
from omegaconf import DictConfig

import depthbench.core.together as together
from depthbench.core import evaluate, load_net, train
from hydra_plugins.depthbench_launchers.seeds_together import group_jobs

DATA = ROOT / "data"  # MNIST-1D is generated once, shared with the other tests
STEPS = 50
COMMON = [
    "trainer.max_epochs=-1",
    f"trainer.max_steps={STEPS}",
    "trainer.log_every_n_steps=1",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "callbacks=last",
    "logger=csv",
]
# the lesson's families, tiny: MLP (residual + batch norm), 1-D CNN (hierarchy's, with
# augmentation: per-seed random crops), CIFAR ResNet with option-A shortcuts, transformer.
# The ResNet at lr 0.05 is chaotic on this data: its separate run with 2 torch threads instead of
# 1 already differs by 7e-3 (relative) from step 26 on (seed 4); at lr 0.02 both differences
# stay at float rounding (2e-7), so the test can tell a wrong result from rounding.
FAMILIES = {
    "mlp": ["model=mlp", "model.depth=4", "model.width=32", "model.residual=true",
            "model.batchnorm=true", "data.batch_size=32", "data.train_size=400"],
    "cnn1d": ["experiment=hierarchy", "model.depth=5", "model.width=8", "data.batch_size=32",
              "data.train_size=400", "data.augment=true", "data.crop_padding=2"],
    "resnet": ["model=resnet", "model.depth=8", "model.width=4", "model.shortcut=A",
               "optimizer=sgd", "optimizer.lr=0.02", "data.batch_size=32", "data.train_size=400"],
    "transformer": ["model=transformer", "model.dim=16", "model.depth=2", "model.heads=2",
                    "model.dropout=0.0", "data.batch_size=32", "data.train_size=400"],
}  # fmt: skip
SEEDS = (3, 4)
RECORDED: dict[int, dict[str, Any]] = {}  # seed -> what the separate run saw


class RecordRun(L.Callback):
    """Test-only: a separate run's initial weights and its training batches, by seed."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed = int(pl_module.trainer.datamodule.seed)
        state = {k: v.clone() for k, v in pl_module.net.state_dict().items()}
        RECORDED[seed] = {"init": state, "x": [], "y": []}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        seed = int(trainer.datamodule.seed)
        RECORDED[seed]["x"].append(batch[0].clone())
        RECORDED[seed]["y"].append(batch[1].clone())


def _cfg(family: str, seed: int, out: Path, extra: list[str] = ()) -> DictConfig:
    return compose_config([*FAMILIES[family], *COMMON, f"seed={seed}", *extra], out, data_dir=DATA)


def _losses(folder: Path) -> list[float]:
    frame = pd.read_csv(folder / "csv" / "metrics.csv").dropna(subset=["train/loss_step"])
    return frame["train/loss_step"].astype(float).tolist()


def _together(cfgs: list[DictConfig], monkeypatch: pytest.MonkeyPatch, nan_at: dict[int, int]):
    """train_together, recording each seed's initial weights and training batches; seed s of
    ``nan_at`` gets a NaN input at step nan_at[s] (its loss diverges there)."""
    seen: dict[int, dict[str, Any]] = {}
    build = together.build_seed

    def build_and_record(cfg: DictConfig) -> together.Seed:
        seed = build(cfg)
        s = int(cfg.seed)
        seen[s] = {"init": {k: v.clone() for k, v in seed.net.state_dict().items()}, "x": [],
                   "y": []}  # fmt: skip
        transform, calls = seed.datamodule.transform, [0]

        def recorded(x: torch.Tensor, train: bool) -> torch.Tensor:
            out = transform(x, train)
            if train:
                if nan_at.get(s) == calls[0]:
                    out = out.fill_(float("nan"))
                calls[0] += 1
            return out

        seed.datamodule.transform = recorded
        return seed

    def stack_and_record(batches: list[Any]) -> Any:
        if torch.is_grad_enabled():  # training batches (evaluation runs without gradients)
            for s, (x, y) in zip(seen, batches, strict=True):
                seen[s]["x"].append(x.clone())
                seen[s]["y"].append(y.clone())
        return stack(batches)

    stack = together.stack_batches
    monkeypatch.setattr(together, "build_seed", build_and_record)
    monkeypatch.setattr(together, "stack_batches", stack_and_record)
    return together.train_together(cfgs), seen


@pytest.mark.parametrize("family", list(FAMILIES))
def test_seeds_together_are_the_separate_runs(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = ["+callbacks.record._target_=test_seeds_together.RecordRun"]
    apart = [train(_cfg(family, s, tmp_path / f"apart{s}", record)) for s in SEEDS]
    cfgs = [_cfg(family, s, tmp_path / f"together{s}") for s in SEEDS]
    assert together.why_apart(cfgs[0]) is None
    outcomes, seen = _together(cfgs, monkeypatch, nan_at={})
    for s, alone, joint in zip(SEEDS, apart, outcomes, strict=True):
        assert joint["status"] == "ok" and joint["seeds_together"] == len(SEEDS)
        mine, theirs = seen[s], RECORDED[s]
        assert mine["init"].keys() == theirs["init"].keys()
        assert all(torch.equal(mine["init"][k], theirs["init"][k]) for k in mine["init"])
        assert len(mine["x"]) == len(theirs["x"]) == STEPS
        assert all(torch.equal(a, b) for a, b in zip(mine["y"], theirs["y"], strict=True))
        assert all(torch.equal(a, b) for a, b in zip(mine["x"], theirs["x"], strict=True))
        ours, separate = _losses(tmp_path / f"together{s}"), _losses(tmp_path / f"apart{s}")
        assert len(ours) == len(separate) == STEPS
        assert torch.allclose(torch.tensor(ours), torch.tensor(separate), rtol=1e-3, atol=0)
        for key in ("epochs", "steps", "model", "data", "params"):
            assert joint[key] == alone[key], key
        for key in ("train/acc", "val/acc", "test/acc", "test/loss"):
            assert joint[key] == pytest.approx(alone[key], rel=2e-2, abs=2e-2), key
        # the checkpoint is the separate run's kind: the plain net, its config and data spec
        net, saved = load_net(tmp_path / f"together{s}" / "checkpoints" / "last.ckpt")
        twin, _ = load_net(tmp_path / f"apart{s}" / "checkpoints" / "last.ckpt")
        assert int(saved.seed) == s and type(net) is type(twin)
        for (k, a), (k2, b) in zip(
            net.state_dict().items(), twin.state_dict().items(), strict=True
        ):
            assert k == k2 and a.shape == b.shape


def test_a_diverged_seed_leaves_the_others_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfgs = [_cfg("mlp", s, tmp_path / f"together{s}") for s in SEEDS]
    outcomes, _ = _together(cfgs, monkeypatch, nan_at={SEEDS[1]: 7})
    ok, bad = outcomes
    assert ok["status"] == "ok"
    assert isinstance(bad, together.DivergenceError)
    record = json.loads((tmp_path / f"together{SEEDS[1]}" / "metrics.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at_step"] == 7
    assert record["last_finite_loss"] is not None
    assert bad.depthbench_metrics.items() <= record.items()  # the file adds the code state
    monkeypatch.undo()
    alone = train(_cfg("mlp", SEEDS[0], tmp_path / "apart"))
    ours, separate = _losses(tmp_path / f"together{SEEDS[0]}"), _losses(tmp_path / "apart")
    assert torch.allclose(torch.tensor(ours), torch.tensor(separate), rtol=1e-3, atol=0)
    assert ok["test/acc"] == pytest.approx(alone["test/acc"], abs=2e-2)


def test_a_seed_trained_together_evaluates_as_its_metrics_say(tmp_path: Path) -> None:
    cfgs = [_cfg("resnet", s, tmp_path / f"together{s}", ["trainer.limit_test_batches=100"])
            for s in SEEDS]  # fmt: skip
    outcomes = together.train_together(cfgs)
    for s, joint in zip(SEEDS, outcomes, strict=True):
        ckpt = tmp_path / f"together{s}" / "checkpoints" / "last.ckpt"
        eval_cfg = compose_config([f"ckpt_path={ckpt}"], tmp_path / f"eval{s}", "eval", DATA)
        result = evaluate(eval_cfg)  # eval.py's path: the checkpoint's own config and data
        assert result["test/acc"] == pytest.approx(joint["test/acc"], abs=1e-6)
        assert result["test/loss"] == pytest.approx(joint["test/loss"], rel=1e-5)


def test_what_cannot_stack_says_why() -> None:
    def reason(*overrides: str) -> str | None:
        return together.why_apart(compose_config(list(overrides)))

    assert reason() is None  # the default MLP on digits, default callbacks and logger
    assert "ckpt_path" in reason("ckpt_path=last")
    assert "diagnostics" in reason("diagnostics=gradflow")
    assert "accelerator" in reason("accelerator=gpu")
    assert (
        "FinetuneNet" in reason("experiment=transfer")
        or "finetune" in reason("experiment=transfer").lower()
    )
    assert "EarlyStopping" in reason("callbacks=early_stopping")
    assert together.why_apart_built(torch.nn.Sequential(torch.nn.Dropout(0.1))) is not None
    conv = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3))
    assert together.why_apart_built(conv) is None  # stacked: a grouped conv
    assert "convolutions" in together.why_apart_built(conv, stack_convs=False)  # the CPU default


def test_jobs_group_by_everything_but_the_seed() -> None:
    jobs = [
        ["seed=0", "model.depth=2"],
        ["seed=0", "model.depth=3"],
        ["seed=1", "model.depth=2"],
        ["seed=1", "model.depth=3"],
        ["model.depth=2", "seed=2"],
    ]
    assert group_jobs(jobs, max_seeds=16) == [[0, 2, 4], [1, 3]]
    assert group_jobs(jobs, max_seeds=2) == [[0, 2], [4], [1, 3]]


@pytest.mark.slow
def test_the_launcher_trains_groups_together_and_the_rest_apart(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep_args = ["seed=0,1", "model.dropout=0.0,0.2", "hydra/launcher=seeds_together"]
    done = run_train(["-m", *sweep_args, "trainer.max_epochs=1", "data.train_size=200",
                      f"hydra.sweep.dir={sweep}"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert out.count("run apart") == 1 and "dropout 0.2" in out
    records = {int(p.name): json.loads((p / "metrics.json").read_text())
               for p in sweep.iterdir() if p.is_dir()}  # fmt: skip
    assert all(r["status"] == "ok" for r in records.values())
    assert records[0]["seeds_together"] == records[2]["seeds_together"] == 2
    assert "seeds_together" not in records[1] and "seeds_together" not in records[3]
    lines = [json.loads(x) for x in (sweep / "jobs.jsonl").read_text().splitlines()]
    assert sorted(x["job"] for x in lines) == [0, 1, 2, 3]


def test_a_signal_stops_every_seed_at_a_step_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Signalled:  # SIGTERM arrived during the first step
        signum = signal.SIGTERM

        def restore(self) -> None:
            pass

    monkeypatch.setattr(together, "stop_on_signals", Signalled)
    cfgs = [_cfg("mlp", s, tmp_path / f"together{s}") for s in SEEDS]
    with pytest.raises(SystemExit) as stop:
        together.train_together(cfgs)
    assert stop.value.code == 128 + signal.SIGTERM  # as run.train exits
    for s in SEEDS:
        record = json.loads((tmp_path / f"together{s}" / "metrics.json").read_text())
        assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
        assert record["steps"] == 1
        assert (tmp_path / f"together{s}" / "checkpoints" / "last.ckpt").is_file()


def test_a_run_stopped_while_training_together_is_not_resumed(tmp_path: Path) -> None:
    cfg = compose_config(["ckpt_path=auto"], tmp_path)
    assert together.resume_refusal(cfg) is None  # nothing there: a fresh start
    record = {"status": "interrupted", "seeds_together": 3, "signal": "SIGINT"}
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    assert "no loop position" in together.resume_refusal(cfg)
    (tmp_path / "metrics.json").write_text(json.dumps({**record, "status": "ok"}))
    assert together.resume_refusal(cfg) is None  # finished: run.train says so
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "interrupted"}))
    assert together.resume_refusal(cfg) is None  # a separate run's: Lightning resumes it
