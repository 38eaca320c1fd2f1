"""``train(cfg)`` and ``evaluate(cfg)``: instantiate -> fit -> test -> ``metrics.json``.

The entry points (``train.py``, ``eval.py``, ``depthbench-train``) are thin Hydra wrappers
around these two functions, so tests and notebooks can call them with a composed config.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from depthbench.callbacks.finetune import finetune_callbacks
from depthbench.checkpoint import CONFIG_KEY, ConfigInCheckpoint, load_checkpoint
from depthbench.distributed import check_accelerator
from depthbench.errors import DivergenceError
from depthbench.module import Classifier
from depthbench.tracking import LogResolvedConfig, finish_wandb, redact
from depthbench.validation import validate_eval_config, validate_train_config

log = logging.getLogger("depthbench")


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers) with a target."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    """Instantiate the data module and load it, so the model can read its shapes."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_net(model_cfg: DictConfig, datamodule: Any) -> torch.nn.Module:
    """Instantiate the network, giving it the data's input shape and number of classes.

    Also merged in: the datamodule's ``model_kwargs()`` (e.g. ``vocab_size`` of a text dataset),
    and, for a model config with keys ``data_mean``/``data_std`` left null (the fine-tuner), the
    statistics the data was normalised with, so the net can recover raw pixels.
    """
    kwargs = dict(datamodule.model_kwargs()) if hasattr(datamodule, "model_kwargs") else {}
    if model_cfg.get("data_mean", 0) is None and model_cfg.get("data_std", 0) is None:
        normalized = getattr(datamodule, "normalize", False)
        kwargs["data_mean"] = datamodule.mean.flatten().tolist() if normalized else [0.0]
        kwargs["data_std"] = datamodule.std.flatten().tolist() if normalized else [1.0]
    return instantiate(
        model_cfg,
        input_shape=list(datamodule.input_shape),
        num_classes=datamodule.num_classes,
        **kwargs,
    )


def build_module(cfg: DictConfig, net: torch.nn.Module) -> Classifier:
    """Wrap ``net`` in the Classifier with the optimizer and scheduler partials of ``cfg``."""
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return instantiate(
        cfg.module, net=net, optimizer=instantiate(cfg.optimizer), scheduler=scheduler
    )


def build_trainer(cfg: DictConfig, extra_callbacks: list[Any] | None = None) -> L.Trainer:
    """Instantiate the Trainer with the configured callbacks and loggers."""
    callbacks = _instantiate_group(cfg.get("callbacks")) + _instantiate_group(
        cfg.get("diagnostics")
    )
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))  # no secret in ckpt or logs
    callbacks += [ConfigInCheckpoint(resolved), LogResolvedConfig(resolved)]
    callbacks += extra_callbacks or []
    loggers = _instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: the LR monitor has nowhere to write and Lightning refuses it
        callbacks = [
            c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)
        ]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def _final(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (tmp file + rename): never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the configured model; write and return the run's metrics."""
    ckpt_path = validate_train_config(cfg)  # bad values: one clear line, before any data loads
    check_accelerator(cfg.trainer)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out_dir = Path(cfg.paths.output_dir)
    datamodule = build_data(cfg)
    net = build_net(cfg.model, datamodule)
    module = build_module(cfg, net)
    trainer = build_trainer(cfg, extra_callbacks=finetune_callbacks(net))  # [] unless finetune
    n_params = count_parameters(net)
    log.info("data  %s", datamodule.describe())
    log.info("model %s, %s parameters", type(net).__name__, f"{n_params:,}")

    if ckpt_path:
        log.info("resume from %s", ckpt_path)
    start = time.perf_counter()
    try:  # weights_only: a resumed checkpoint is never unpickled as code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except DivergenceError as e:  # metrics.json records the failure; cli exits non-zero
        if trainer.is_global_zero:
            write_json(out_dir / "metrics.json", {
                "status": "diverged", "error": str(e), "epochs": int(trainer.current_epoch),
                "steps": int(trainer.global_step), "params": n_params,
                "model": type(net).__name__, "output_dir": str(out_dir),
            })  # fmt: skip
        raise
    fit_seconds = time.perf_counter() - start
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    test_metrics: dict[str, float] = {}
    if cfg.get("test", True):
        results = trainer.test(module, datamodule=datamodule, verbose=False)
        test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}

    steps = int(trainer.global_step)
    samples = module.train_samples * trainer.world_size
    metrics = {
        "status": "ok",
        "train/loss": _final(fit_metrics, "train/loss_epoch") or _final(fit_metrics, "train/loss"),
        "train/acc": _final(fit_metrics, "train/acc"),
        "val/loss": _final(fit_metrics, "val/loss"),
        "val/acc": _final(fit_metrics, "val/acc"),
        "test/loss": _final(test_metrics, "test/loss"),
        "test/acc": _final(test_metrics, "test/acc"),
        "epochs": int(trainer.current_epoch),
        "steps": steps,
        "params": n_params,
        "fit_seconds": round(fit_seconds, 3),
        "train_samples_per_second": round(samples / fit_seconds, 1) if fit_seconds > 0 else None,
        "model": type(net).__name__,
        "data": getattr(datamodule, "name", type(datamodule).__name__),
        "output_dir": str(out_dir),
    }
    if trainer.is_global_zero:
        write_json(out_dir / "metrics.json", metrics)
    finish_wandb()  # the next job of a sweep (same process) gets its own wandb run
    acc = metrics["test/acc"]
    log.info(
        "done  %s (%s params): test/acc %s; outputs in %s",
        type(net).__name__,
        f"{n_params:,}",
        "n/a" if acc is None or math.isnan(acc) else f"{acc:.4f}",
        out_dir,
    )
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the checkpoint ``cfg.ckpt_path`` on its data's test split; write metrics.json."""
    ckpt_file = validate_eval_config(cfg)
    check_accelerator(cfg.trainer)
    out_dir = Path(cfg.paths.output_dir)
    checkpoint = load_checkpoint(ckpt_file)
    saved = OmegaConf.create(checkpoint[CONFIG_KEY])
    # The data of the checkpoint's own run unless eval was given data=... explicitly.
    data_cfg = cfg.data if cfg.get("data") else saved.data
    run_cfg = OmegaConf.merge(saved, {"data": data_cfg})
    datamodule = build_data(run_cfg)
    net = build_net(saved.model, datamodule)
    module = build_module(saved, net)
    module.load_state_dict(checkpoint["state_dict"])
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {
        "status": "ok",
        "ckpt_path": str(ckpt_file),
        "test/loss": float(results[0]["test/loss"]),
        "test/acc": float(results[0]["test/acc"]),
        "params": count_parameters(net),
        "data": getattr(datamodule, "name", type(datamodule).__name__),
    }
    if trainer.is_global_zero:
        write_json(out_dir / "metrics.json", metrics)
    log.info("eval  %s: test/acc %.4f; outputs in %s", ckpt_file, metrics["test/acc"], out_dir)
    return metrics
