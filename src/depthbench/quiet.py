"""Keep the console and run log to lines a user can act on.

Lightning prints, on every run, lines that ask nothing of the user: which accelerators exist
(``GPU available: False, used: False``), advertising tips (litlogger, litmodels), a
``LeafSpec is deprecated`` notice from its own code, and a ``log_every_n_steps`` warning for short
epochs (the per-epoch metrics are logged anyway). :func:`quiet_lightning` drops exactly those;
every other warning, among them ``GPU available but not used`` (set ``accelerator=gpu``), stays.
"""

from __future__ import annotations

import logging
import re
import warnings

# Lightning's info lines (loggers lightning.pytorch/fabric.utilities.rank_zero) that are dropped
DROPPED_INFO = (
    r"(GPU|TPU|HPU) available: ",  # the accelerators present; the config says what is used
    r"💡 Tip: ",  # litlogger / litmodels advertising
    r"Loading `train_dataloader` to estimate number of stepping batches",
    r"`Trainer\(limit_\w+_batches=[^)]*\)` was configured so",  # the user set it on purpose
    r"`Trainer.fit` stopped: `max_(epochs|steps)=-?\d+` reached",  # the summary line says it
    r"Received SIGTERM: ",  # Ctrl+C is routed to SIGTERM; "interrupted by SIG... at step" says it
)
# Lightning's warnings (``warnings.warn``) that are dropped; the regex matches the message start
DROPPED_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own call into torch
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # a resume into its own folder: the folder is the run's (run_folder refuses any other run)
    r"Checkpoint directory .* exists and is not empty",
    r"The dirpath has changed from",
)
_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.signal_connector",  # "Received SIGTERM"
)


# Lightning prefixes a rank's lines with "[rank: N] " (rank_prefixed_message) once a rank is set
RANK_PREFIX = r"(?:\[rank: \d+\] )?"


class DropLines(logging.Filter):
    """A logging filter that drops records whose message matches one of ``patterns`` from its
    start, after any ``[rank: N]`` prefix."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        either = "|".join(f"(?:{p})" for p in patterns)
        self.pattern = re.compile(f"{RANK_PREFIX}(?:{either})")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


def quiet_lightning() -> None:
    """Install the filters (idempotent): on Lightning's rank-zero loggers and on ``warnings``."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropLines) for f in logger.filters):
            logger.addFilter(DropLines(DROPPED_INFO))
    for message in DROPPED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
