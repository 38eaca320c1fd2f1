"""``train(cfg)`` and ``evaluate(cfg)``: instantiate -> fit -> test -> ``metrics.json``.

The entry points (``train.py``, ``eval.py``, ``depthbench-train``) are thin Hydra wrappers
around these two functions, so tests and notebooks can call them with a composed config.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from depthbench.core.build import (
    build_data,
    build_module,
    build_net,
    build_trainer,
    count_parameters,
    progress_bar_wanted,
    run_callbacks,
)
from depthbench.core.callbacks.checkpointing import AtomicCheckpointIO
from depthbench.core.callbacks.epoch_log import EpochLog, summary_line
from depthbench.core.callbacks.interrupt import interrupt_signal
from depthbench.core.callbacks.predictions import CollectPredictions
from depthbench.core.callbacks.reliability import DivergenceGuard
from depthbench.core.callbacks.run_config import CONFIG_KEY
from depthbench.core.config_values import (
    check_accelerator,
    check_data_keys,
    validate_eval_config,
    validate_train_config,
)
from depthbench.core.confusion import explain_predictions
from depthbench.core.run_folder.checkpoint import (
    check_data_fits,
    check_resume_fits,
    load_checkpoint,
    load_net,
    stored_data_spec,
)
from depthbench.core.run_folder.metrics_file import is_rank_zero, write_metrics
from depthbench.core.run_folder.output_dir import check_output_dir
from depthbench.core.run_folder.ownership import (
    AlreadyFinished,
    claimed,
    continuation_line,
    continues_run,
    finished_message,
)
from depthbench.core.run_folder.resume import read_record, resume_command
from depthbench.core.tracking import finish_wandb, remember_wandb_id
from depthbench.data.spec import class_names
from depthbench.errors import DivergenceError, error_line

log = logging.getLogger("depthbench")


def _final(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def _fit_outcome(
    error: BaseException, trainer: L.Trainer, guard: DivergenceGuard
) -> tuple[str, dict[str, Any]]:
    """The ``metrics.json`` status and fields of a fit that ended with ``error``."""
    if isinstance(error, DivergenceError):
        step = guard.diverged_at_step  # None: found by the checkpoint's weight check
        return "diverged", {
            "diverged_at_step": int(trainer.global_step) if step is None else step,
            "last_finite_loss": guard.last_finite_loss,
            "error": str(error),
        }
    if isinstance(error, (KeyboardInterrupt, SystemExit)):  # Lightning: Ctrl+C -> SystemExit
        signum = interrupt_signal(error)
        return "interrupted", {} if signum is None else {"signal": signal.Signals(signum).name}
    return "failed", {"error": error_line(error)}


def _check_not_finished(cfg: DictConfig, checkpoint: dict[str, Any], out_dir: Path) -> float:
    """Raise AlreadyFinished when this command continues its folder's finished run without
    raising its limits (the checkpoint holds the trainer config it finished under); with them
    raised, say in one line what the learning rate does (``continuation_line``; a schedule that
    cannot be stretched is refused). Returns the fit seconds of the run's earlier parts (0: a
    new run), which this part's are added to."""
    record = read_record(out_dir)
    if not record or not continues_run(cfg, out_dir):
        return 0.0
    old_trainer = checkpoint.get(CONFIG_KEY, {}).get("trainer")
    message = finished_message(out_dir, record, old_trainer, cfg.trainer)
    if message:
        raise AlreadyFinished(message, record)
    if record.get("status") == "ok":
        log.info("%s", continuation_line(record, cfg.get("scheduler"), cfg.trainer))
    return float(record.get("fit_seconds") or 0.0)


