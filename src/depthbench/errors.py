"""Errors meant for people: one line that says what was wrong and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class DepthbenchError(Exception):
    """Base class: the run stops before (or instead of) training with this one-line message."""


class ConfigError(DepthbenchError, ValueError):
    """A config value is invalid (unknown option, depth 0, non-positive learning rate, ...)."""


class DataError(DepthbenchError):
    """A dataset is missing, corrupt, empty or unusable."""


class CheckpointError(DepthbenchError):
    """A checkpoint is missing, corrupt, or not a depthbench checkpoint."""


class DivergenceError(DepthbenchError):
    """The loss became NaN or infinite."""


def close_matches(word: str, choices: Sequence[str], n: int = 3) -> list[str]:
    """The ``n`` entries of ``choices`` closest to ``word`` (difflib's ratio >= 0.6): the
    "did you mean" of a one-line error."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
