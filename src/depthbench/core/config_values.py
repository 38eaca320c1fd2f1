"""Validate user-facing config values where they enter: before any data is loaded.

``run.train`` and ``run.evaluate`` call :func:`validate_train_config` / :func:`validate_eval_config`
first, so a typo costs one clear line and exit code 2 (``cli._guarded``) instead of a traceback
minutes into a run. Each check names the key, the bad value and what is allowed. Unknown group
options (``model=foo``) are refused earlier still, by Hydra, with the list of valid options.
Checks are by key name, so they apply to every model family that has the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from depthbench.core.run_folder.checkpoint import resolve_ckpt_path
from depthbench.errors import ConfigError, close_matches

# The names ``models.layers`` accepts (its ACTIVATIONS and INITS; a test keeps them equal),
# spelled here so that this module imports no torch: ``cli`` checks a config with it before
# torch and Lightning load, and a bad value is answered in about a second
ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "identity")
INITS = ("default", "kaiming", "he", "xavier")

# model keys that are sizes: an integer >= 1 whenever set (null = not used / solved)
MODEL_SIZE_KEYS = ("depth", "width", "stages", "dim", "heads", "patch_size", "params")
DATA_SIZE_KEYS = ("batch_size", "eval_batch_size", "train_size")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, allow_null: bool = False) -> None:
    """``value`` must be an integer >= 1 (or None when ``allow_null``): the message of
    ``models.layers.check_positive_int``, which the constructors run again."""
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1{' or null' * allow_null}, got {value!r}")


def check_fraction(key: str, value: Any) -> None:
    """``value`` must be a number in [0, 1)."""
    if not _is_number(value) or not 0 <= value < 1:
        raise ConfigError(f"{key} must be a number in [0, 1), got {value!r}")


def validate_model(model: DictConfig | None) -> None:
    """Sizes, activation, init and dropout of the ``model`` group."""
    if not model:
        return
    for key in MODEL_SIZE_KEYS:
        if key in model and model[key] is not None:  # null: unused or solved (width from params)
            check_positive_int(f"model.{key}", model[key], allow_null=False)
    if "activation" in model and model.activation not in ACTIVATIONS:
        raise ConfigError(
            f"model.activation={model.activation!r} is unknown; allowed: {', '.join(ACTIVATIONS)}"
        )
    if "init" in model and model.init not in INITS:
        raise ConfigError(f"model.init={model.init!r} is unknown; allowed: {', '.join(INITS)}")
    if "dropout" in model:
        check_fraction("model.dropout", model.dropout)


def validate_optimization(cfg: DictConfig) -> None:
    """Learning rate and weight decay of ``optimizer``; warm-up of ``scheduler``."""
    opt = cfg.get("optimizer")
    if opt:
        if "lr" in opt:
            lr = opt.lr
            # 0 is allowed: the weights stay at their initialisation through the whole pipeline
            # (the negative control "the same net, untrained" of depthbench lesson)
            if not _is_number(lr) or not math.isfinite(lr) or lr < 0:
                raise ConfigError(
                    f"optimizer.lr must be a number >= 0 (e.g. 1e-3; 0 leaves the weights at "
                    f"their initialisation), got {lr!r}"
                )
        wd = opt.get("weight_decay", 0.0)
        if not _is_number(wd) or wd < 0:
            raise ConfigError(f"optimizer.weight_decay must be a number >= 0, got {wd!r}")
    sched = cfg.get("scheduler")
    if sched and sched.get("warmup_steps") is not None:
        ws = sched.warmup_steps
        if not _is_int(ws) or ws < 0:
            raise ConfigError(f"scheduler.warmup_steps must be an integer >= 0, got {ws!r}")


def validate_trainer(trainer: DictConfig | None) -> None:
    """Epoch and step limits (``-1`` means unlimited where Lightning allows it)."""
    if not trainer:
        return
    for key in ("max_epochs", "max_steps"):
        value = trainer.get(key)
        if value is None:
            continue
        if not _is_int(value) or (value < 1 and value != -1):
            raise ConfigError(f"trainer.{key} must be an integer >= 1 or -1, got {value!r}")


def validate_data(data: DictConfig | None) -> None:
    """Batch sizes and subset size (whether the batch fits the data is checked at ``setup``)."""
    if not data:
        return
    for key in DATA_SIZE_KEYS:
        if key in data:
            check_positive_int(f"data.{key}", data[key], allow_null=key != "batch_size")


# what eval.py takes from the checkpoint's stored run config, never from its own command line
FROM_CHECKPOINT = ("model", "optimizer", "scheduler", "module", "callbacks", "diagnostics")


def check_data_keys(given: Any, data: DictConfig) -> None:
    """eval's ``data.KEY=VALUE`` must name keys of the checkpoint's data config."""
    unknown = [k for k in given if k not in data]
    if unknown:
        key = unknown[0]
        match = close_matches(key, [str(k) for k in data])
        guess = f"did you mean data.{match[0]}? " if match else ""
        keys = ", ".join(str(k) for k in data if not str(k).startswith("_"))
        raise ConfigError(
            f"data.{key} is not a key of the checkpoint's data ({data.get('_target_')}); "
            f"{guess}its keys: {keys}"
        )


def from_checkpoint_message(key: str, given: str) -> str:
    """Why eval.py refuses ``given`` (an override under ``key``, one of FROM_CHECKPOINT)."""
    return (
        f"{key} comes from the checkpoint, so eval.py would ignore {given}; remove it "
        f"(to evaluate another {key}, train it and pass that run's ckpt_path)"
    )


def check_no_missing_values(cfg: DictConfig) -> None:
    """Every ``???`` value (a required path such as text_csv's ``data.path``) must be set.
    Interpolations are not resolved (``${hydra:...}`` needs a running Hydra): the value each
    names is checked where it lives."""

    def missing_under(node: Any, prefix: str) -> list[str]:
        found = []
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            path = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix[:-1]}[{key}]"
            if OmegaConf.is_missing(node, key):
                found.append(path)
            elif not OmegaConf.is_interpolation(node, key):
                child = node[key]
                if OmegaConf.is_config(child):
                    found += missing_under(child, f"{path}.")
        return found

    missing = sorted(missing_under(cfg, ""))
    if missing:
        example = " ".join(f"{k}=..." for k in missing)
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required and not set; "
            f"add {example} to the command"
        )


def _first_leaf(node: Any, prefix: str) -> str:
    """``prefix.key=value`` of the first value under ``node`` (to quote an override back)."""
    while isinstance(node, dict) and node:
        key, node = next(iter(node.items()))
        prefix = f"{prefix}.{key}"
    return f"{prefix}={node}"


def validate_train_config(cfg: DictConfig) -> str | None:
    """Check a train config; return the resolved ``ckpt_path`` (None: start fresh).

    The checkpoint is not read here: ``run.train`` reads it once, before any data loads.
    """
    validate_train_values(cfg)
    return resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.output_dir))


def validate_train_values(cfg: DictConfig) -> None:
    """The checks of ``validate_train_config`` that need no run folder: ``config_check`` runs
    them on the command line's config before Hydra makes a folder (one line, no folder)."""
    check_no_missing_values(cfg)
    if not _is_int(cfg.get("seed", 0)):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    validate_model(cfg.get("model"))
    validate_data(cfg.get("data"))
    validate_optimization(cfg)
    validate_trainer(cfg.get("trainer"))


def validate_eval_config(cfg: DictConfig) -> str:
    """Check an eval config; return the checkpoint file to evaluate (it must exist).

    Keys that come from the checkpoint (``model``, ``optimizer``, ...) are refused: eval.py
    would ignore them.
    """
    for key in FROM_CHECKPOINT:
        if key in cfg:
            given = _first_leaf(OmegaConf.to_container(cfg[key]), key)
            raise ConfigError(from_checkpoint_message(key, given))
    if cfg.get("data"):
        validate_data(cfg.data)
    path = resolve_ckpt_path(
        None if OmegaConf.is_missing(cfg, "ckpt_path") else cfg.ckpt_path,
        Path(cfg.paths.output_dir),
        required=True,
    )
    check_no_missing_values(cfg)
    assert path is not None
    return path


GPU_ACCELERATORS = ("gpu", "cuda")
ALLOWED_WITHOUT_GPU = "cpu, auto, ddp_cpu"


def _accelerator_choice(default: str) -> str:
    # the `accelerator=` group option the user picked (gpu, ddp, ...), for the message
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("accelerator", default))
    return default


def check_accelerator(trainer_cfg: Any) -> None:
    """Fail before training, in one line, when the accelerator asked for is not on this machine."""
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    choice = _accelerator_choice(accelerator)
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator={choice} but no CUDA GPU is visible; allowed here: {ALLOWED_WITHOUT_GPU}"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"accelerator={choice} but no Apple MPS device is visible; "
            f"allowed here: {ALLOWED_WITHOUT_GPU}"
        )
