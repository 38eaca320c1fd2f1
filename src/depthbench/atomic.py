"""The one way depthbench writes a file that someone may read, or a kill may interrupt.

``atomic_write(path)`` opens a temporary file beside ``path``; when the block ends without an
error it is flushed, fsynced and renamed over ``path`` (``os.replace`` is atomic on POSIX), and
the folder is fsynced so the rename itself is on disk. A reader or a process killed at any moment
sees the old file or the new one, never half of one. On an error the temporary file is removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _fsync_dir(folder: Path) -> None:
    # the rename reaches the disk only when the folder's entry is flushed
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path, per_process: bool = False) -> Path:
    """The temporary file ``atomic_write`` fills for ``path``.

    One fixed name (``<name>.tmp``), so the next write replaces what a killed one left; with
    ``per_process``, a name of this process's own (``.<name>.<pid>.tmp``) for files that several
    processes may write at once (parallel sweep jobs: the data cache, Hydra's saved configs).
    """
    return path.with_name(f".{path.name}.{os.getpid()}.tmp" if per_process else f"{path.name}.tmp")


@contextmanager
def atomic_write(
    path: str | Path, mode: str = "w", *, per_process: bool = False, **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """``with atomic_write(path) as f: ...``: ``f`` is the open temporary file (``mode`` "w" or
    "wb", further ``open`` arguments such as ``newline=""``); ``path`` appears whole on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, per_process)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str, *, per_process: bool = False) -> Path:
    """Write ``text`` to ``path`` with :func:`atomic_write`; return the path."""
    with atomic_write(path, per_process=per_process, encoding="utf-8") as f:
        f.write(text)
    return Path(path)
