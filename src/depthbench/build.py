"""From configs to the data module and the network built for it.

A network's shape comes from its data: the *data spec* (``data_spec``) holds the input shape of
one example, the number of classes and their names, the normalisation statistics and any extra
model arguments (e.g. ``vocab_size`` of a text dataset). ``build_net`` builds a net from a model
config and a spec; the same spec is stored in every checkpoint, so a net is rebuilt without its
data.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig

from depthbench.errors import ConfigError

# what a data module's extra model arguments say about the model it needs
NEEDS = {"vocab_size": "text data needs a model that reads word ids: model=transformer"}


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    """Instantiate the data module and load it, so the model can read its shapes.

    With ``module.compile=true`` the training loader drops its last partial batch
    (``drop_last``): every training batch then has one shape, compiled once.
    """
    compiled = bool(cfg.get("module", {}).get("compile", False))
    datamodule = instantiate(cfg.data, **({"drop_last": True} if compiled else {}))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def class_names(datamodule: Any) -> list[str]:
    """The names of a (set-up) data module's classes, index = label; ``"0"``, ``"1"``, ... for
    data without names (digits, MNIST)."""
    names = [str(c) for c in getattr(datamodule, "classes", None) or ()]
    n = int(datamodule.num_classes)
    return names if len(names) == n else [str(i) for i in range(n)]


def data_spec(datamodule: Any) -> dict[str, Any]:
    """What a net needs from its (set-up) data, as plain ints, floats and lists.

    ``mean``/``std`` are the statistics the inputs were normalised with ([0.0]/[1.0] when the
    data is not normalised), so a net can recover raw inputs (the fine-tuner does).
    """
    normalized = getattr(datamodule, "normalize", False)
    extra = datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}
    return {
        "input_shape": [int(s) for s in datamodule.input_shape],
        "num_classes": int(datamodule.num_classes),
        "classes": class_names(datamodule),
        "mean": [float(m) for m in datamodule.mean.flatten()] if normalized else [0.0],
        "std": [float(s) for s in datamodule.std.flatten()] if normalized else [1.0],
        "model_kwargs": dict(extra),
    }


def build_net(model_cfg: DictConfig, data: Any) -> torch.nn.Module:
    """Instantiate the network for ``data``: a set-up data module or its ``data_spec``.

    The net gets the spec's ``input_shape``, ``num_classes`` and ``model_kwargs``; a model config
    with ``data_mean``/``data_std`` left null (the fine-tuner) also gets the normalisation
    statistics.
    """
    spec = data if isinstance(data, Mapping) else data_spec(data)
    kwargs = dict(spec.get("model_kwargs", {}))
    check_model_takes(model_cfg, kwargs)
    if model_cfg.get("data_mean", 0) is None and model_cfg.get("data_std", 0) is None:
        kwargs["data_mean"], kwargs["data_std"] = list(spec["mean"]), list(spec["std"])
    return instantiate(
        model_cfg,
        input_shape=list(spec["input_shape"]),
        num_classes=int(spec["num_classes"]),
        **kwargs,
    )


def check_model_takes(model_cfg: DictConfig, kwargs: Mapping[str, Any]) -> None:
    """Raise a ConfigError when the model's constructor cannot take the data's extra arguments
    (text data, with its ``vocab_size``, into an MLP), saying which model the data needs."""
    target = model_cfg.get("_target_")
    if not kwargs or not target:
        return
    try:
        params = inspect.signature(get_object(target)).parameters
    except (ValueError, TypeError, ImportError):  # no introspectable signature: let it try
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    refused = [k for k in kwargs if k not in params]
    if refused:
        hint = next((NEEDS[k] for k in refused if k in NEEDS), "choose a model that takes them")
        raise ConfigError(
            f"{hint}; {target} does not take {', '.join(refused)}, which the data gives"
        )
