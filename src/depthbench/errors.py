"""Errors meant for people: one line that says what was wrong and what is allowed, and how to
find that line in a chain of errors (Hydra and Lightning wrap the errors they pass on)."""

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


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors behind it, outermost first: each one's ``__cause__`` (``raise
    ... from``), else its ``__context__`` unless suppressed (``from None``)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and not any(current is seen for seen in chain):  # no cycles
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return chain


def innermost(error: BaseException) -> BaseException:
    """The cause at the bottom of a chain (Hydra's instantiate wraps a constructor's error)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def depthbench_error(error: BaseException) -> BaseException | None:
    """The first DepthbenchError in ``error``'s chain (Hydra's wrapper around depthbench's
    error around a library's gives depthbench's), or None: then the error is a bug."""
    return next((e for e in error_chain(error) if isinstance(e, DepthbenchError)), None)


def error_line(error: BaseException) -> str:
    """``Type: message``, first line only, of the first DepthbenchError in the chain, else of
    the innermost cause (Hydra wraps errors)."""
    error = depthbench_error(error) or innermost(error)
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
