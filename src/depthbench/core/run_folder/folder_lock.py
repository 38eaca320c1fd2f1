"""The lock of a run folder: ``.depthbench.lock``, held with ``flock`` for the run's life, keeps a
second process out of a folder a run is using.

The kernel releases the lock when its process ends, however it ends, so a lock file left by a
killed run (a dead pid) is stale and taken over; on a file system without ``flock`` the pid
written in the file decides. The lock is re-entrant within a process (the Hydra callback and
``run.train`` both take it).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import socket
from pathlib import Path

from depthbench.core.run_folder.layout import LOCK_FILE
from depthbench.errors import ConfigError

# folders this process holds the lock of: resolved path -> (file descriptor, depth)
_HELD: dict[str, tuple[int, int]] = {}


class RunFolderError(ConfigError):
    """The run folder holds another run's results, or another process is running in it.

    Nothing is recorded in such a folder: it is not this run's.
    """


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
