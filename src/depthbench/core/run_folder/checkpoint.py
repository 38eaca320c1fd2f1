"""Checkpoints that are self-describing and safe to load.

Every checkpoint carries the run's resolved config (so ``eval.py`` and the fine-tuner can rebuild
the network without the run folder) and holds only tensors and plain containers, so it loads
with ``torch.load(..., weights_only=True)``: a foreign or malicious file is rejected, never run.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from depthbench.core.run_folder.layout import LAST_CKPT, last_checkpoint
from depthbench.core.run_folder.saved_names import current_names
from depthbench.data.spec import data_spec
from depthbench.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # torch and the builder load where a checkpoint is read, not at import:
    from torch import nn  # resolve_ckpt_path answers a command line before torch loads

# the checkpoint keys ``callbacks.run_config.ConfigInCheckpoint`` writes and this module reads:
# the resolved config, and the data spec the net was built for (``data.spec.data_spec``), so
# the net is rebuilt without its data
CONFIG_KEY = "depthbench_config"
DATA_SPEC_KEY = "depthbench_data_spec"


def resolve_ckpt_path(value: str | None, output_dir: Path, required: bool = False) -> str | None:
    """Turn the ``ckpt_path`` config value into a file path, or raise a clear error.

    ``last`` means ``<output_dir>/checkpoints/last.ckpt`` (the current run folder); a folder means
    its ``checkpoints/last.ckpt``; null means none (an error when ``required``). ``auto`` means
    ``last`` if that file exists, else none: with a fixed ``hydra.run.dir``, re-running the same
    command after a crash resumes it.
    """
    if str(value) == "auto" and not required:
        last = last_checkpoint(output_dir)
        return str(last) if last.is_file() else None
    if value in (None, "", "null"):
        if required:
            raise CheckpointError(
                "ckpt_path is required: ckpt_path=/path/to/run/checkpoints/last.ckpt"
            )
        return None
    path = Path(str(value)).expanduser()
    if str(value) == "last":
        path = last_checkpoint(output_dir)
    elif path.is_dir():
        path = next(
            (p for p in (last_checkpoint(path), path / LAST_CKPT) if p.is_file()),
            path,
        )
    if not path.is_file():
        hint = (
            "; every run gets a new folder: give the old run folder (ckpt_path=outputs/runs/...) "
            "or fix it with hydra.run.dir=DIR and resume with ckpt_path=auto"
            if str(value) == "last"
            else ""
        )
        raise CheckpointError(f"checkpoint not found: {path} (ckpt_path={value!r}){hint}")
    return str(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a depthbench checkpoint with ``weights_only=True``; raise CheckpointError otherwise."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its end is its index
        raise CheckpointError(
            f"cannot load checkpoint {path}: not a torch checkpoint (a truncated copy, or "
            "another kind of file); give the last.ckpt of a depthbench run"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights" in first_line.lower():  # torch's advice to unpickle it: never, for a user
            first_line = "it holds more than tensors and plain containers"
        raise CheckpointError(
            f"cannot load checkpoint {path}: corrupt or not a safe torch file ({first_line}); "
            "give the last.ckpt of a depthbench run"
        ) from e
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or CONFIG_KEY not in checkpoint
    ):
        raise CheckpointError(f"{path} is not a depthbench checkpoint (no state_dict/{CONFIG_KEY})")
    return checkpoint


def stored_data_spec(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The data spec of a loaded checkpoint's net (``data.spec.data_spec``), stored at save time."""
    spec = checkpoint.get(DATA_SPEC_KEY)
    if not isinstance(spec, Mapping) or "model_kwargs" not in spec:
        raise CheckpointError(
            f"the checkpoint has no data spec ({DATA_SPEC_KEY}): it was not saved by a "
            "depthbench run, so its network cannot be rebuilt"
        )
    return dict(spec)


def stored_config(checkpoint: Mapping[str, Any]) -> DictConfig:
    """The run config stored in a loaded checkpoint, with today's names (``saved_names``)."""
    return OmegaConf.create(current_names(checkpoint[CONFIG_KEY]))


def load_net(checkpoint: str | Path | Mapping[str, Any]) -> tuple[nn.Module, DictConfig]:
    """The trained network of a checkpoint (in eval mode) and the run config stored with it.

    ``checkpoint``: a file, loaded with ``weights_only=True``, or a checkpoint already loaded by
    ``load_checkpoint``. The net is built by ``build.build_net`` from the stored model config and
    data spec, and gets the weights under ``net.`` of the LightningModule's state dict, or
    under ``ema_net.`` when the run averaged its weights (``module.ema_decay``): the EMA
    weights are the ones the run validated and tested with.
    """
    from depthbench.core.build import build_net

    name = "checkpoint" if isinstance(checkpoint, Mapping) else str(checkpoint)
    ckpt = checkpoint if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint)
    config = stored_config(ckpt)
    net = build_net(config.model, stored_data_spec(ckpt))
    state = ckpt["state_dict"]
    prefix = "ema_net." if any(k.startswith("ema_net.") for k in state) else "net."
    weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        first_line = str(e).strip().splitlines()[0]
        raise CheckpointError(
            f"{name}: weights do not fit the network of its config ({first_line})"
        ) from e
    return net.eval(), config


def _config_differences(saved: Mapping[str, Any], now: Mapping[str, Any], prefix: str) -> list[str]:
    """``key=saved (now: value)`` for every key whose value differs between two configs."""
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key, "<unset>"), now.get(key, "<unset>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}={a} (now {b})")
    return out


def check_resume_fits(checkpoint: Mapping[str, Any], module: nn.Module, model_cfg: Any) -> None:
    """Raise a ConfigError when the checkpoint's weights do not fit ``module`` (a resume with
    another model), naming the model settings that differ; checked before any training starts."""
    saved = checkpoint["state_dict"]
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in saved.items()}
    if expected == found:
        return
    wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    n_missing, n_extra = len(expected.keys() - found.keys()), len(found.keys() - expected.keys())
    stored_model = checkpoint[CONFIG_KEY].get("model", {})
    now = OmegaConf.to_container(model_cfg, resolve=True) if model_cfg is not None else {}
    differences = _config_differences(stored_model, now, "model.")
    trained = (
        f"it was trained with {', '.join(differences[:4])}"
        if differences
        else "the data's shape or classes differ from the run it came from"
    )
    raise ConfigError(
        f"the checkpoint does not fit the configured model ({n_missing} weights missing, "
        f"{n_extra} unexpected, {len(wrong)} of another shape): {trained}; resume with the "
        "checkpoint's model settings, or start a new run without ckpt_path"
    )


def check_data_fits(spec: dict[str, Any], datamodule: Any, model_name: str) -> None:
    """The eval data must have the shape, classes and vocabulary the checkpoint's net was built
    for; a ConfigError says what differs."""
    now = data_spec(datamodule)
    keys = ("input_shape", "num_classes", "model_kwargs")
    if all(now[k] == spec.get(k, now[k]) for k in keys):
        return
    name = getattr(datamodule, "name", type(datamodule).__name__)

    def shape(s: dict[str, Any]) -> str:
        extra = "".join(f", {k} {v}" for k, v in s.get("model_kwargs", {}).items())
        return f"input {tuple(s['input_shape'])}, {s['num_classes']} classes{extra}"

    raise ConfigError(
        f"the checkpoint's {model_name} was trained on {shape(spec)}; data={name} gives "
        f"{shape(now)}; evaluate on data of the same shape and classes, or leave data unset to "
        "use the run's own data"
    )
