"""A run folder belongs to one run: never overwritten by another run, never shared by two.

Two checks, both before anything is written to the folder:

* **results**: a folder that holds a run's results (``metrics.json`` of a run that trained or
  evaluated, a checkpoint, a CSV history) takes only that run's own continuation
  (``ckpt_path=auto``, ``last`` or a checkpoint inside it); anything else is refused with one
  line that names the two ways on. A ``failed`` record of a refused command (nothing trained)
  is not a result: the corrected command may use the folder. A continuation of a run that
  already finished (status ``ok``, and ``trainer.max_epochs``/``max_steps`` not raised) changes
  nothing and says so.
* **lock**: ``.depthbench.lock`` in the folder, held for the run's life, keeps a second
  process out (``folder_lock``).

A ``ckpt_path=auto`` in a fresh timestamped folder continues the newest interrupted run of the
same config (``resume``).

:class:`RunFolderClaim` (a Hydra callback, ``conf/hydra/default.yaml``) runs both checks before
Hydra saves ``.hydra/*.yaml`` or opens the log; ``run.train`` runs them too (also when called
from Python, and for each job of a multirun).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from depthbench.core.overrides import override_key
from depthbench.core.run_folder.commands import record_command
from depthbench.core.run_folder.folder_lock import RunFolderError, is_locked_here, lock, unlock
from depthbench.core.run_folder.layout import (
    CHECKPOINTS_DIR,
    COMMANDS_FILE,
    CONFUSION_FILE,
    HISTORY_DIR,
    HISTORY_FILE,
    HYDRA_DIR,
    LOCK_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    checkpoints_dir,
    config_path,
    last_checkpoint,
)
from depthbench.core.run_folder.resume import find_run_to_continue, read_record
from depthbench.errors import ConfigError

# files whose presence means a run wrote results into the folder (metrics.json: see below)
RESULT_FILES = (f"{HISTORY_DIR}/{HISTORY_FILE}", PREDICTIONS_FILE, CONFUSION_FILE)
LIMIT_KEYS = ("max_epochs", "max_steps")
CONTINUE_VALUES = ("auto", "last")


class AlreadyFinished(Exception):  # noqa: N818 (not an error: the run has nothing left to do)
    """A continuation (``ckpt_path=auto``) of a run that already finished: nothing to do."""

    def __init__(self, message: str, metrics: dict[str, Any]) -> None:
        super().__init__(message)
        self.metrics = metrics


def results_in(folder: Path) -> list[str]:
    """The files of ``folder`` (relative names) that are a run's results; empty: none."""
    found: list[str] = []
    record = read_record(folder)
    refused = record is not None and record.get("status") == "failed" and not record.get("steps")
    if record is not None and not refused:
        found.append(METRICS_FILE)
    found += [f"{CHECKPOINTS_DIR}/{p.name}" for p in sorted(checkpoints_dir(folder).glob("*.ckpt"))]
    found += [name for name in RESULT_FILES if (folder / name).is_file()]
    return found


def _limit(value: Any) -> float:
    """A Trainer limit as a number; -1 or null mean none (infinite)."""
    return float("inf") if value is None or value == -1 else float(value)


def finished_message(
    folder: Path, record: Mapping[str, Any], old_trainer: Mapping[str, Any] | None, trainer: Any
) -> str | None:
    """The "already finished" line when ``record`` (a metrics.json) is of a run that finished
    and ``trainer`` (this command's trainer config) does not raise its limits; else None.

    ``old_trainer``: the trainer config the run finished under (None: unknown, then the run's
    recorded epochs and steps stand for its limits).
    """
    if record.get("status") != "ok" or "epochs" not in record:
        return None
    trainer = trainer or {}
    if old_trainer is not None:
        raised = any(_limit(trainer.get(k)) > _limit(old_trainer.get(k)) for k in LIMIT_KEYS)
    else:
        done = {"max_epochs": record.get("epochs"), "max_steps": record.get("steps")}
        raised = not any(
            _limit(trainer.get(k)) <= float(done[k] or 0)
            for k in LIMIT_KEYS
            if trainer.get(k) not in (None, -1)
        )
    if raised:
        return None
    return (
        f"{folder} already finished at epoch {record['epochs']}; raise trainer.max_epochs to "
        "continue (nothing was changed)"
    )


# learning-rate schedules whose state fixes the length they were planned for: a finished run
# cannot train longer under them (torch's OneCycleLR stores total_steps and refuses to step on)
FIXED_LENGTH_SCHEDULES = ("onecycle",)


def continuation_line(record: Mapping[str, Any], scheduler: Any, trainer: Any) -> str:
    """What continuing a finished run (``record``, its metrics.json) with raised limits does to
    its learning rate, in one line; a ConfigError when the schedule cannot be stretched.

    The schedules of ``optim.schedulers`` are functions of (step, total steps) that a
    checkpoint does not store: the continued fit builds them for its new length, so the
    learning rate goes on where the new plan is at the run's last step (the end of the old
    plan was its minimum)."""
    name = str((scheduler or {}).get("_target_", "none")).rsplit(".", 1)[-1]
    epochs, limit = record.get("epochs"), (trainer or {}).get("max_epochs")
    if name in FIXED_LENGTH_SCHEDULES:
        raise ConfigError(
            f"the run finished its {name} learning-rate schedule at epoch {epochs}, and that "
            "schedule cannot be stretched (every further step would be past its end); train "
            f"a new run with trainer.max_epochs={limit} (leave ckpt_path unset)"
        )
    if name in ("none", "constant"):
        return f"continuing the finished run from epoch {epochs} to {limit} at its constant rate"
    return (
        f"continuing the finished run from epoch {epochs} to {limit}: its {name} learning-rate "
        f"schedule is re-planned for {limit} epochs and goes on from where that plan is at "
        f"epoch {epochs} (the old plan had reached its end)"
    )


