"""Names a run folder's saved config may hold from before the pipeline lived in
``depthbench.core``, mapped to today's, so that an older run's checkpoint still evaluates,
predicts and resumes: its ``.hydra/config.yaml`` and the config inside its checkpoints are read
through :func:`current_names` and never rewritten on disk."""

from __future__ import annotations

from typing import Any

RENAMED = {
    "depthbench.module.Classifier": "depthbench.core.classifier.Classifier",
    "depthbench.rundir.history.ResumableCSVLogger": (
        "depthbench.core.run_folder.history.ResumableCSVLogger"
    ),
    "${paths.output_dir}/checkpoints": "${depthbench_run_folder:${paths.output_dir},checkpoints}",
    "depthbench.tracking.wandb_logger": "depthbench.core.tracking.wandb_logger",
    **{
        f"depthbench.callbacks.{name}": f"depthbench.core.callbacks.{name}"
        for name in (
            "checkpointing.LastCheckpoint",
            "freeze.FreezeAtInit",
            "heartbeat.Heartbeat",
            "reliability.DivergenceGuard",
            "reliability.ExactResume",
        )
    },
}


# keys an older config spelled out that are now the constructor's defaults: (target, key) -> the
# value it held; dropped when it still holds it, so the config compares equal to today's
NOW_DEFAULTS = {
    ("depthbench.core.run_folder.history.ResumableCSVLogger", "name"): "csv",
    ("depthbench.core.run_folder.history.ResumableCSVLogger", "version"): "",
}


def current_names(node: Any) -> Any:
    """A copy of a plain config container (dicts, lists, values) with every renamed value
    replaced by today's name, and every key that today's default replaces left out."""
    if isinstance(node, dict):
        renamed = {k: current_names(v) for k, v in node.items()}
        target = renamed.get("_target_")
        return {k: v for k, v in renamed.items()
                if NOW_DEFAULTS.get((target, k), object()) != v}  # fmt: skip
    if isinstance(node, list):
        return [current_names(v) for v in node]
    if isinstance(node, str):
        return RENAMED.get(node, node)
    return node
