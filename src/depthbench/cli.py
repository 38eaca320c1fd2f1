"""Command-line entry points: ``depthbench-train``, ``depthbench-eval`` and ``depthbench``.

Hydra needs the config folder (``conf_dir.find_conf_dir``): ``DEPTHBENCH_CONF`` if set, else
``conf/`` of a source checkout, else the copy installed inside the package (``depthbench/conf``).
A user's own configs join the search path with ``--config-dir DIR`` (docs/configs.md).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from depthbench.core.conf_dir import CONF_DIR
from depthbench.core.config_compose import app_help, check_overrides, config_groups_help
from depthbench.core.run_folder.folder_lock import RunFolderError
from depthbench.errors import DepthbenchError, depthbench_error, error_chain, error_line

log = logging.getLogger("depthbench")
# conf/hydra/launcher/submitit_*.yaml are checked against the plugin's schema of the same name on
# purpose (typos fail); Hydra 1.3 warns about that matching on every run
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against")
# `python train.py --help` lists the config groups through this resolver (conf/hydra/default.yaml)
if not OmegaConf.has_resolver("depthbench_config_groups"):
    OmegaConf.register_new_resolver("depthbench_config_groups", config_groups_help)


def _quiet_lightning_handlers() -> None:
    """Lightning adds its own console handler at import; Hydra's root handler already prints.
    Its lines a user cannot act on are dropped (``depthbench.quiet``)."""
    from depthbench.quiet import quiet_lightning

    quiet_lightning()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _discard_refusal(cfg: DictConfig, error: BaseException) -> None:
    """A single command stopped by bad input leaves nothing but its line: the folder Hydra made
    for it is removed when it holds nothing else (``run_folder.discard_refused``). A folder
    with results (a run continued with another model, say) keeps them, and gets no record."""
    from depthbench.core.run_folder.ownership import discard_refused

    if isinstance(error, RunFolderError):  # the folder is another run's: nothing touched there
        return
    try:
        out_dir = Path(cfg.paths.output_dir)
    except Exception:  # no resolvable output folder: nothing to remove
        return
    discard_refused(out_dir)  # Hydra's open log file goes with it (its lines are on the console)


def _guarded(fn, cfg: DictConfig):
    """Run ``fn(cfg)``; a DepthbenchError anywhere in the error's chain (one raised inside a
    constructor that Hydra's ``instantiate`` wrapped, one that wraps a library's error) becomes
    one log line and exit code 2; any other error is a bug and keeps its traceback."""
    _quiet_lightning_handlers()
    try:
        return fn(cfg)
    except Exception as e:
        inner = depthbench_error(e) or lightning_config_error(e)
        if inner is None:
            raise
        log.error("%s", error_line(inner))
        _discard_refusal(cfg, inner)
        sys.exit(2)


def lightning_config_error(error: BaseException) -> BaseException | None:
    """Lightning's own ``MisconfigurationException`` in ``error``'s chain (a Trainer argument
    Lightning refuses, e.g. ``limit_val_batches=0.1`` of one batch), or None: a user's mistake
    that Lightning already words, so one line, not a bug's traceback."""
    exceptions = sys.modules.get("lightning.fabric.utilities.exceptions")
    refused = getattr(exceptions, "MisconfigurationException", None)
    if refused is None:  # Lightning not imported: not its error
        return None
    return next((e for e in error_chain(error) if isinstance(e, refused)), None)


def _checked(config_name: str) -> None:
    """Stop a mistyped key or group option with one "did you mean" line, before Hydra runs;
    give Hydra the command line as ``check_overrides`` completes it (``+`` where meant).
    ``--help`` is printed here (``config_check.app_help``: Hydra's takes seconds)."""
    text = app_help(CONF_DIR, config_name, sys.argv[1:])
    if text is not None:
        print(text)
        sys.exit(0)
    try:
        sys.argv[1:] = check_overrides(CONF_DIR, config_name, sys.argv[1:])
    except DepthbenchError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)


def train_main() -> float | None:
    """``depthbench-train`` / ``python train.py``: check the command line, then train."""
    _checked("train")
    return _train_hydra()


def eval_main() -> None:
    """``depthbench-eval`` / ``python eval.py``: check the command line, then evaluate."""
    _checked("eval")
    _eval_hydra()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _train_hydra(cfg: DictConfig) -> float | None:
    """Train (``python train.py ...``); returns ``cfg.optimized_metric`` for sweepers."""
    from depthbench.core.run_folder.redaction import redact_hydra_outputs
    from depthbench.launch.sweeps import in_multirun, run_sweep_job

    redact_hydra_outputs()  # no secret in the run folder's .hydra/*.yaml
    if in_multirun():  # a failing job is recorded (metrics.json, jobs.jsonl); the sweep goes on
        from depthbench.core.run import train

        _quiet_lightning_handlers()
        return run_sweep_job(train, cfg)
    metrics = _guarded(_checked_then_train, cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric and metrics else None


def _checked_then_train(cfg: DictConfig) -> dict:
    """``run.train``, its config checked first: a bad value is answered before torch and
    Lightning load (seconds), the run then checks it again."""
    from depthbench.core.config_values import validate_train_config

    validate_train_config(cfg)
    from depthbench.core.run import train

    return train(cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _eval_hydra(cfg: DictConfig) -> None:
    """Evaluate a checkpoint (``python eval.py ckpt_path=...``)."""
    _guarded(_checked_then_evaluate, cfg)


def _checked_then_evaluate(cfg: DictConfig) -> dict:
    """``run.evaluate``, its config checked before torch and Lightning load."""
    from depthbench.core.config_values import validate_eval_config

    validate_eval_config(cfg)
    from depthbench.core.run import evaluate

    return evaluate(cfg)


# `depthbench SUBCOMMAND ...`: name -> ("module:function" taking argv, imported lazily; what it
# does, for `depthbench --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("depthbench.cli:_train_argv", "train a model (as python train.py; --help: options)"),
    "eval": ("depthbench.cli:_eval_argv", "test a checkpoint on its data (as python eval.py)"),
    "predict": ("depthbench.tools.predict:main", "classify new images, .npy arrays or texts"),
    "report": ("depthbench.report.cli:main", "tables and figures from run and multirun folders"),
    "attention": (
        "depthbench.tools.attention_cli:main",
        "a transformer's attention on one sentence",
    ),
    "lesson": ("depthbench.lesson.run:main", "check every claim of the lesson with its sweeps"),
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
    usage = f"usage: depthbench {{{','.join(SUBCOMMANDS)}}} [args...]"
    if argv[:1] in (["-h"], ["--help"]):
        width = max(map(len, SUBCOMMANDS))
        lines = [f"  {name:<{width}}  {what}" for name, (_, what) in SUBCOMMANDS.items()]
        print("\n".join([usage, "", "subcommands:", *lines, "", "depthbench SUBCOMMAND --help: "
                         "its own options"]))  # fmt: skip
        return
    if not argv or argv[0] not in SUBCOMMANDS:
        print(usage, file=sys.stderr)
        sys.exit(2)
    module_name, func = SUBCOMMANDS[argv[0]][0].split(":")
    getattr(importlib.import_module(module_name), func)(argv[1:])


if __name__ == "__main__":  # python -m depthbench.cli SUBCOMMAND ... (the lesson's sweeps)
    main()
