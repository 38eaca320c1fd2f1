"""What a Hydra command-line override says, read one way everywhere: the key of ``model.depth=4``,
``+model.depth=4``, ``++model.depth=4`` or ``~model.depth``, and its value. Imports nothing."""

from __future__ import annotations


def override_key(override: str) -> str:
    """``model.depth`` of ``model.depth=4``, ``+model.depth=4``, ``++model.depth=4`` or
    ``~model.depth`` (a group's key too: ``model`` of ``model=resnet``)."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(override: str) -> str | None:
    """The value of ``key=value`` as written (None: ``~key``, a deletion)."""
    return None if override.startswith("~") else override.split("=", 1)[-1]
