"""Errors meant for people: one line that says what was wrong and what is allowed."""

from __future__ import annotations


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
