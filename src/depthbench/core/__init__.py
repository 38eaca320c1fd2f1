"""The training pipeline and its public API: what the lesson, the bench, the report, the tools,
the notebook and the tests call.

- :func:`compose` — a config from command-line overrides, as ``python train.py`` composes it;
- :func:`train` — train (and test) one run from a composed config, optionally with extra
  Lightning callbacks; returns its ``metrics.json`` record;
- :func:`evaluate` — test a checkpoint (``eval.yaml``'s config); returns its record;
- :func:`open_run` — a run folder: its checkpoint, record, history and trained network;
- :func:`find_checkpoint`, :func:`load_checkpoint`, :func:`load_net`, :func:`stored_config`,
  :func:`stored_data_spec` — the one path from a run folder or checkpoint file to a network,
  its config and the data it expects;
- :func:`build_data`, :func:`build_net` — a config's data module and untrained network.

Importing this package imports neither torch nor Lightning: the functions import the pipeline
when called, so a config mistake is answered before the heavy imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from depthbench.core.conf_dir import CONF_DIR
from depthbench.core.overrides import override_key, override_value
from depthbench.core.run_folder import layout
from depthbench.core.run_folder.layout import RunFolder

if TYPE_CHECKING:
    import lightning as L
    from omegaconf import DictConfig
    from torch import nn

# the configs name run-folder paths through the layout (conf/callbacks/*.yaml), and a saved
# .hydra/config.yaml keeps the interpolation: whatever reads a config imports depthbench.core
if not OmegaConf.has_resolver("depthbench_run_folder"):
    OmegaConf.register_new_resolver("depthbench_run_folder", layout.resolve)

__all__ = [
    "CONF_DIR",
    "RunFolder",
    "build_data",
    "build_net",
    "compose",
    "evaluate",
    "find_checkpoint",
    "layout",
    "load_checkpoint",
    "load_net",
    "open_run",
    "override_key",
    "override_value",
    "stored_config",
    "stored_data_spec",
    "train",
]


def compose(
    overrides: Sequence[str] = (),
    config_name: str = "train",
    *,
    config_dirs: Sequence[str] = (),
    with_hydra: bool = False,
) -> DictConfig:
    """The config ``python train.py OVERRIDES`` runs (``config_name="eval"``: ``eval.py``'s),
    composed from depthbench's configs; ``config_dirs`` are searched first (a user's own
    ``conf/``), the ``hydra`` node is kept when ``with_hydra``."""
    from depthbench.core.config_compose import compose_config

    dirs = [*config_dirs, CONF_DIR] if config_dirs else [CONF_DIR]
    return compose_config(dirs, config_name, list(overrides), with_hydra=with_hydra)


def train(cfg: DictConfig, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train and test the run ``cfg`` describes in ``cfg.paths.output_dir`` (the extra Lightning
    ``callbacks`` join the configured ones); return the record written to its ``metrics.json``."""
    from depthbench.core.run import train as train_run
    from depthbench.quiet import quiet_lightning

    quiet_lightning()  # the console lines the command line shows, no more
    return train_run(cfg, callbacks=callbacks)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``cfg.ckpt_path`` (a config composed with ``config_name="eval"``) and
    write the record to ``cfg.paths.output_dir``'s ``metrics.json``; return it."""
    from depthbench.core.run import evaluate as evaluate_run
    from depthbench.quiet import quiet_lightning

    quiet_lightning()
    return evaluate_run(cfg)


def open_run(path: str | Path) -> RunFolder:
    """The run folder at ``path`` (a training run's or an evaluation's output folder)."""
    return RunFolder(Path(path))


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as is; a run folder: its ``checkpoints/last.ckpt`` (the file ``eval.py``
    takes from the same folder). CheckpointError when there is none."""
    from depthbench.core.run_folder.checkpoint import resolve_ckpt_path

    return Path(resolve_ckpt_path(str(path), Path.cwd(), required=True))  # type: ignore[arg-type]


def stored_config(checkpoint: dict[str, Any]) -> DictConfig:
    """The run config stored with a loaded checkpoint (today's module names)."""
    from depthbench.core.run_folder.checkpoint import stored_config as config

    return config(checkpoint)


def stored_data_spec(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The data a loaded checkpoint's network expects (input shape, classes, normalisation),
    stored when it was saved."""
    from depthbench.core.run_folder.checkpoint import stored_data_spec as spec

    return spec(checkpoint)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A depthbench checkpoint file, loaded with ``weights_only=True`` (CheckpointError when it is
    missing, truncated or not depthbench's)."""
    from depthbench.core.run_folder.checkpoint import load_checkpoint as load

    return load(path)


def load_net(checkpoint: str | Path | dict[str, Any]) -> tuple[nn.Module, DictConfig]:
    """The trained network of a checkpoint (a file, or one ``load_checkpoint`` gave), in eval
    mode, and the run config stored with it."""
    from depthbench.core.run_folder.checkpoint import load_net as load

    return load(checkpoint)


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    """The data module of a composed config (``cfg.data``), prepared and set up for fitting."""
    from depthbench.core.build import build_data as build

    return build(cfg)


def build_net(model_cfg: DictConfig, data: Any) -> nn.Module:
    """The untrained network of ``model_cfg`` for ``data`` (a data module or a stored data
    spec: input shape and number of classes)."""
    from depthbench.core.build import build_net as build

    return build(model_cfg, data)
