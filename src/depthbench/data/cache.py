"""Decode once, then load: split tensors cached on disk next to the data they came from.

A cache file ``<folder>/depthbench_cache_<split>.pt`` holds ``{"version", "fingerprint",
"tensors"}``. It is written atomically (temporary file + rename, so a crash never leaves a
half-written cache), loaded with ``weights_only=True`` (plain tensors and containers only, no
pickled code), and rebuilt when it is unreadable or its fingerprint (source file names, sizes and
modification times, plus the decoding parameters) no longer matches the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from depthbench.atomic import atomic_write

log = logging.getLogger("depthbench")

# Bump when the layout of cached tensors changes: older caches are then rebuilt, not misread.
CACHE_VERSION = 1

Tensors = dict[str, torch.Tensor]


def cache_path(folder: Path, split: str) -> Path:
    """Where the cached tensors of ``split`` live: ``<folder>/depthbench_cache_<split>.pt``."""
    return Path(folder) / f"depthbench_cache_{split}.pt"


def file_fingerprint(paths: Iterable[Path]) -> list[list[Any]]:
    """``[[name, size, mtime_ns], ...]``: changes whenever a source file is replaced."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([str(p), int(st.st_size), int(st.st_mtime_ns)])
    return out


def save_atomic(path: Path, payload: dict[str, Any]) -> bool:
    """``torch.save`` through ``atomic_write`` (parallel jobs may write the same cache); False
    (and a warning) if not writable."""
    try:
        with atomic_write(path, "wb", per_process=True) as f:
            torch.save(payload, f)
        return True
    except OSError as e:
        log.warning("could not write the data cache %s (%s); continuing without it", path, e)
        return False


def load_or_build(path: Path, build: Callable[[], Tensors], fingerprint: Any) -> Tensors:
    """The cached tensors at ``path`` if valid for ``fingerprint``, else ``build()`` them and cache.

    ``fingerprint`` must be made of plain types (str, int, float, bool, lists, dicts) so it
    survives ``weights_only`` loading and compares equal after a round trip.
    """
    path = Path(path)
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if (
                isinstance(saved, dict)
                and saved.get("version") == CACHE_VERSION
                and saved.get("fingerprint") == fingerprint
            ):
                return saved["tensors"]
            log.info("data cache %s is out of date; rebuilding it", path)
        except Exception as e:  # truncated zip, bad pickle, wrong types: all mean "rebuild"
            log.warning("data cache %s is unreadable (%s); rebuilding it", path, e)
    tensors = build()
    save_atomic(path, {"version": CACHE_VERSION, "fingerprint": fingerprint, "tensors": tensors})
    return tensors
