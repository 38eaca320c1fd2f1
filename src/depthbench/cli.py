"""Command-line entry points: ``depthbench-train``, ``depthbench-eval`` and ``depthbench``.

Hydra needs the config folder: the package looks for ``conf/`` beside the project root (a source
checkout) and falls back to ``DEPTHBENCH_CONF``.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from depthbench.errors import DepthbenchError
from depthbench.metrics_file import innermost

log = logging.getLogger("depthbench")
# conf/hydra/launcher/submitit_*.yaml are checked against the plugin's schema of the same name on
# purpose (typos fail); Hydra 1.3 warns about that matching on every run
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against")
CONF_DIR = str(
    Path(os.environ.get("DEPTHBENCH_CONF", Path(__file__).resolve().parents[2] / "conf"))
)


def _quiet_lightning_handlers() -> None:
    """Lightning adds its own console handler at import; Hydra's root handler already prints."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _guarded(fn, cfg: DictConfig):
    """Run ``fn(cfg)``; a DepthbenchError, also one raised inside a constructor that Hydra's
    ``instantiate`` wrapped, becomes one log line and exit code 2."""
    _quiet_lightning_handlers()
    try:
        return fn(cfg)
    except Exception as e:
        inner = innermost(e)
        if not isinstance(inner, DepthbenchError):
            raise
        log.error("%s: %s", type(inner).__name__, inner)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def train_main(cfg: DictConfig) -> float | None:
    """Train (``python train.py ...``); returns ``cfg.optimized_metric`` for sweepers."""
    from depthbench.redaction import redact_hydra_outputs
    from depthbench.run import train
    from depthbench.sweeps import in_multirun, run_sweep_job

    redact_hydra_outputs()  # no secret in the run folder's .hydra/*.yaml
    if in_multirun():  # a failing job is recorded (metrics.json, jobs.jsonl); the sweep goes on
        _quiet_lightning_handlers()
        return run_sweep_job(train, cfg)
    metrics = _guarded(train, cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric and metrics else None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def eval_main(cfg: DictConfig) -> None:
    """Evaluate a checkpoint (``python eval.py ckpt_path=...``)."""
    from depthbench.run import evaluate

    _guarded(evaluate, cfg)


# `depthbench SUBCOMMAND ...`: name -> "module:function" taking argv (imported lazily).
SUBCOMMANDS: dict[str, str] = {
    "train": "depthbench.cli:_train_argv",
    "eval": "depthbench.cli:_eval_argv",
    "attention": "depthbench.attention_cli:main",
    "report": "depthbench.report.cli:main",
    "lesson": "depthbench.lesson.run:main",
    "predict": "depthbench.predict:main",
}


def _train_argv(argv: list[str]) -> None:
    sys.argv = ["depthbench train", *argv]
    train_main()


def _eval_argv(argv: list[str]) -> None:
    sys.argv = ["depthbench eval", *argv]
    eval_main()


def main(argv: list[str] | None = None) -> None:
    """``depthbench {train,eval,...} ARGS``: dispatch to the subcommand."""
    import importlib

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SUBCOMMANDS:
        print(f"usage: depthbench {{{','.join(SUBCOMMANDS)}}} [args...]", file=sys.stderr)
        sys.exit(2)
    module_name, func = SUBCOMMANDS[argv[0]].split(":")
    getattr(importlib.import_module(module_name), func)(argv[1:])


if __name__ == "__main__":  # python -m depthbench.cli SUBCOMMAND ... (the lesson's sweeps)
    main()
