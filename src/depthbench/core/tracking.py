"""Experiment tracking: the wandb logger factory and image logging.

- ``wandb_logger(...)`` (``logger=wandb``) builds Lightning's ``WandbLogger`` with the project,
  entity, group and tags of the config; the runs of one Hydra multirun share a group (the sweep
  folder's name). Without an API key, or when the wandb server cannot be reached, it runs offline
  and says how to ``wandb sync`` later: a run never blocks on the network.
- A run folder keeps its wandb run id (``<save_dir>/wandb/run-id``, also in every checkpoint),
  so a resume continues the same wandb run (``resume="allow"``); offline, the resume is a new
  offline run folder with the same id, which ``wandb sync`` uploads into that run, in order.
- ``log_image(trainer, key, image)``: one call for diagnostics that works for wandb, TensorBoard and
  is a no-op for CSV.

Secrets are removed by ``depthbench.core.run_folder.redaction``; the run config is logged by
``depthbench.core.callbacks.run_config.LogResolvedConfig``.
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from depthbench.core.run_folder.redaction import redact

log = logging.getLogger("depthbench")


# ---- wandb -----------------------------------------------------------------------------------
def _wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""


def wandb_api_key_available() -> bool:
    """True when wandb could log in: ``WANDB_API_KEY`` is set or ``~/.netrc`` has the host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(_wandb_host()) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# this process's own reasons for going offline (Lightning then sets WANDB_MODE=dryrun)
_AUTO_OFFLINE: list[str] = []


def wandb_offline_reason() -> str | None:
    """Why wandb must run offline here (no key, no network), or None when online can work.

    ``WANDB_MODE`` set by the user wins: ``offline``/``disabled`` are honoured as given.
    """
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode == "dryrun" and _AUTO_OFFLINE:  # set by Lightning after our own decision
        return _AUTO_OFFLINE[-1]
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    if mode == "online":
        return None
    if not wandb_api_key_available():
        _AUTO_OFFLINE.append("no WANDB_API_KEY and no ~/.netrc entry")
        return _AUTO_OFFLINE[-1]
    host = _wandb_host()
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    if not _reachable(host, url.port or (80 if url.scheme == "http" else 443)):
        _AUTO_OFFLINE.append(f"{host} is not reachable")
        return _AUTO_OFFLINE[-1]
    return None


# the checkpoint key and run-folder file that keep a run's wandb id across resumes
WANDB_ID_KEY = "depthbench_wandb_id"
WANDB_ID_FILE = "run-id"


def wandb_run_id(save_dir: str | Path, run_id: str | None = None) -> tuple[str, bool]:
    """The wandb run id of the run folder ``save_dir`` and whether it continues an earlier run.

    The id is read from ``<save_dir>/wandb/run-id``; without that file, ``run_id`` (e.g. from a
    checkpoint) or a new id is written there first.
    """
    path = Path(save_dir) / "wandb" / WANDB_ID_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip(), True
    if not run_id:
        from wandb.sdk.lib.runid import generate_id

        run_id = generate_id()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id, False


def remember_wandb_id(save_dir: str | Path, checkpoint: dict[str, Any]) -> None:
    """Keep a checkpoint's wandb id for a run resumed from it into the folder ``save_dir``."""
    if checkpoint.get(WANDB_ID_KEY):
        wandb_run_id(save_dir, str(checkpoint[WANDB_ID_KEY]))


def sweep_group() -> str | None:
    """The multirun's sweep folder name (shared by all its jobs); None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.sweep.dir).name


def _job_name() -> str | None:
    # a sweep job is named by its overrides (`model.depth=8,optimizer.lr=0.01`)
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return redact(HydraConfig.get().job.override_dirname) or None


def wandb_logger(
    *,
    project: str = "depthbench",
    entity: str | None = None,
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    job_type: str | None = None,
    save_dir: str = ".",
    offline: bool = False,
    log_model: bool | str = False,
    **kwargs: Any,
) -> WandbLogger:
    """Lightning's ``WandbLogger``, offline when wandb could not log in or reach its server.

    ``group`` defaults to the multirun's sweep folder name, so a sweep's runs are grouped;
    ``name`` to the job's overrides; wandb's files go to ``<save_dir>/wandb/``.
    A run folder keeps its run id (:func:`wandb_run_id`): a resume in it continues that run.
    Extra keyword arguments go to ``wandb.init``.
    """
    import wandb

    reason = "offline=true" if offline else wandb_offline_reason()
    mode = "disabled" if os.environ.get("WANDB_MODE", "").lower() == "disabled" else None
    save_path = Path(save_dir)
    save_path.mkdir(parents=True, exist_ok=True)
    run_id, resumed = wandb_run_id(save_path, kwargs.pop("id", None))
    if reason is not None and mode is None:
        log.warning(
            "wandb: offline (%s); %supload later with: wandb sync %s",
            reason,
            f"run {run_id} continues in a new offline run folder, " if resumed else "",
            save_path / "wandb" / "offline-run-*",
        )
    if reason is not None and log_model:
        log.warning("wandb: log_model=%s ignored offline (checkpoints stay in the run folder)",
                    log_model)  # fmt: skip
        log_model = False
    # no code, git diff or argv snapshots: the command line may hold secrets
    settings = wandb.Settings(
        save_code=False, disable_git=True, x_disable_meta=True, init_timeout=60.0
    )
    logger = WandbLogger(
        project=project,
        entity=entity,
        group=group or sweep_group(),
        name=name or _job_name(),
        tags=list(tags or []),
        job_type=job_type,
        save_dir=str(save_path),
        offline=reason is not None,
        log_model=log_model,
        settings=settings,
        id=run_id,
        resume="allow",  # the same run when the id exists on the server, else a new one
        **({"mode": mode} if mode else {}),
        **kwargs,
    )
    # Lightning always passes anonymous=None, which wandb >= 0.19 warns about on every run
    init_args = getattr(logger, "_wandb_init", {})
    if init_args.get("anonymous", 0) is None:
        del init_args["anonymous"]
    return logger


def finish_wandb(exit_code: int = 0) -> None:
    """Close the current wandb run, so the next job of a sweep (same process) starts its own."""
    import sys

    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)


# ---- images -----------------------------------------------------------------------------------
def log_image(
    trainer: L.Trainer, key: str, image: str | Path | Any, step: int | None = None
) -> None:
    """Log an image (a PNG path or a matplotlib figure) to the trainer's image-capable loggers.

    wandb gets a ``wandb.Image``, TensorBoard an image (``add_image``/``add_figure``); CSV and
    other loggers ignore it. Only rank zero logs.
    """
    if not trainer.is_global_zero:
        return
    step = trainer.global_step if step is None else step
    is_path = isinstance(image, (str, Path))
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(image) if is_path else image], step=step)
        elif isinstance(logger, TensorBoardLogger):
            if is_path:
                import matplotlib.image as mpimg

                pixels = mpimg.imread(str(image))  # (H, W, C) floats in [0, 1] for a PNG
                if pixels.ndim == 2:
                    pixels = pixels[..., None]
                logger.experiment.add_image(key, pixels, step, dataformats="HWC")
            else:
                logger.experiment.add_figure(key, image, step, close=False)