# what a command leaves in its run folder before it trains: Hydra's config copies and log, the
# lock, the commands file, a refusal's metrics.json, a logger's empty start
BOOKKEEPING = (
    HYDRA_DIR,
    LOCK_FILE,
    COMMANDS_FILE,
    METRICS_FILE,
    HISTORY_DIR,
    "tensorboard",
    "wandb",
)


def discard_refused(folder: Path) -> bool:
    """Remove ``folder`` when a command refused before training made it: it holds no result
    (``results_in``), no checkpoint and nothing but bookkeeping (``BOOKKEEPING``, ``*.log``).
    Returns whether it was removed; a folder with anything else is left as it is."""
    import shutil

    if not folder.is_dir() or results_in(folder):
        return False
    if any(p.name not in BOOKKEEPING and p.suffix != ".log" for p in folder.iterdir()):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def continues_run(cfg: DictConfig | Mapping[str, Any], folder: Path) -> bool:
    """Whether a train command continues the run of ``folder``: ``ckpt_path`` is ``auto``,
    ``last`` or a file inside the folder. An eval config (it has no ``module``) never does."""
    if "module" not in cfg:
        return False
    value = cfg.get("ckpt_path")
    if value is None:
        return False
    if str(value) in CONTINUE_VALUES:
        return True
    path = Path(str(value)).expanduser().absolute()
    return path.is_relative_to(folder.absolute())


def check_results(folder: Path, cfg: DictConfig | Mapping[str, Any]) -> None:
    """Raise RunFolderError when ``folder`` holds results this command does not continue."""
    found = results_in(folder)
    if not found or continues_run(cfg, folder):
        return
    raise RunFolderError(
        f"{folder} holds another run's results ({', '.join(found[:3])}); start this run in a "
        f"new folder (leave hydra.run.dir unset, or hydra.run.dir=NEW_DIR), or continue that "
        f"run with ckpt_path=auto"
    )


@contextmanager
def claimed(folder: Path, cfg: DictConfig) -> Iterator[None]:
    """Hold ``folder`` for a run of ``cfg``: lock it, check its results, release at the end.

    Raises RunFolderError (another run's results, or in use) or AlreadyFinished. A folder this
    process holds already (claimed by :class:`RunFolderClaim` before Hydra wrote to it) is not
    checked again: Hydra has since replaced ``.hydra/config.yaml``.
    """
    checked = is_locked_here(folder)
    lock(folder)
    try:
        if not checked:
            check_results(folder, cfg)
        yield
    finally:
        unlock(folder)


def _old_trainer(folder: Path) -> dict[str, Any] | None:
    """The trainer config the folder's run was started with (Hydra's saved copy), if any."""
    path = config_path(folder)
    try:
        trainer = OmegaConf.to_container(OmegaConf.load(path).get("trainer") or {})
    except Exception:  # absent or unreadable: unknown
        return None
    return trainer if isinstance(trainer, dict) else None


def _run_dir_given(config: DictConfig) -> bool:
    """Whether the command line set ``hydra.run.dir`` (else: a new timestamped folder)."""
    task = config.hydra.overrides.get("task") or []
    return any(override_key(str(o)) == "hydra.run.dir" for o in task)


def _script() -> str:
    """How this process was started, as typed: ``python train.py``, ``depthbench train``."""
    name = sys.argv[0] if sys.argv else "train.py"
    return name if " " in name else f"python {Path(name).name}"


def _exit(message: str, code: int) -> None:
    print(message, file=sys.stderr)  # Hydra's logging is not set up yet
    sys.exit(code)


class RunFolderClaim(Callback):
    """Hydra callback: claim the run folder (single run) or check the sweep folder (multirun)
    before Hydra writes to it. Only global rank 0 claims: the other DDP ranks join its folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from depthbench.core.run_folder.metrics_file import is_rank_zero

        if not is_rank_zero():
            return
        folder = Path(str(config.hydra.run.dir))
        auto = str(config.get("ckpt_path")) == "auto" and "module" in config
        if auto and not last_checkpoint(folder).is_file():
            found, line = (
                (None, f"ckpt_path=auto: no checkpoint in {folder}; starting fresh")
                if _run_dir_given(config)
                else find_run_to_continue(config, folder.parent)
            )
            print(line, file=sys.stderr)  # Hydra's logging is not set up yet
            if found is not None:  # the job runs in the run's own folder
                with read_write(config.hydra), open_dict(config.hydra):
                    config.hydra.run.dir = str(found)
                folder = found
        try:
            lock(folder)
            check_results(folder, config)
        except RunFolderError as e:
            unlock(folder)
            _exit(f"{type(e).__name__}: {e}", 2)
        record = read_record(folder)
        if record and continues_run(config, folder):
            message = finished_message(folder, record, _old_trainer(folder), config.get("trainer"))
            if message:
                unlock(folder)
                _exit(message, 0)
        # before Hydra replaces .hydra/overrides.yaml: each command of the run is kept
        record_command(folder, _script(), list(config.hydra.overrides.get("task") or []))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        unlock(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir() or continues_run(config, sweep_dir):
            return
        if config.hydra.sweeper.get("storage"):  # a stored study numbers new jobs after its own
            return
        for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
            if results_in(job):
                _exit(
                    f"RunFolderError: {sweep_dir} holds another sweep's results ({job.name}/); "
                    "start this sweep in a new folder (leave hydra.sweep.dir unset, or "
                    "hydra.sweep.dir=NEW_DIR), or continue its jobs with ckpt_path=auto",
                    2,
                )
