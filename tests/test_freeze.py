"""``FreezeAtInit`` (the claim 3 placebo): the named parts of a net keep their initial weights,
bit for bit, while the stem and head train; a name the net lacks is one line, a ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import FAST, compose_config
from hydra.utils import instantiate

from depthbench.core.build import build_data, build_module, build_net, build_trainer
from depthbench.core.callbacks.freeze import FreezeAtInit
from depthbench.core.together import why_apart
from depthbench.errors import ConfigError
from depthbench.lesson import jobs as J
from depthbench.lesson.claims import load_claims

torch.set_num_threads(1)
FREEZE = [
    "+callbacks.freeze_blocks._target_=depthbench.core.callbacks.freeze.FreezeAtInit",
    "+callbacks.freeze_blocks.modules=[blocks]",
]
# a residual MLP with batch norm on the 8x8 digits, a few steps (FAST: 2 epochs of 3 batches)
TINY = ["model=mlp", "model.depth=4", "model.width=16", "model.residual=true",
        "model.batchnorm=true", "logger=none", "test=false", *FAST]  # fmt: skip


def _fit(overrides: list[str], tmp_path: Path):
    """Build and fit as run.train does (the callbacks from the config), keeping the pieces."""
    cfg = compose_config([*TINY, *overrides], tmp_path)
    dm = build_data(cfg)
    net = build_net(cfg.model, dm)
    module = build_module(cfg, net)
    trainer = build_trainer(cfg)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    trainer.fit(module, datamodule=dm)
    return net, trainer, before


def test_frozen_blocks_keep_their_initial_weights_while_stem_and_head_train(
    tmp_path: Path,
) -> None:
    net, trainer, before = _fit(FREEZE, tmp_path)
    assert trainer.global_step == 6
    assert any(isinstance(cb, FreezeAtInit) for cb in trainer.callbacks)
    after = net.state_dict()
    params = {n for n, _ in net.named_parameters()}
    frozen = {n for n in params if n.startswith("blocks.")}
    assert frozen and all(not p.requires_grad for n, p in net.named_parameters() if n in frozen)
    # every weight of the blocks bitwise as initialised (no step, no weight decay)
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    # the stem and the head trained
    for part in ("stem.0.weight", "head.weight", "head.bias"):
        assert not torch.equal(before[part], after[part]), part
    # the optimizer holds no frozen parameter's state
    state = trainer.optimizers[0].state
    held = {id(p) for n, p in net.named_parameters() if n in frozen}
    assert not held & {id(p) for p in state}
    # only the weights are held: the blocks' batch norms still normalise by batch statistics in
    # training, so their running statistics move, as the trained net's would
    stats = [n for n in after if n.startswith("blocks.") and n.endswith("running_mean")]
    assert stats and any(not torch.equal(before[n], after[n]) for n in stats)


def test_without_the_callback_the_blocks_train(tmp_path: Path) -> None:
    """The same fit without FreezeAtInit: the blocks' weights move (so the test above could
    have failed)."""
    net, _, before = _fit([], tmp_path)
    after = net.state_dict()
    moved = [n for n, _ in net.named_parameters() if n.startswith("blocks.")]
    assert any(not torch.equal(before[n], after[n]) for n in moved)


def test_an_unknown_part_is_one_line(tmp_path: Path) -> None:
    bad = [FREEZE[0], "+callbacks.freeze_blocks.modules=[blocks,layers]"]
    with pytest.raises(ConfigError) as err:
        _fit(bad, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("FreezeAtInit: DeepMLP has no part 'layers'; it has ")
    assert "stem" in message and "blocks" in message and "head" in message


def test_modules_must_be_a_list_of_names() -> None:
    for wrong in ("blocks", [], None):
        with pytest.raises(ConfigError, match=r"FreezeAtInit\.modules must be a list of names"):
            FreezeAtInit(wrong)  # type: ignore[arg-type]
    assert FreezeAtInit(["blocks", "stem"]).modules == ["blocks", "stem"]


def test_the_thousand_layers_control_composes_freezes_blocks_and_runs_apart(
    tmp_path: Path,
) -> None:
    """Claim 3's control as the lesson plans it: its command line composes, names the net's
    ``blocks``, and its seeds train apart (a stacked fit would not honour the callback)."""
    claims = load_claims(["thousand_layers"])
    jobs = J.plan_jobs(claims, tmp_path, "quick", [1000], [], gpu=False)
    (ctrl,) = [j for j in jobs if J.CONTROL in j.folder.parts]
    overrides = ctrl.cmd[ctrl.cmd.index("train") + 2 :]  # after `train -m`
    assert all(o in overrides for o in FREEZE)
    kept = [o for o in overrides if not o.startswith(("hydra", "seed="))]
    cfg = compose_config([*kept, "seed=1000"], tmp_path)
    callback = instantiate(cfg.callbacks.freeze_blocks)
    assert isinstance(callback, FreezeAtInit) and callback.modules == ["blocks"]
    with torch.device("meta"):  # the 1,202-layer net's parts, without its weights' memory
        net = instantiate(cfg.model, input_shape=[1, 40], num_classes=10)
    assert "blocks" in dict(net.named_children()) and cfg.model.residual is True
    assert why_apart(cfg) == "callback FreezeAtInit"
