"""Every piece of a run, built from its config: data module, network, LightningModule, Trainer.

``run.py`` runs what this module builds. A network's shape comes from its data: ``build_net``
builds a net from a model config and a *data spec* (``data.spec``), and the same spec is stored
in every checkpoint, so a net is rebuilt without its data (``run_folder.checkpoint.load_net``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from depthbench.core.run_folder.redaction import redact
from depthbench.data.spec import data_spec
from depthbench.errors import ConfigError

if TYPE_CHECKING:  # Lightning loads where a Trainer is built: `depthbench predict` needs none
    import lightning as L
    import torch

    from depthbench.core.classifier import Classifier

# what a data module's extra model arguments say about the model it needs
NEEDS = {"vocab_size": "text data needs a model that reads word ids: model=transformer"}


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    """Instantiate the data module and load it, so the model can read its shapes.

    With ``module.compile=true`` the training loader drops its last partial batch
    (``drop_last``): every training batch then has one shape, compiled once.
    """
    compiled = bool(cfg.get("module", {}).get("compile", False))
    datamodule = instantiate(cfg.data, **({"drop_last": True} if compiled else {}))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_net(model_cfg: DictConfig, data: Any) -> torch.nn.Module:
    """Instantiate the network for ``data``: a set-up data module or its ``data_spec``.

    The net gets the spec's ``input_shape``, ``num_classes`` and ``model_kwargs``; a model config
    with ``data_mean``/``data_std`` left null (the fine-tuner) also gets the normalisation
    statistics.
    """
    spec = data if isinstance(data, Mapping) else data_spec(data)
    kwargs = dict(spec.get("model_kwargs", {}))
    check_model_takes(model_cfg, kwargs)
    if model_cfg.get("data_mean", 0) is None and model_cfg.get("data_std", 0) is None:
        kwargs["data_mean"], kwargs["data_std"] = list(spec["mean"]), list(spec["std"])
    return instantiate(
        model_cfg,
        input_shape=list(spec["input_shape"]),
        num_classes=int(spec["num_classes"]),
        **kwargs,
    )


def check_model_takes(model_cfg: DictConfig, kwargs: Mapping[str, Any]) -> None:
    """Raise a ConfigError when the model's constructor cannot take the data's extra arguments
    (text data, with its ``vocab_size``, into an MLP), saying which model the data needs."""
    target = model_cfg.get("_target_")
    if not kwargs or not target:
        return
    try:
        params = inspect.signature(get_object(target)).parameters
    except (ValueError, TypeError, ImportError):  # no introspectable signature: let it try
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    refused = [k for k in kwargs if k not in params]
    if refused:
        hint = next((NEEDS[k] for k in refused if k in NEEDS), "choose a model that takes them")
        raise ConfigError(
            f"{hint}; {target} does not take {', '.join(refused)}, which the data gives"
        )


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers) with a target."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def build_module(cfg: DictConfig, net: torch.nn.Module) -> Classifier:
    """Wrap ``net`` in the Classifier with the optimizer and scheduler partials of ``cfg``."""
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return instantiate(
        cfg.module, net=net, optimizer=instantiate(cfg.optimizer), scheduler=scheduler
    )


def progress_bar_wanted(trainer_cfg: DictConfig) -> bool:
    """``trainer.enable_progress_bar``; null (the default) means "when stdout is a terminal", so
    a SLURM, ``nohup`` or CI log holds the per-epoch lines, not thousands of bar redraws."""
    value = trainer_cfg.get("enable_progress_bar")
    return sys.stdout.isatty() if value is None else bool(value)


def run_callbacks(
    cfg: DictConfig, net: torch.nn.Module | None = None, extra: Sequence[Any] = ()
) -> list[Any]:
    """Every Lightning callback of a run, listed here and nowhere else.

    1. The configured ones: the ``callbacks`` group (``conf/callbacks/*.yaml``: checkpoints,
       divergence guard, exact resume, LR monitor, progress bar, heartbeat) and ``diagnostics``.
    2. The pipeline's own, which every run has: the resolved config in each checkpoint and in the
       loggers (``ConfigInCheckpoint``, ``LogResolvedConfig``), the history kept across resumes
       (``KeepHistory``), a stop at a step boundary on SIGINT/SIGTERM (``GracefulInterrupt``),
       one line per epoch (``EpochLog``, whose training-only clock gives the samples/s), and
       these defaults unless the config has one of the class: ``DivergenceGuard`` (a NaN loss
       always ends the run as diverged) and ``Heartbeat`` (a line every 30 s without a bar).
    3. The fine-tuner's backbone freeze, for a net with a freezing plan (``net.finetune``).
    4. A caller's ``extra`` (a measurement: ``depthbench.core.train(cfg, callbacks=...)``).

    Then what the run cannot use goes: the LR monitor without a logger (Lightning refuses it),
    the progress bar when it is off (a log gets heartbeat lines), the heartbeat when the bar is
    on.
    """
    import lightning as L

    from depthbench.core.callbacks.epoch_log import EpochLog
    from depthbench.core.callbacks.finetune import finetune_callbacks
    from depthbench.core.callbacks.heartbeat import Heartbeat
    from depthbench.core.callbacks.history import KeepHistory
    from depthbench.core.callbacks.interrupt import GracefulInterrupt
    from depthbench.core.callbacks.reliability import DivergenceGuard
    from depthbench.core.callbacks.run_config import ConfigInCheckpoint, LogResolvedConfig

    configured = _instantiate_group(cfg.get("callbacks")) + _instantiate_group(
        cfg.get("diagnostics")
    )
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))  # no secret in ckpt or logs
    own = [ConfigInCheckpoint(resolved), LogResolvedConfig(resolved), KeepHistory()]
    own += [GracefulInterrupt(), EpochLog()]
    defaults = [d for d in (DivergenceGuard(), Heartbeat())
                if not any(isinstance(c, type(d)) for c in configured)]  # fmt: skip
    tuning = finetune_callbacks(net) if net is not None else []
    callbacks = [*configured, *own, *defaults, *tuning, *extra]
    bar = progress_bar_wanted(cfg.trainer)
    unusable: tuple[type, ...] = (Heartbeat,) if bar else (L.pytorch.callbacks.ProgressBar,)
    loggers = [c for c in (cfg.get("logger") or {}).values() if isinstance(c, DictConfig)]
    if not any("_target_" in c for c in loggers):
        unusable += (L.pytorch.callbacks.LearningRateMonitor,)
    return [c for c in callbacks if not isinstance(c, unusable)]


def build_trainer(cfg: DictConfig, callbacks: Sequence[Any] | None = None) -> L.Trainer:
    """The Trainer of ``cfg`` with ``callbacks`` (default: ``run_callbacks(cfg)``) and the
    configured loggers; every checkpoint is written by ``AtomicCheckpointIO`` (atomic, finite
    weights only) unless the config names another ``CheckpointIO``."""
    from lightning.pytorch.plugins.io import CheckpointIO

    from depthbench.core.callbacks.checkpointing import AtomicCheckpointIO

    plugins = list(instantiate(cfg.trainer.get("plugins")) or [])
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return instantiate(
        cfg.trainer,
        callbacks=list(run_callbacks(cfg) if callbacks is None else callbacks),
        logger=_instantiate_group(cfg.get("logger")) or False,
        plugins=plugins,
        enable_progress_bar=progress_bar_wanted(cfg.trainer),
    )
