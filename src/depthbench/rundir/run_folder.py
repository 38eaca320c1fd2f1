"""A run folder belongs to one run: never overwritten by another run, never shared by two.

Two checks, both before anything is written to the folder:

* **results**: a folder that holds a run's results (``metrics.json`` of a run that trained or
  evaluated, a checkpoint, a CSV history) takes only that run's own continuation
  (``ckpt_path=auto``, ``last`` or a checkpoint inside it); anything else is refused with one
  line that names the two ways on. A ``failed`` record of a refused command (nothing trained)
  is not a result: the corrected command may use the folder. A continuation of a run that
  already finished (status ``ok``, and ``trainer.max_epochs``/``max_steps`` not raised) changes
  nothing and says so.
* **lock**: ``.depthbench.lock`` in the folder, held with ``flock`` for the run's life, keeps a
  second process out. The kernel releases the lock when its process ends, however it ends, so a
  lock file left by a killed run (a dead pid) is stale and taken over; on a file system without
  ``flock`` the pid written in the file decides.

:class:`RunFolderClaim` (a Hydra callback, ``conf/hydra/default.yaml``) runs both checks before
Hydra saves ``.hydra/*.yaml`` or opens the log; ``run.train`` runs them too (also when called
from Python, and for each job of a multirun).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from depthbench.errors import ConfigError

LOCK_FILE = ".depthbench.lock"
METRICS_FILE = "metrics.json"  # the name metrics_file.METRICS_FILE writes (no Lightning import)
# files whose presence means a run wrote results into the folder (metrics.json: see below)
RESULT_FILES = ("csv/metrics.csv", "predictions.csv", "confusion.csv")
LIMIT_KEYS = ("max_epochs", "max_steps")
CONTINUE_VALUES = ("auto", "last")

# folders this process holds the lock of: resolved path -> (file descriptor, depth)
_HELD: dict[str, tuple[int, int]] = {}


class RunFolderError(ConfigError):
    """The run folder holds another run's results, or another process is running in it.

    Nothing is recorded in such a folder: it is not this run's.
    """


class AlreadyFinished(Exception):  # noqa: N818 (not an error: the run has nothing left to do)
    """A continuation (``ckpt_path=auto``) of a run that already finished: nothing to do."""

    def __init__(self, message: str, metrics: dict[str, Any]) -> None:
        super().__init__(message)
        self.metrics = metrics


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's ``metrics.json`` (``{}`` when unreadable), or None when it has none."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: treated as results, never overwritten
    return record if isinstance(record, dict) else {}


def results_in(folder: Path) -> list[str]:
    """The files of ``folder`` (relative names) that are a run's results; empty: none."""
    found: list[str] = []
    record = read_record(folder)
    refused = record is not None and record.get("status") == "failed" and not record.get("steps")
    if record is not None and not refused:
        found.append(METRICS_FILE)
    found += [f"checkpoints/{p.name}" for p in sorted((folder / "checkpoints").glob("*.ckpt"))]
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


def _holder(path: Path) -> str:
    try:
        text = path.read_text().split()
    except OSError:
        return "another process"
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "another process"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _busy(folder: Path, path: Path) -> RunFolderError:
    return RunFolderError(
        f"{folder} is in use by another run ({_holder(path)}); wait for it to end, or start "
        "this run in a new folder (leave hydra.run.dir unset, or hydra.run.dir=NEW_DIR)"
    )


def _lock_without_flock(folder: Path, path: Path, fd: int) -> None:
    """A file system without ``flock``: the pid in the lock file decides (dead: stale)."""
    try:
        pid_text, host = path.read_text().split()[:2]
        taken = host == socket.gethostname() and _pid_alive(int(pid_text))
    except (OSError, ValueError):
        taken = False
    if taken and int(pid_text) != os.getpid():
        os.close(fd)
        raise _busy(folder, path)


def lock(folder: Path) -> None:
    """Take the folder's lock for this process (re-entrant); raise RunFolderError when another
    process holds it. Released by :func:`unlock` or, at the latest, when the process ends."""
    key = str(folder.resolve())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(folder, path) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                os.close(fd)
                raise
            _lock_without_flock(folder, path, fd)
            break
        try:  # the holder may have removed the file between our open and our flock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    _HELD[key] = (fd, 1)


def unlock(folder: Path) -> None:
    """Release one :func:`lock` of this process; the last one removes the lock file."""
    key = str(folder.resolve())
    if key not in _HELD:
        return
    fd, depth = _HELD.pop(key)
    if depth > 1:
        _HELD[key] = (fd, depth - 1)
        return
    try:
        (Path(key) / LOCK_FILE).unlink(missing_ok=True)  # removed while still locked
    finally:
        os.close(fd)


@atexit.register
def _unlock_all() -> None:
    for key in list(_HELD):
        _HELD[key] = (_HELD[key][0], 1)
        unlock(Path(key))


