"""History files that survive a resume: rows logged before the resumed step are kept.

A run resumed into its own folder (``hydra.run.dir=R ckpt_path=auto``) continues every history
file it wrote: ``csv/metrics.csv``, ``gradflow.csv``, ``activations.csv``. The rule is the same
for all of them: at the start of training, rows with ``step`` before the step the run starts
from are kept, later ones (written by the pre-kill run after its last checkpoint, and about to
be written again) are dropped. So an interrupted-and-resumed run's files equal an uninterrupted
run's, row for row, in deterministic mode. A run that starts from step 0 starts its files anew.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its writer opens a folder that already
has one (Lightning PR #19446: "Previous log files in this directory will be deleted"), by
design: it cannot know the rows are wanted. :class:`ResumableCSVLogger` keeps them through the
writer's public ``metrics`` buffer and ``save()``.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from depthbench.atomic import atomic_write
from depthbench.core.run_folder import layout

# the suffix of a metrics.csv moved aside while Lightning's writer opens the folder
ASIDE_SUFFIX = ".resume"


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows (as written: strings) of a CSV file; empty when it is absent."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


def keep_rows_before(path: Path, step: int, header: list[str] | None = None) -> int:
    """Rewrite ``path`` with only its rows whose ``step`` is below ``step``; return how many.

    ``step`` 0 (a fresh start) leaves the header only. The file is replaced atomically (temp
    file + ``os.replace``): a kill leaves the old file or the new one. ``header``: the columns
    to write (default: the file's own; a writer that appends later expects its header). A file
    that does not exist is left absent.
    """
    columns, rows = read_rows(path)
    if not columns and header is None:
        return 0
    kept = [r for r in rows if _step(r) < step]
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header or columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    return len(kept)


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` that continues ``metrics.csv`` when a run resumes in its folder.

    Same arguments as ``CSVLogger``; by default it writes the run folder's history folder
    (``layout.HISTORY_DIR``, no version subfolder). When the writer opens a folder that holds a
    ``metrics.csv``, its rows are moved aside (``metrics.csv.resume``, so a kill at any moment
    leaves them in one of the two files), Lightning's writer starts the file, and the rows are
    written back through the writer before anything else. ``KeepHistory`` (``callbacks/
    history.py``) then drops the rows at or after the step the run resumes from
    (:meth:`keep_rows_before`).
    """

    def __init__(
        self, save_dir: str | Path, name: str | None = None, version: str | int = "", **kwargs: Any
    ) -> None:
        name = layout.HISTORY_DIR if name is None else name
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self._continued = False

    @property
    def metrics_path(self) -> Path:
        """The ``metrics.csv`` this logger writes."""
        return Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE

    @property
    def experiment(self) -> ExperimentWriter:
        """Lightning's writer, opened on the first access with the folder's earlier rows kept."""
        if self._continued:
            return super().experiment
        self._continued = True
        path = self.metrics_path
        aside = path.with_name(path.name + ASIDE_SUFFIX)
        if rank_zero_only.rank == 0 and path.is_file() and not aside.exists():
            os.replace(path, aside)  # an aside left by a kill already holds the rows
        with warnings.catch_warnings():  # nothing is deleted: the rows come back below
            warnings.filterwarnings("ignore", message=".*Previous log files in this directory")
            writer = super().experiment
        if rank_zero_only.rank == 0 and aside.is_file():
            _, rows = read_rows(aside)
            if rows:
                writer.metrics[:0] = rows
                writer.save()
            aside.unlink()
        return writer

    @rank_zero_only
    def keep_rows_before(self, step: int) -> int:
        """Flush the buffered rows, then keep only the rows of ``metrics.csv`` before ``step``."""
        self.save()
        if not self.metrics_path.is_file():
            return 0
        return keep_rows_before(self.metrics_path, step, header=list(self.experiment.metrics_keys))
