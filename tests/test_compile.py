"""``module.compile=true``: one graph for the whole fit, and checkpoints that do not know whether
they were compiled. ``module.compile_backend=eager`` traces with dynamo without generating code,
so the counts are those of inductor on a GPU at a fraction of the time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_config
from torch._dynamo.utils import counters

from depthbench.core import evaluate, load_checkpoint, load_net, train
from depthbench.core.build import build_data, build_module, build_net

COMPILED = ["module.compile=true", "module.compile_backend=eager", "model.width=32",
            "callbacks.progress_bar.refresh_rate=0", "logger=none"]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # no graph cached by an earlier test
    counters.clear()
    yield
    torch._dynamo.reset()


def test_two_epochs_with_a_partial_last_batch_compile_the_training_step_once(tmp_path: Path):
    """digits' training split is no multiple of the batch size: without drop_last the last batch
    would be a second graph; validation, test and the activation hooks (every 5 steps) run
    eagerly and add none."""
    overrides = [*COMPILED, "trainer.max_epochs=2", "data.batch_size=100",
                 "diagnostics=activations", "diagnostics.activations.every_n_steps=5"]  # fmt: skip
    cfg = compose_config(overrides, tmp_path)
    n_train = len(build_data(cfg).splits["train"][1])
    assert n_train % 100 != 0  # a partial last batch exists
    metrics = train(cfg)
    assert metrics["status"] == "ok" and metrics["steps"] == 2 * (n_train // 100)  # dropped
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert (tmp_path / "activations.csv").read_text().count("\n") > 1  # the hooks did run


def test_compiled_checkpoint_loads_uncompiled_and_back(tmp_path: Path):
    """The compiled forward is no submodule: a compile=true checkpoint has the keys of a
    compile=false one, loads strictly into an uncompiled Classifier, evaluates (eval.py's path,
    checkpoint.load_net) to the run's own test accuracy, and resumes with compile=false."""
    run = tmp_path / "run"
    trained = train(compose_config([*COMPILED, "trainer.max_epochs=1"], run))
    ckpt = run / "checkpoints" / "last.ckpt"
    state = load_checkpoint(ckpt)["state_dict"]
    plain_cfg = compose_config(["model.width=32"], tmp_path / "plain")
    plain = build_module(plain_cfg, build_net(plain_cfg.model, build_data(plain_cfg)))
    assert set(state) == set(plain.state_dict())  # no _orig_mod / compiled-wrapper keys
    plain.load_state_dict(state, strict=True)
    net, _ = load_net(ckpt)
    assert all(torch.equal(v, state[f"net.{k}"]) for k, v in net.state_dict().items())

    evaluated = evaluate(compose_config([f"ckpt_path={ckpt}"], tmp_path / "eval", "eval"))
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    resumed = train(compose_config(["model.width=32", "callbacks.progress_bar.refresh_rate=0",
                                    "logger=none", "trainer.max_epochs=2", f"ckpt_path={ckpt}"],
                                   tmp_path / "resumed"))  # fmt: skip
    assert resumed["status"] == "ok" and resumed["steps"] > trained["steps"]