def is_locked_here(folder: Path) -> bool:
    """Whether this process holds the folder's lock (its claim was checked already)."""
    return str(folder.resolve()) in _HELD


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
    path = folder / ".hydra" / "config.yaml"
    try:
        trainer = OmegaConf.to_container(OmegaConf.load(path).get("trainer") or {})
    except Exception:  # absent or unreadable: unknown
        return None
    return trainer if isinstance(trainer, dict) else None


# keys that may differ between a run and its continuation (``ckpt_path=auto`` finds the run)
NOT_THE_CONFIG = ("hydra", "paths", "ckpt_path")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` of a nested container (lists stay values)."""
    if not isinstance(node, Mapping):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def comparable(config: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A run's config as flat ``key: value`` without ``hydra.*``, ``paths.*``, ``ckpt_path``
    (unresolved, so interpolations of the run folder compare equal)."""
    container = (
        OmegaConf.to_container(config, resolve=False)
        if isinstance(config, DictConfig)
        else dict(config)
    )
    assert isinstance(container, dict)
    return {k: v for k, v in _flat(container).items() if k.split(".")[0] not in NOT_THE_CONFIG}


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys of two ``comparable`` configs whose values differ, sorted."""
    return sorted(k for k in set(a) | set(b) if a.get(k, "<unset>") != b.get(k, "<unset>"))


def in_use(folder: Path) -> bool:
    """Whether another process holds ``folder``'s lock (a run going on there)."""
    path = folder / LOCK_FILE
    if not path.is_file() or is_locked_here(folder):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def interrupted_runs(parent: Path) -> list[Path]:
    """The folders under ``parent`` of runs that stopped before finishing (interrupted, or
    killed: a last.ckpt and no metrics.json), not in use, newest checkpoint first."""
    found = []
    for folder in parent.iterdir() if parent.is_dir() else ():
        last = folder / "checkpoints" / "last.ckpt"
        record = read_record(folder)
        stopped = record is None or record.get("status") == "interrupted"
        if last.is_file() and stopped and not in_use(folder):
            found.append((last.stat().st_mtime, folder))
    return [folder for _, folder in sorted(found, reverse=True)]


def find_run_to_continue(config: DictConfig, parent: Path) -> tuple[Path | None, str]:
    """The newest interrupted run under ``parent`` whose config is this one's (but for
    ``NOT_THE_CONFIG``), and the line that says what ``ckpt_path=auto`` does."""
    wanted = comparable(config)
    nearest: tuple[int, Path, list[str]] | None = None
    for folder in interrupted_runs(parent):
        try:
            saved = comparable(OmegaConf.load(folder / ".hydra" / "config.yaml"))
        except Exception:  # no (readable) config: not comparable
            continue
        differ = differing_keys(saved, wanted)
        if not differ:
            return folder, f"ckpt_path=auto: continuing the interrupted run in {folder}"
        if nearest is None or len(differ) < nearest[0]:
            nearest = (len(differ), folder, differ)
    line = f"ckpt_path=auto: no interrupted run of this config under {parent}; starting fresh"
    if nearest is not None:
        _, folder, differ = nearest
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        line += f" (the nearest, {folder}, differs in {shown})"
    return None, line


def resume_command(out_dir: Path) -> str:
    """The command that continues this run in ``out_dir``: the command line as given, with
    ``hydra.run.dir`` and ``ckpt_path=auto`` in place of any it had."""
    import shlex

    from hydra.core.hydra_config import HydraConfig

    program = Path(sys.argv[0]).name if sys.argv else "train.py"
    program = f"python {program}" if program.endswith(".py") else program
    given = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in given if o.split("=")[0].lstrip("+~") not in ("hydra.run.dir", "ckpt_path")]
    words = [*kept, f"hydra.run.dir={out_dir}", "ckpt_path=auto"]
    return " ".join([program, *(shlex.quote(w) for w in words)])


def _run_dir_given(config: DictConfig) -> bool:
    """Whether the command line set ``hydra.run.dir`` (else: a new timestamped folder)."""
    task = config.hydra.overrides.get("task") or []
    return any(str(o).split("=")[0].lstrip("+~") == "hydra.run.dir" for o in task)


def _exit(message: str, code: int) -> None:
    print(message, file=sys.stderr)  # Hydra's logging is not set up yet
    sys.exit(code)


class RunFolderClaim(Callback):
    """Hydra callback: claim the run folder (single run) or check the sweep folder (multirun)
    before Hydra writes to it. Only global rank 0 claims: the other DDP ranks join its folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from depthbench.rundir.metrics_file import is_rank_zero

        if not is_rank_zero():
            return
        folder = Path(str(config.hydra.run.dir))
        auto = str(config.get("ckpt_path")) == "auto" and "module" in config
        if auto and not (folder / "checkpoints" / "last.ckpt").is_file():
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
