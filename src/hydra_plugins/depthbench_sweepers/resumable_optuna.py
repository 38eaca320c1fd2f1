"""Optuna sweeper whose search continues where a killed one stopped.

With ``storage`` (e.g. ``sqlite:///outputs/optuna.db``) and ``study_name`` set, Hydra's Optuna
sweeper already loads the study (``load_if_exists``), but it runs ``n_trials`` *more* trials
and numbers the jobs from 0 again (hydra PR #2647, closed unmerged). Here ``n_trials`` is the
size of the whole study: the trials already finished in the storage (complete, pruned or
failed) count, the same command run again after a kill only runs the rest, and the job numbers
continue from the study's trial numbers, so job ``N`` is trial ``N`` and no job folder of the
first sweep is reused. A trial left ``RUNNING`` by a kill is not counted (it runs again as a
new trial) and is left as it is: in a study shared by several workers it may be running.
A continued study reseeds its sampler at random: with the configured seed it would propose the
first trials' parameters again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from depthbench.quiet import DropLines

# alembic (optuna's sqlite storage) logs "setup plugin ..." seven times when it is imported, which
# the next import does: dropped before it (a filter on the logger outlives alembic's fileConfig)
_ALEMBIC_PLUGINS = logging.getLogger("alembic.runtime.plugins")
if not any(isinstance(f, DropLines) for f in _ALEMBIC_PLUGINS.filters):
    _ALEMBIC_PLUGINS.addFilter(DropLines((r"setup plugin ",)))

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper  # noqa: E402

log = logging.getLogger(__name__)


def study_progress(storage: Any, study_name: str | None) -> tuple[int, int]:
    """(finished trials, all trials) of the stored study; (0, 0) without storage or study."""
    if not isinstance(storage, str) or not study_name:
        return 0, 0
    import optuna  # not at import: Hydra imports every plugin module at every start

    if storage.startswith("sqlite:///"):  # sqlite creates the file, not its folder
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                optuna.trial.TrialState.FAIL)  # fmt: skip
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet: the sweeper creates it
        return 0, 0
    trials = study.get_trials(deepcopy=False)
    return sum(t.state in finished for t in trials), len(trials)


# the study's user attribute holding the fixed (not searched) config of its trials
FIXED_CONFIG_ATTR = "depthbench_fixed_config"


def fixed_config(config: DictConfig) -> dict[str, Any]:
    """The config every trial of this search shares: without ``hydra.*``, ``paths.*``,
    ``ckpt_path`` and the searched keys (``hydra.sweeper.params``), flat and JSON-able."""
    import json

    from depthbench.rundir.resume import comparable

    searched = set((config.hydra.sweeper.get("params") or {}).keys())
    flat = comparable(config)
    return {k: json.loads(json.dumps(v, default=str)) for k, v in flat.items() if k not in searched}


def check_same_fixed_config(study: Any, fixed: dict[str, Any]) -> list[str]:
    """The keys whose fixed value differs from the one the stored study was run with (empty:
    the same, or a study without a record, which gets this one)."""
    from depthbench.rundir.resume import differing_keys

    stored = study.user_attrs.get(FIXED_CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(FIXED_CONFIG_ATTR, fixed)
        return []
    return differing_keys(stored, fixed)


def _plain_logging() -> None:
    """Optuna's lines through Hydra's handlers (its own handler adds ANSI colours, noise in a
    log file)."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


class ResumableOptunaSweeper(OptunaSweeper):
    """Hydra's ``OptunaSweeper`` (same arguments); ``n_trials`` counts the stored trials."""

    def __init__(self, **kwargs: Any) -> None:
        _plain_logging()
        total = int(kwargs["n_trials"])
        finished, self._first_job = study_progress(kwargs["storage"], kwargs["study_name"])
        if finished:
            log.info(
                "study %r: %d of %d trials already finished in %s; running %d more",
                kwargs["study_name"], finished, total, kwargs["storage"],
                max(0, total - finished),
            )  # fmt: skip
        sampler = kwargs["sampler"]
        if self._first_job and hasattr(sampler, "reseed_rng"):
            sampler.reseed_rng()  # a seeded sampler would otherwise repeat the first trials
        if self._first_job > finished:
            log.info("study %r: %d trials RUNNING (killed, or another worker's) are not counted",
                     kwargs["study_name"], self._first_job - finished)  # fmt: skip
        super().__init__(**{**kwargs, "n_trials": max(0, total - finished)})

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Hydra's setup; then the job numbers start at the study's next trial number."""
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._refuse_another_setup(config)
        # a finished study launches no job, yet its optimization_results.yaml goes there
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        # the implementation's job counter is the only way to number the jobs (PR #2647)
        self.sweeper.job_idx = self._first_job

    def _refuse_another_setup(self, config: DictConfig) -> None:
        """A stored study continued with other fixed settings (``data=mnist1d`` into a digits
        study) would mix its trials: one line naming the keys, exit 2, before any trial."""
        import sys

        import optuna

        storage, name = self.sweeper.storage, self.sweeper.study_name
        if not isinstance(storage, str) or not name:
            return
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # a new study: created with its record by the first trial's sweep
            study = optuna.create_study(study_name=name, storage=storage,
                                        directions=_directions(self.sweeper.direction))  # fmt: skip
        differ = check_same_fixed_config(study, fixed_config(config))
        if differ:
            shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if differ[6:] else "")
            print(
                f"ConfigError: the study {name!r} in {storage} was run with other values of "
                f"{shown}; continue it with those, or start another study "
                "(hydra.sweeper.study_name=NEW_NAME)",
                file=sys.stderr,
            )
            sys.exit(2)


def _directions(direction: Any) -> list[str]:
    """Hydra's ``direction`` (one, or a list for several objectives) as optuna's names."""
    items = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    return [str(getattr(d, "name", d)).lower() for d in items]