def train(cfg: DictConfig, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train and test the configured model; write and return the run's metrics. ``callbacks``
    (Lightning callbacks) join the ones the config lists, for a caller that measures the run.

    A fit that diverges, is interrupted or fails still writes ``metrics.json`` (status
    ``diverged``/``interrupted``/``failed``), then re-raises; the record travels with the
    exception as ``error.depthbench_metrics`` (``sweeps.run_sweep_job`` reads it). A fit stopped
    by SIGINT/SIGTERM (``GracefulInterrupt``) raises ``SystemExit(128 + signal)``.

    The run folder is this run's alone (``depthbench.core.run_folder.ownership``): a folder
    with another run's results, or one in use by another process, raises RunFolderError before
    anything is written; continuing a run that already finished returns its metrics, changing
    nothing.
    """
    ckpt_path = validate_train_config(cfg)  # bad values: one clear line, before any data loads
    out_dir = Path(cfg.paths.output_dir)
    check_output_dir(out_dir)  # unwritable or full: one line, before any data loads
    if not is_rank_zero():  # another DDP rank: rank 0 holds the folder
        return _train(cfg, ckpt_path, out_dir, callbacks)
    try:
        with claimed(out_dir, cfg):  # another run's folder, or in use: one line, nothing written
            return _train(cfg, ckpt_path, out_dir, callbacks)
    except AlreadyFinished as done:
        log.info("%s", done)
        return done.metrics


def _train(
    cfg: DictConfig, ckpt_path: str | None, out_dir: Path, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """``train`` in a folder this process may write to."""
    check_accelerator(cfg.trainer)
    # the one read of the checkpoint: corrupt or foreign files fail here, before any data loads
    checkpoint = load_checkpoint(ckpt_path) if ckpt_path else None
    earlier = _check_not_finished(cfg, checkpoint, out_dir) if checkpoint is not None else 0.0
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if checkpoint and cfg.get("logger") and "wandb" in cfg.logger:  # continue its wandb run
        remember_wandb_id(cfg.logger.wandb.get("save_dir", out_dir), checkpoint)
    datamodule = build_data(cfg)
    net = build_net(cfg.model, datamodule)
    module = build_module(cfg, net)
    if checkpoint:  # another model than the checkpoint's: one line now, not a state-dict dump
        check_resume_fits(checkpoint, module, cfg.model)
    trainer = build_trainer(cfg, run_callbacks(cfg, net, extra=callbacks))
    io = trainer.strategy.checkpoint_io
    if checkpoint and ckpt_path and isinstance(io, AtomicCheckpointIO):  # fit reads no file
        io.preload(ckpt_path, checkpoint)
    del checkpoint  # the Trainer owns it now
    guard = next(c for c in trainer.callbacks if isinstance(c, DivergenceGuard))
    epoch_log = next(c for c in trainer.callbacks if isinstance(c, EpochLog))
    n_params = count_parameters(net)
    log.info("data  %s", datamodule.describe())  # the model's line: EpochLog, once fit starts

    def run_fields() -> dict[str, Any]:  # what every metrics.json of this run holds
        return {
            "model": type(net).__name__,
            "data": getattr(datamodule, "name", type(datamodule).__name__),
            "params": n_params,
            "epochs": int(trainer.current_epoch),
            "steps": int(trainer.global_step),
        }

    if ckpt_path:
        log.info("resume from %s", ckpt_path)
    start = time.perf_counter()
    try:  # weights_only: a resumed checkpoint is never unpickled as code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except BaseException as e:  # recorded in metrics.json; cli exits non-zero
        status, fields = _fit_outcome(e, trainer, guard)
        record = {"status": status, **run_fields(), **fields, "output_dir": str(out_dir),
                  "fit_seconds": round(earlier + time.perf_counter() - start, 3)}  # fmt: skip
        if trainer.is_global_zero:
            write_metrics(out_dir, **record)
        e.depthbench_metrics = record  # for sweeps.run_sweep_job's jobs.jsonl
        signum = interrupt_signal(e) if status == "interrupted" else None
        if signum is not None:
            log.warning("interrupted by %s at step %d; resume with: %s", record["signal"],
                        record["steps"], resume_command(out_dir))  # fmt: skip
            finish_wandb(exit_code=128 + signum)
            raise SystemExit(128 + signum) from e
        raise
    fit_seconds = earlier + time.perf_counter() - start  # every part of the run
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    test_metrics: dict[str, float] = {}
    if cfg.get("test", True):
        results = trainer.test(module, datamodule=datamodule, verbose=False)
        test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}

    samples = module.train_samples * trainer.world_size
    train_seconds = epoch_log.train_seconds  # validation excluded
    metrics = finished_metrics(
        fit_metrics,
        test_metrics,
        run_fields(),
        fit_seconds=fit_seconds,
        train_seconds=train_seconds,
        samples=samples,
        out_dir=out_dir,
    )
    if trainer.is_global_zero:
        write_metrics(out_dir, **metrics)
    finish_wandb()  # the next job of a sweep (same process) gets its own wandb run
    log.info("done  %s", summary_line(metrics))
    return metrics


def finished_metrics(
    fit_metrics: dict[str, float],
    test_metrics: dict[str, float],
    run_fields: dict[str, Any],
    *,
    fit_seconds: float,
    train_seconds: float,
    samples: int,
    out_dir: Path,
) -> dict[str, Any]:
    """The ``metrics.json`` record of a fit that finished (``status`` ok), from the fit's final
    logged metrics and the test's; ``train`` and the seeds trained together
    (``depthbench.core.together``) both write it."""
    return {
        "status": "ok",
        "train/loss": _final(fit_metrics, "train/loss_epoch") or _final(fit_metrics, "train/loss"),
        "train/acc": _final(fit_metrics, "train/acc"),
        "val/loss": _final(fit_metrics, "val/loss"),
        "val/acc": _final(fit_metrics, "val/acc"),
        "test/loss": _final(test_metrics, "test/loss"),
        "test/acc": _final(test_metrics, "test/acc"),
        **run_fields,
        "fit_seconds": round(fit_seconds, 3),
        "train_seconds": round(train_seconds, 3),
        "train_samples_per_second": (
            round(samples / train_seconds, 1) if train_seconds > 0 else None
        ),
        "output_dir": str(out_dir),
    }


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the checkpoint ``cfg.ckpt_path`` on its data's test split; write metrics.json.

    The run folder also gets the confusion matrix (``confusion.csv``/``.png``), every test
    example's prediction and, for images, the most confidently wrong ones
    (``depthbench.core.confusion``); ``metrics.json`` holds the per-class accuracy.
    """
    ckpt_file = validate_eval_config(cfg)
    check_accelerator(cfg.trainer)
    out_dir = Path(cfg.paths.output_dir)
    checkpoint = load_checkpoint(ckpt_file)
    net, saved = load_net(checkpoint)
    run_cfg = saved.copy()
    if cfg.get("data"):  # data=... replaces the run's data (resolved with eval's paths)
        given = OmegaConf.to_container(cfg.data, resolve=True)
        with open_dict(run_cfg):
            if "_target_" in cfg.data:
                run_cfg.data = given
            else:  # data.KEY=VALUE alone: keys of the run's own data change
                check_data_keys(given, run_cfg.data)
                run_cfg.data = OmegaConf.merge(run_cfg.data, given)
    datamodule = build_data(run_cfg)
    if cfg.get("data"):
        check_data_fits(stored_data_spec(checkpoint), datamodule, type(net).__name__)
    module = build_module(saved, net)
    collector = CollectPredictions()  # the same test pass gives the confusion matrix
    trainer = instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[collector],
        enable_progress_bar=progress_bar_wanted(cfg.trainer),
    )
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    explained: dict[str, Any] = {}
    if trainer.is_global_zero:  # the matrix is over every rank; predictions only with one rank
        predictions = collector.result() if trainer.world_size == 1 else None
        test_x = getattr(datamodule, "splits", {}).get("test", (None,))[0]
        explained = explain_predictions(out_dir, class_names(datamodule), collector.matrix,
                                        collector.per_class, predictions, test_x)  # fmt: skip
    metrics = {
        "status": "ok",
        "ckpt_path": str(ckpt_file),
        "test/loss": float(results[0]["test/loss"]),
        "test/acc": float(results[0]["test/acc"]),
        **explained,  # test/acc_per_class, test/examples
        "model": type(net).__name__,
        "data": getattr(datamodule, "name", type(datamodule).__name__),
        "params": count_parameters(net),
        "steps": int(checkpoint.get("global_step", 0)),  # trained (epochs: not stored exactly)
        "output_dir": str(out_dir),
    }
    if trainer.is_global_zero:
        write_metrics(out_dir, **metrics)
    log.info("eval  %s: test/acc %.4f; outputs in %s", ckpt_file, metrics["test/acc"], out_dir)
    return metrics
