"""Secrets kept out of everything depthbench logs or writes.

``redact(obj)`` removes secrets (API keys, tokens, passwords) from configs, strings and Hydra's
saved ``.hydra/*.yaml`` files, before they reach a logger, a checkpoint or ``metrics.json``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from depthbench.atomic import atomic_write

REDACTED = "***redacted***"
# a config key or environment variable is secret when its last word is one of these
# (`api_key`, `WANDB_API_KEY`, `hf_token`, `client_secret`, `password`; not `keys` or `monkey`)
SECRET_NAME = re.compile(
    r"(^|[_.\-])(api_?key|key|token|secret|password|passwd|credentials?|auth)$", re.IGNORECASE
)
_SECRET_WORD = r"(?:api_?key|key|token|secret|password|passwd|credentials?|auth)"
# `name=value` inside a string, as in Hydra's overrides (`+logger.wandb.api_key=abc`) and its
# comma-joined `override_dirname`: the value up to the next comma or space is secret
SECRET_ASSIGNMENT = re.compile(
    rf"((?:^|(?<=[\s,]))[~+]{{0,2}}(?:[\w.@/\-]*[_.\-])?{_SECRET_WORD}=)[^,\s]*", re.IGNORECASE
)


def is_secret_name(name: str) -> bool:
    """True when a config key or environment variable name denotes a secret."""
    return bool(SECRET_NAME.search(str(name).split(".")[-1].split("/")[-1]))


def _secret_env_values() -> list[str]:
    # values of secret-named environment variables, so an interpolated `${oc.env:HF_TOKEN}` under
    # an innocent key is caught too; short values (`1`, `true`) would redact too much
    return [v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 8]


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of ``obj`` (dicts, lists, strings) with every secret replaced by ``REDACTED``.

    Secret: the value of a key named like a secret (``api_key``, ``token``, ``password``, ...),
    the value part of a ``name=value`` string whose name is such a key, and any occurrence of the
    value of a secret-named environment variable (``WANDB_API_KEY``, ``HF_TOKEN``, ...).
    """
    secrets = _secret_env_values() if secrets is None else secrets
    if isinstance(obj, Mapping):
        return {
            k: REDACTED if is_secret_name(k) and v not in (None, "") else redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secrets) for v in obj)
    if isinstance(obj, str):
        obj = SECRET_ASSIGNMENT.sub(rf"\g<1>{REDACTED}", obj)
        for secret in secrets:
            obj = obj.replace(secret, REDACTED)
    return obj


def redact_yaml_file(path: Path) -> None:
    """Rewrite a YAML file (Hydra's ``config.yaml``, ``hydra.yaml``, ``overrides.yaml``) redacted.

    Interpolations are kept as written (``${oc.env:HF_TOKEN}`` names no secret), values redacted.
    """
    from omegaconf import OmegaConf

    if not path.is_file():
        return
    original = OmegaConf.load(path)
    cleaned = redact(OmegaConf.to_container(original, resolve=False))
    if cleaned != OmegaConf.to_container(original, resolve=False):
        with atomic_write(path, per_process=True) as f:  # parallel jobs read it
            OmegaConf.save(OmegaConf.create(cleaned), f)


def redact_hydra_outputs() -> None:
    """Redact the config files Hydra saved into this job's run folder (``.hydra/*.yaml``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.output_subdir is None:
        return
    folder = Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        redact_yaml_file(folder / name)
