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
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig

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


class ResumableOptunaSweeper(OptunaSweeper):
    """Hydra's ``OptunaSweeper`` (same arguments); ``n_trials`` counts the stored trials."""

    def __init__(self, **kwargs: Any) -> None:
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
        # a finished study launches no job, yet its optimization_results.yaml goes there
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        # the implementation's job counter is the only way to number the jobs (PR #2647)
        self.sweeper.job_idx = self._first_job
