"""Seeds trained together: the runs of one config that differ only in ``seed``, as one model.

``train_together(cfgs)`` trains S configs that differ only in ``seed`` as one stacked model in
one process (``torch.func.stack_module_state`` + ``vmap(functional_call)``: a Linear becomes a
batched matrix multiply, a conv a grouped conv), so the per-step cost of the framework and of
hundreds of tiny kernels is paid once for all seeds. It is the same experiment as S separate
``run.train`` calls, not an approximation:

* each seed's data module, net and LightningModule are built exactly as ``run._train`` builds
  them, right after ``L.seed_everything(seed)``: bitwise the separate run's initial weights;
* each seed draws its batches from its own loader (its own split, shuffle and normalisation),
  and its augmentations from its own copy of the torch generator, swapped in around each of its
  batches: the separate run's batches;
* the loss is the sum of the per-seed mean losses, so each seed's gradient is its own; the
  optimizer and schedule are elementwise (SGD, AdamW), gradient-norm clipping is per seed;
  batch-norm statistics are stacked buffers, one set per seed;
* a seed whose loss becomes NaN/inf is recorded ``diverged`` at that step (as the separate run's
  DivergenceGuard records it) and left out from then on; the others go on unchanged.

Each seed gets its own run folder written by the same code as a separate run: the folder claim
(``run_folder.ownership.claimed``), ``metrics.json`` (``run_folder.metrics_file.write_metrics``),
``checkpoints/last.ckpt`` (and the best-by-metric one) through ``AtomicCheckpointIO``, in the
format ``run_folder.checkpoint.load_net`` reads, and its loggers' history (``csv/metrics.csv`` with
the separate run's rows). ``why_apart`` names what cannot be stacked; those configs run apart.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from depthbench.core.build import build_data, build_module, build_net, count_parameters
from depthbench.core.callbacks.checkpointing import AtomicCheckpointIO
from depthbench.core.callbacks.epoch_log import summary_line
from depthbench.core.callbacks.run_config import ConfigInCheckpoint
from depthbench.core.classifier import EPOCH_SUMS_KEY
from depthbench.core.config_values import validate_train_config
from depthbench.core.run import finished_metrics
from depthbench.core.run_folder.layout import LAST_CKPT, METRICS_FILE
from depthbench.core.run_folder.metrics_file import write_metrics
from depthbench.core.run_folder.output_dir import check_output_dir
from depthbench.core.run_folder.ownership import claimed
from depthbench.core.run_folder.redaction import redact
from depthbench.errors import DivergenceError

log = logging.getLogger("depthbench")

# callbacks a stacked fit does itself (checkpoints, divergence, learning-rate rows) or that only
# show progress; any other callback runs the seeds apart
HANDLED_CALLBACKS = {
    "depthbench.core.callbacks.checkpointing.LastCheckpoint",
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "depthbench.core.callbacks.reliability.DivergenceGuard",
    "depthbench.core.callbacks.reliability.ExactResume",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "depthbench.core.callbacks.heartbeat.Heartbeat",
}
HANDLED_LOGGERS = {
    "depthbench.core.run_folder.history.ResumableCSVLogger",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
}
# models whose seeds do not stack: pretrained backbones with frozen parts and their own schedule
APART_MODELS = ("depthbench.models.finetune.",)


def _targets(group: Any) -> list[str]:
    if not group:
        return []
    return [str(c["_target_"]) for c in group.values() if isinstance(c, DictConfig | dict)
            and "_target_" in c]  # fmt: skip


def _limit_ok(value: Any) -> bool:
    return value is None or isinstance(value, int) or float(value) == 1.0


def why_apart(cfg: DictConfig) -> str | None:
    """Why the seeds of ``cfg`` cannot train together (one short reason), or None."""
    trainer = cfg.trainer
    accelerator = str(trainer.get("accelerator", "cpu"))
    if accelerator != "cpu":
        return f"trainer.accelerator={accelerator} (seeds together runs on the CPU only)"
    if str(trainer.get("strategy", "auto")) not in ("auto", "None") or trainer.get(
        "devices", 1
    ) not in (1, "1", "auto"):
        return "several devices or a distributed strategy"
    if int(trainer.get("num_nodes", 1) or 1) != 1:
        return "several nodes"
    if str(trainer.get("precision", "32-true")) not in ("32-true", "32", "None"):
        return f"trainer.precision={trainer.precision}"
    if cfg.get("ckpt_path") not in (None, ""):
        return "ckpt_path is set (a resumed run continues apart)"
    for key in ("accumulate_grad_batches",):
        if trainer.get(key) not in (None, 1):
            return f"trainer.{key}={trainer.get(key)}"
    for key in ("fast_dev_run", "overfit_batches", "max_time", "val_check_interval"):
        value = trainer.get(key)
        if value not in (None, False, 0, 0.0, 1.0) or (
            key == "val_check_interval" and value not in (None, 1.0)
        ):
            return f"trainer.{key}={value}"
    if trainer.get("min_steps") not in (None, -1):
        return f"trainer.min_steps={trainer.get('min_steps')}"
    if trainer.get("min_epochs") not in (None, 0, 1):
        return f"trainer.min_epochs={trainer.get('min_epochs')}"
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        if not _limit_ok(trainer.get(key)):
            return f"trainer.{key}={trainer.get(key)} (a fraction)"
    if trainer.get("gradient_clip_val") and str(
        trainer.get("gradient_clip_algorithm") or "norm"
    ) not in ("norm", "value"):
        return f"trainer.gradient_clip_algorithm={trainer.gradient_clip_algorithm}"
    if trainer.get("max_epochs") in (None, -1) and trainer.get("max_steps") in (None, -1):
        return "no trainer.max_epochs or max_steps"
    module = cfg.module
    for key in ("compile", "channels_last", "tta_flip"):
        if module.get(key):
            return f"module.{key}=true"
    if module.get("ema_decay") is not None:
        return "module.ema_decay is set"
    if str(module.get("_target_")) != "depthbench.core.classifier.Classifier":
        return f"module {module.get('_target_')}"
    if _targets(cfg.get("diagnostics")):
        return "diagnostics callbacks measure one net at a time"
    other = [t for t in _targets(cfg.get("callbacks")) if t not in HANDLED_CALLBACKS]
    if other:
        return f"callback {other[0].rsplit('.', 1)[-1]}"
    other = [t for t in _targets(cfg.get("logger")) if t not in HANDLED_LOGGERS]
    if other:
        return f"logger {other[0].rsplit('.', 1)[-1]} (one run per process)"
    for c in (cfg.get("callbacks") or {}).values():
        if isinstance(c, DictConfig) and str(c.get("_target_")).endswith("ModelCheckpoint"):
            if (
                c.get("save_top_k", 1) != 1
                or c.get("monitor") not in ("val/acc", "val/loss")
                or c.get("save_last")
            ):
                return "a ModelCheckpoint other than the best by val/acc or val/loss"
            if (
                c.get("every_n_train_steps")
                or c.get("train_time_interval")
                or c.get("every_n_epochs", 1) != 1
            ):
                return "a ModelCheckpoint saving at steps or times"
    if str(cfg.data.get("loader", "memory")) != "memory":
        return f"data.loader={cfg.data.loader}"
    if not str(cfg.data.get("_target_", "")) or not issubclass(
        get_class(cfg.data._target_), _memory_base()
    ):
        return "a data module that is not in-memory"
    target = str(cfg.model.get("_target_", ""))
    if target.startswith(APART_MODELS):
        return f"model {target.rsplit('.', 1)[-1]} (a pretrained, partly frozen backbone)"
    return None


def _memory_base() -> type:
    from depthbench.data.base import InMemoryDataModule

    return InMemoryDataModule


def resume_refusal(cfg: DictConfig) -> str | None:
    """Why ``cfg`` cannot continue its run folder (``ckpt_path=auto``/``last``), or None: a run
    stopped while its seeds trained together has a ``last.ckpt`` without Lightning's loop
    position (epoch, batch), so a resume could not continue it exactly. A finished one may be
    continued (``run.train`` says it is done)."""
    if str(cfg.get("ckpt_path")) not in ("auto", "last"):
        return None
    folder = Path(cfg.paths.output_dir)
    try:
        record = json.loads((folder / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not record.get("seeds_together") or record.get("status") == "ok":
        return None
    return (
        f"{folder} was {record.get('status')} while its seeds trained together, and its "
        "last.ckpt holds no loop position to resume from exactly; rerun the sweep in a new "
        "folder (leave hydra.sweep.dir unset)"
    )


class CannotStack(Exception):  # noqa: N818 (not an error: the seeds run apart instead)
    """The built nets cannot be stacked (``why_apart_built``): nothing was written yet."""


def why_apart_built(net: nn.Module, stack_convs: bool = True) -> str | None:
    """Why a built net cannot be stacked, or None. ``stack_convs=False``: a net with
    convolutions runs apart too (on a CPU a stacked conv is a grouped conv, which oneDNN runs
    slower than the seeds' separate convs: docs/performance.md)."""
    if not stack_convs and any(isinstance(m, nn.modules.conv._ConvNd) for m in net.modules()):
        return "convolutions (grouped convs are slower than separate ones on a CPU)"
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return (
                f"dropout {m.p} in {name or 'the net'} (its masks would not be the separate run's)"
            )
    if any(not p.requires_grad for p in net.parameters()):
        return "frozen parameters"
    return None


# ---- one seed -------------------------------------------------------------------------------
@dataclass
class Seed:
    """Everything one seed of a stacked fit owns: its config, data, net and outputs."""

    cfg: DictConfig
    out_dir: Path
    datamodule: Any
    net: nn.Module
    module: Any
    rng: torch.Tensor  # this seed's torch generator state (its augmentations)
    loggers: list[Any] = field(default_factory=list)
    last_ckpt: Any = None  # LastCheckpoint-like config (dirpath, every_n_train_steps) or None
    best_ckpt: Any = None  # an instantiated ModelCheckpoint (file names) or None
    best: tuple[float, Path] | None = None
    alive: bool = True
    diverged_at: int | None = None
    last_finite: float | None = None
    fit_metrics: dict[str, float] = field(default_factory=dict)
    samples: int = 0  # examples trained on in this fit

    @property
    def name(self) -> str:
        return f"seed {self.cfg.seed}"


def build_seed(cfg: DictConfig) -> Seed:
    """One seed as ``run._train`` builds it: seeded, then data, net and LightningModule."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_data(cfg)
    net = build_net(cfg.model, datamodule)
    module = build_module(cfg, net)
    seed = Seed(cfg=cfg, out_dir=Path(cfg.paths.output_dir), datamodule=datamodule, net=net,
                module=module, rng=torch.get_rng_state())  # fmt: skip
    seed.loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()
                    if isinstance(c, DictConfig) and "_target_" in c]  # fmt: skip
    for c in (cfg.get("callbacks") or {}).values():
        if not isinstance(c, DictConfig) or "_target_" not in c:
            continue
        if c._target_.endswith("LastCheckpoint"):
            seed.last_ckpt = c
        elif c._target_.endswith("ModelCheckpoint"):
            seed.best_ckpt = instantiate(c)
    return seed


@contextlib.contextmanager
def own_generator(seed: Seed) -> Iterator[None]:
    """Run the block with ``seed``'s torch generator, as if the other seeds did not exist."""
    outside = torch.get_rng_state()
    torch.set_rng_state(seed.rng)
    try:
        yield
    finally:
        seed.rng = torch.get_rng_state()
        torch.set_rng_state(outside)


# ---- the stacked model ------------------------------------------------------------------------
class Stack:
    """S nets of one architecture as stacked parameters and buffers, run under ``vmap``."""

    def __init__(self, nets: list[nn.Module], label_smoothing: float) -> None:
        self.params, self.buffers = torch.func.stack_module_state(nets)
        self.base = copy.deepcopy(nets[0]).to("meta")  # the architecture; weights come stacked
        self.label_smoothing = label_smoothing

        def loss_and_logits(params, buffers, x, y):
            logits = self._call(params, buffers, x)
            return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits

        # randomness="error": a random op in the forward (an active dropout) cannot match the
        # separate run's draws; why_apart_built sends such nets apart, this is the backstop
        self.step = torch.func.vmap(loss_and_logits, randomness="error")

    def _call(self, params: dict, buffers: dict, x: Any) -> torch.Tensor:
        if isinstance(x, dict):
            return torch.func.functional_call(self.base, (params, buffers), (), x)
        return torch.func.functional_call(self.base, (params, buffers), (x,))

    def train(self, mode: bool) -> None:
        self.base.train(mode)

    def unstack_into(self, k: int, net: nn.Module) -> None:
        """Copy seed ``k``'s slice of the stacked weights and buffers into its own ``net``."""
        with torch.no_grad():
            for name, t in [*net.named_parameters(), *net.named_buffers()]:
                source = self.params.get(name, self.buffers.get(name))
                t.copy_(source[k])


def stack_batches(batches: list[Any]) -> Any:
    """Per-seed batches ``(x, y)`` (x a tensor or a dict of tensors) -> one (S, B, ...) batch."""
    x0 = batches[0][0]
    if isinstance(x0, dict):
        x = {k: torch.stack([b[0][k] for b in batches]) for k in x0}
    else:
        x = torch.stack([b[0] for b in batches])
    return x, torch.stack([b[1] for b in batches])


def _limit(value: Any, n: int) -> int:
    if value is None or (isinstance(value, float) and value == 1.0):
        return n
    return min(int(value), n)


def clip_per_seed(params: list[torch.Tensor], max_norm: float, algorithm: str) -> None:
    """Lightning's gradient clipping, for each seed (leading dim) on its own."""
    grads = [p.grad for p in params if p.grad is not None]
    if algorithm == "value":
        for g in grads:
            g.clamp_(-max_norm, max_norm)
        return
    # torch.nn.utils.clip_grad_norm_: total 2-norm over all parameters, coef clamped to 1
    norms = torch.stack([g.flatten(1).norm(2, dim=1) for g in grads], dim=1)  # (S, P)
    total = norms.norm(2, dim=1)  # (S,)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))))


def estimated_steps(trainer_cfg: DictConfig, batches_per_epoch: int) -> int:
    """``Trainer.estimated_stepping_batches`` for one process and no accumulation."""
    max_epochs, max_steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps", -1)
    max_steps = -1 if max_steps is None else int(max_steps)
    if max_epochs in (None, -1):
        return max_steps
    total = batches_per_epoch * max(int(max_epochs), 1)
    return min(total, max_steps) if max_steps != -1 else total


# ---- the run folders ---------------------------------------------------------------------------
def _log_rows(seed: Seed, metrics: dict[str, float], step: int) -> None:
    for logger in seed.loggers:
        logger.log_metrics(metrics, step)


def save_checkpoint(seed: Seed, k: int, stack: Stack, path: Path, state: dict[str, Any]) -> None:
    """Write seed ``k``'s checkpoint in the separate run's format (``run_folder.checkpoint``)."""
    stack.unstack_into(k, seed.net)
    checkpoint: dict[str, Any] = {
        "epoch": state["epoch"],
        "global_step": state["step"],
        "pytorch-lightning_version": L.__version__,
        "state_dict": seed.module.state_dict(),
        "optimizer_states": [seed_optimizer_state(state["optimizer"], stack, k)],
        "lr_schedulers": [state["scheduler"].state_dict()] if state["scheduler"] else [],
        "hparams_name": "kwargs",
        "hyper_parameters": dict(seed.module.hparams),
        # this epoch's sums so far, as Classifier.on_save_checkpoint stores them
        EPOCH_SUMS_KEY: {
            "count": state["count"],
            "loss_sum": state["loss_sums"][k].clone(),
            "correct": state["corrects"][k].clone(),
        },
    }
    resolved = redact(OmegaConf.to_container(seed.cfg, resolve=True))
    ConfigInCheckpoint(resolved).on_save_checkpoint(
        SimpleNamespace(datamodule=seed.datamodule), seed.module, checkpoint
    )  # the config, the data spec and plain hyper-parameters, as in a separate run's file
    for logger in seed.loggers:  # the rows a checkpoint covers are on disk before it is
        logger.save()
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


def seed_optimizer_state(optimizer: torch.optim.Optimizer, stack: Stack, k: int) -> dict:
    """Seed ``k``'s slice of the stacked optimizer's state, as its own optimizer would hold it."""
    state = optimizer.state_dict()
    sliced = {}
    for index, values in state["state"].items():
        sliced[index] = {
            name: v[k].clone() if isinstance(v, torch.Tensor) and v.ndim > 0 else v
            for name, v in values.items()
        }
    return {"state": sliced, "param_groups": state["param_groups"]}


# ---- the fit -----------------------------------------------------------------------------------
def _diverged_record(seed: Seed, epoch: int, value: float) -> dict[str, Any]:
    """The ``metrics.json`` fields of a seed whose loss became ``value`` (as ``run.train``'s)."""
    kept = _last_path(seed) if seed.last_ckpt is not None else None
    return {
        "diverged_at_step": int(seed.diverged_at or 0),
        "last_finite_loss": seed.last_finite,
        "error": (
            f"DivergenceError: training loss became {value} at step {seed.diverged_at} (epoch "
            f"{epoch}; trained with seeds together); last good checkpoint: "
            f"{kept if kept is not None and kept.is_file() else 'none saved yet'}"
        ),
    }


def train_together(
    cfgs: list[DictConfig], stack_convs: bool = True
) -> list[dict[str, Any] | BaseException]:
    """Train the configs (equal but for ``seed``) as one stacked model; write each seed's run
    folder; return each seed's metrics (as ``run.train`` returns them) or its error (a diverged
    seed's DivergenceError carries its record as ``depthbench_metrics``, as ``run.train``'s).

    Raises CannotStack, before anything is written, when the built nets cannot be stacked
    (``why_apart_built``; ``stack_convs=False``: nets with convolutions neither)."""
    for cfg in cfgs:
        validate_train_config(cfg)
        check_output_dir(Path(cfg.paths.output_dir))
    with contextlib.ExitStack() as held:
        for cfg in cfgs:  # each folder is its seed's alone, as for a separate run
            held.enter_context(claimed(Path(cfg.paths.output_dir), cfg))
        seeds = [build_seed(cfg) for cfg in cfgs]
        reason = why_apart_built(seeds[0].net, stack_convs)
        if reason is not None:
            raise CannotStack(reason)
        return StackedFit(seeds).run()


class StackedFit:
    """One fit of S seeds as one stacked model, step for step as Lightning fits each of them:
    epochs of the configured batches, validation at the end of each (``check_val_every_n_epoch``)
    epoch that ran all its batches, ``trainer.max_steps``/``max_epochs``, the loggers' rows at
    the separate run's steps, checkpoints at epoch ends, then the test."""

    def __init__(self, seeds: list[Seed]) -> None:
        self.seeds = seeds
        self.cfg = seeds[0].cfg
        t = self.cfg.trainer
        self.stack = Stack([s.net for s in seeds], float(self.cfg.module.get("label_smoothing", 0)))
        self.params = list(self.stack.params.values())
        self.loaders = [s.datamodule.train_dataloader() for s in seeds]
        lengths = {len(loader) for loader in self.loaders}
        if len(lengths) != 1:
            raise ValueError(f"the seeds' training splits give different batch counts: {lengths}")
        self.batches_per_epoch = _limit(t.get("limit_train_batches"), lengths.pop())
        self.total_steps = estimated_steps(t, self.batches_per_epoch)
        hparams = seeds[0].module.hparams  # the optimizer and schedule partials, as configured
        self.optimizer = hparams.optimizer(params=[{"params": self.params}])
        self.scheduler = (hparams.scheduler(optimizer=self.optimizer, total_steps=self.total_steps)
                          if hparams.scheduler is not None else None)  # fmt: skip
        self.max_steps = math.inf if t.get("max_steps") in (None, -1) else int(t.max_steps)
        self.max_epochs = math.inf if t.get("max_epochs") in (None, -1) else int(t.max_epochs)
        self.log_every = int(t.get("log_every_n_steps") or 50)
        self.val_every = int(t.get("check_val_every_n_epoch") or 1)
        self.clip = t.get("gradient_clip_val")
        self.clip_algorithm = str(t.get("gradient_clip_algorithm") or "norm")
        callbacks = _targets(self.cfg.get("callbacks"))
        self.lr_monitor = "lightning.pytorch.callbacks.LearningRateMonitor" in callbacks
        self.alive = torch.ones(len(seeds), dtype=torch.bool)
        self.epoch = self.step = 0
        self.train_seconds = 0.0
        # this epoch's sums per seed, as Classifier.training_step keeps them (float32 tensors)
        self.loss_sums = torch.zeros(len(seeds))
        self.corrects = torch.zeros(len(seeds), dtype=torch.long)
        self.count = 0

    @property
    def state(self) -> dict[str, Any]:
        """What a checkpoint of seed k is cut from (``save_checkpoint``)."""
        return {"epoch": self.epoch, "step": self.step, "optimizer": self.optimizer,
                "scheduler": self.scheduler, "loss_sums": self.loss_sums,
                "corrects": self.corrects, "count": self.count}  # fmt: skip

    def run(self) -> list[dict[str, Any] | BaseException]:
        """Fit, test, write every seed's folder; each seed's metrics or its error."""
        net = self.seeds[0].net
        log.info("train %d seeds together (%s) of %s: %s parameters each; up to %s steps",
                 len(self.seeds), ", ".join(str(s.cfg.seed) for s in self.seeds),
                 type(net).__name__, f"{count_parameters(net):,}", self.total_steps)  # fmt: skip
        for s in self.seeds:
            for logger in s.loggers:
                logger.log_hyperparams(redact(OmegaConf.to_container(s.cfg, resolve=True)))
        self.stack.train(True)
        start = time.perf_counter()
        stop = stop_on_signals()
        try:
            while self.epoch < self.max_epochs and self.step < self.max_steps and self.alive.any():
                finished = self._train_epoch(stop)
                if stop.signum is not None:  # at a step boundary, as GracefulInterrupt stops
                    self._interrupted(stop.signum)
                self._end_epoch(finished)
                self.epoch += 1
        finally:
            stop.restore()
        return self._finish(time.perf_counter() - start)

    def _train_epoch(self, stop: stop_on_signals) -> bool:
        """Train one epoch (or until a limit or a signal); whether its last batch was trained."""
        if self.lr_monitor:
            lr = {f"lr-{type(self.optimizer).__name__}": self.optimizer.param_groups[0]["lr"]}
            for s in self._alive_seeds():
                _log_rows(s, lr, self.step)
        self.loss_sums, self.corrects = (
            torch.zeros_like(self.loss_sums),
            torch.zeros_like(self.corrects),
        )
        self.count = 0
        iterators = [iter(loader) for loader in self.loaders]
        start = time.perf_counter()
        finished = False
        for b in range(self.batches_per_epoch):
            self._train_step(iterators)
            finished = b == self.batches_per_epoch - 1
            if self.step >= self.max_steps or not self.alive.any() or stop.signum is not None:
                break
        self.train_seconds += time.perf_counter() - start
        return finished

    def _train_step(self, iterators: list[Iterator[Any]]) -> None:
        batches = []
        for s, it in zip(self.seeds, iterators, strict=True):
            with own_generator(s):  # its augmentations: the separate run's draws
                batches.append(next(it))
        x, y = stack_batches(batches)
        self.optimizer.zero_grad(set_to_none=True)
        losses, logits = self.stack.step(self.stack.params, self.stack.buffers, x, y)
        # the sum of the per-seed mean losses: each seed's gradient is its own run's
        torch.where(self.alive, losses, 0.0).sum().backward()
        if self.clip:
            clip_per_seed(self.params, float(self.clip), self.clip_algorithm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        detached, n = losses.detach(), int(y.shape[1])
        self.loss_sums = self.loss_sums + detached * n
        self.corrects = self.corrects + (logits.detach().argmax(-1) == y).sum(1)
        self.count += n
        values = detached.tolist()  # the one host read of the step (the divergence guard's)
        for k, s in enumerate(self.seeds):
            if not s.alive:
                continue
            if not math.isfinite(values[k]):  # recorded at its step, left out from now on
                s.alive, s.diverged_at, self.alive[k] = False, self.step, False
                s.fit_metrics = _diverged_record(s, self.epoch, values[k])
                s.fit_metrics.update(epochs=self.epoch, steps=self.step + 1)
                log.warning("%s diverged at step %d; the other seeds go on", s.name, self.step)
                continue
            s.last_finite = values[k]
            s.samples += n
            if (self.step + 1) % self.log_every == 0:
                _log_rows(s, {"train/loss_step": values[k], "epoch": self.epoch}, self.step)
        self.step += 1
        for k, s in enumerate(self.seeds):
            if s.alive and _every_n_steps(s, self.step):
                save_checkpoint(s, k, self.stack, _last_path(s), self.state)

    def _end_epoch(self, finished: bool) -> None:
        """Validation (after an epoch that trained all its batches), the epoch's rows, the
        checkpoints: in the order Lightning writes them."""
        row_step = self.step - 1  # Lightning's epoch-end rows: the last step of the epoch
        if finished and (self.epoch + 1) % self.val_every == 0 and self.alive.any():
            for s, r in zip(self.seeds, self._evaluate("val"), strict=True):
                if s.alive:
                    s.fit_metrics.update(r)
                    _log_rows(s, {**r, "epoch": self.epoch}, row_step)
        for k, s in enumerate(self.seeds):
            if not s.alive:
                continue
            if self.count:
                row = {"train/acc": float(self.corrects[k].float() / self.count),
                       "train/loss_epoch": float(self.loss_sums[k] / self.count)}  # fmt: skip
                s.fit_metrics.update(row)
                _log_rows(s, {**row, "epoch": self.epoch}, row_step)
            if s.best_ckpt is not None:
                _save_best(s, k, self.stack, self.state)
            if s.last_ckpt is not None and self.step > 0:
                save_checkpoint(s, k, self.stack, _last_path(s), self.state)
        losses = [f"{s.cfg.seed}: " + (f"loss {s.fit_metrics['train/loss_epoch']:.4f}"
                                       if s.alive and "train/loss_epoch" in s.fit_metrics
                                       else "diverged" if not s.alive else "-")
                  for s in self.seeds]  # fmt: skip
        log.info("epoch %d  %s", self.epoch + 1, "  ".join(losses))

    def _evaluate(self, split: str) -> list[dict[str, float]]:
        """Each seed's mean loss and accuracy on its own ``split`` (eval mode, no gradients):
        the batch-size-weighted mean Lightning logs, and micro accuracy."""
        loaders = [getattr(s.datamodule, f"{split}_dataloader")() for s in self.seeds]
        n = _limit(self.cfg.trainer.get(f"limit_{split}_batches"), len(loaders[0]))
        loss_sum, correct, count = torch.zeros(len(self.seeds)), torch.zeros(len(self.seeds)), 0
        self.stack.train(False)
        with torch.no_grad():
            for _, *batches in zip(range(n), *loaders, strict=False):
                x, y = stack_batches(batches)
                losses, logits = self.stack.step(self.stack.params, self.stack.buffers, x, y)
                loss_sum += losses * y.shape[1]
                correct += (logits.argmax(-1) == y).sum(1)
                count += y.shape[1]
        self.stack.train(True)
        return [{f"{split}/loss": float(loss_sum[k] / count),
                 f"{split}/acc": float(correct[k] / count)}
                for k in range(len(self.seeds))]  # fmt: skip

    def _alive_seeds(self) -> list[Seed]:
        return [s for s in self.seeds if s.alive]

    def _fields(self, s: Seed) -> dict[str, Any]:
        return {"model": type(s.net).__name__,
                "data": getattr(s.datamodule, "name", type(s.datamodule).__name__),
                "params": count_parameters(s.net)}  # fmt: skip

    def _interrupted(self, signum: int) -> None:
        """Each running seed's last.ckpt at this step and ``metrics.json`` ``interrupted``;
        exit 128 + signal, as ``run.train`` does for a separate run."""
        name = signal.Signals(signum).name
        for k, s in enumerate(self.seeds):
            if not s.alive:
                continue
            if s.last_ckpt is not None:
                save_checkpoint(s, k, self.stack, _last_path(s), self.state)
            fields = {**self._fields(s), "epochs": self.epoch, "steps": self.step}
            write_metrics(s.out_dir, "interrupted", signal=name, **fields,
                          seeds_together=len(self.seeds))  # fmt: skip
            _finish_loggers(s, "failed")
        log.warning("interrupted by %s at step %d; each seed's folder says so", name, self.step)
        raise SystemExit(128 + signum)

    def _finish(self, fit_seconds: float) -> list[dict[str, Any] | BaseException]:
        """Test the seeds that did not diverge; write every seed's ``metrics.json``."""
        tested = self.cfg.get("test", True) and self.alive.any()
        tests = self._evaluate("test") if tested else [{} for _ in self.seeds]
        outcomes: list[dict[str, Any] | BaseException] = []
        for k, s in enumerate(self.seeds):
            self.stack.unstack_into(k, s.net)
            if not s.alive:
                record = {"status": "diverged", **s.fit_metrics, **self._fields(s),
                          "seeds_together": len(self.seeds)}  # fmt: skip
                record["output_dir"] = str(s.out_dir)
                write_metrics(s.out_dir, **record)
                _finish_loggers(s, "failed")
                error = DivergenceError(record["error"].removeprefix("DivergenceError: "))
                error.depthbench_metrics = record  # type: ignore[attr-defined] # as run.train's
                outcomes.append(error)
                continue
            if tests[k]:
                _log_rows(s, {**tests[k], "epoch": self.epoch}, self.step)
            fields = {**self._fields(s), "epochs": self.epoch, "steps": self.step}
            metrics = finished_metrics(s.fit_metrics, tests[k], fields, fit_seconds=fit_seconds,
                                       train_seconds=self.train_seconds, samples=s.samples,
                                       out_dir=s.out_dir)  # fmt: skip
            metrics["seeds_together"] = len(self.seeds)  # the lesson page tells which runs did
            write_metrics(s.out_dir, **metrics)
            _finish_loggers(s, "success")
            log.info("done  seed %s: %s", s.cfg.seed, summary_line(metrics))
            outcomes.append(metrics)
        return outcomes


class stop_on_signals:  # noqa: N801 (used like a function)
    """SIGINT/SIGTERM set ``signum`` (the stacked fit stops at the next step boundary); a
    second SIGINT stops at once. ``restore()`` puts the previous handlers back."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum
        log.warning("%s: stopping after this step", signal.Signals(signum).name)

    def restore(self) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old = {}


def _every_n_steps(seed: Seed, step: int) -> bool:
    """Whether ``LastCheckpoint(every_n_train_steps=n)`` saves after ``step`` steps."""
    every = seed.last_ckpt.get("every_n_train_steps") if seed.last_ckpt is not None else None
    return bool(every) and step % every == 0


def _last_path(seed: Seed) -> Path:
    return Path(str(seed.last_ckpt.dirpath)) / LAST_CKPT


def _save_best(seed: Seed, k: int, stack: Stack, state: dict[str, Any]) -> None:
    """ModelCheckpoint(save_top_k=1) by its monitor: a new file when the metric improved."""
    cb = seed.best_ckpt
    value = seed.fit_metrics.get(cb.monitor)
    if value is None:
        return
    if seed.best is not None:
        better = value > seed.best[0] if cb.mode == "max" else value < seed.best[0]
        if not better:
            return
    metrics = {k: torch.tensor(v) for k, v in seed.fit_metrics.items() if isinstance(v, float)}
    metrics.update(epoch=state["epoch"], step=state["step"])
    path = Path(cb.format_checkpoint_name(metrics))
    save_checkpoint(seed, k, stack, path, state)
    if seed.best is not None and seed.best[1] != path:
        seed.best[1].unlink(missing_ok=True)
    seed.best = (value, path)


def _finish_loggers(seed: Seed, status: str) -> None:
    for logger in seed.loggers:
        logger.save()
        logger.finalize(status)
