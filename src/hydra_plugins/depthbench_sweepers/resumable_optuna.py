"""An Optuna search as a Hydra sweeper (``hparams_search=mlp_optuna``), continuing where a
killed one stopped.

``hydra.sweeper.params`` are Hydra's sweep syntax (``choice(2, 4)``, ``interval(0.1, 1)``,
``tag(log, interval(1e-4, 0.03))``, ``range(1, 8)``), turned into Optuna distributions; each
batch of ``n_jobs`` trials is asked from the study, launched as Hydra jobs (whose return value,
``cfg.optimized_metric``, is told back; NaN, a failed job, makes the trial FAIL) and the best
trial goes to ``<sweep dir>/optimization_results.yaml``, as the published hydra-optuna-sweeper
does (its 1.3 requires optuna < 3, so it is not used).

With ``storage`` (e.g. ``sqlite:///outputs/optuna.db``) and ``study_name`` set, ``n_trials`` is
the size of the whole study: the trials already finished in the storage (complete, pruned or
failed) count, the same command run again after a kill only runs the rest, and the job numbers
continue from the study's trial numbers, so job ``N`` is trial ``N`` and no job folder of the
first sweep is reused. A trial left ``RUNNING`` by a kill is not counted (it runs again as a
new trial) and is left as it is: in a study shared by several workers it may be running.
A continued study reseeds its sampler at random: with the configured seed it would propose the
first trials' parameters again. A stored study opens in optuna-dashboard
(``optuna-dashboard sqlite:///outputs/optuna.db``).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from depthbench.quiet import DropLines

log = logging.getLogger(__name__)
# alembic (optuna's sqlite storage) logs "setup plugin ..." seven times when it is imported: a
# filter on its logger, set before optuna is imported, outlives alembic's fileConfig
_ALEMBIC_PLUGINS = logging.getLogger("alembic.runtime.plugins")
if not any(isinstance(f, DropLines) for f in _ALEMBIC_PLUGINS.filters):
    _ALEMBIC_PLUGINS.addFilter(DropLines((r"setup plugin ",)))


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

    from depthbench.core.run_folder.resume import comparable

    searched = set((config.hydra.sweeper.get("params") or {}).keys())
    flat = comparable(config)
    return {k: json.loads(json.dumps(v, default=str)) for k, v in flat.items() if k not in searched}


def check_same_fixed_config(study: Any, fixed: dict[str, Any]) -> list[str]:
    """The keys whose fixed value differs from the one the stored study was run with (empty:
    the same, or a study without a record, which gets this one)."""
    from depthbench.core.run_folder.resume import differing_keys

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


class ResumableOptunaSweeper(Sweeper):
    """Hydra sweeper over an Optuna study; ``n_trials`` counts the stored trials."""

    def __init__(
        self,
        *,
        sampler: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        params: DictConfig | None = None,
    ) -> None:
        _plain_logging()
        self.sampler, self.direction = sampler, direction
        self.storage, self.study_name = storage, study_name
        self.n_jobs, self.max_failure_rate = max(1, int(n_jobs)), max_failure_rate
        self.params = params
        total = int(n_trials)
        finished, self.first_job = study_progress(storage, study_name)
        if finished:
            log.info("study %r: %d of %d trials already finished in %s; running %d more",
                     study_name, finished, total, storage, max(0, total - finished))  # fmt: skip
        if self.first_job and hasattr(sampler, "reseed_rng"):
            sampler.reseed_rng()  # a seeded sampler would otherwise repeat the first trials
        if self.first_job > finished:
            log.info("study %r: %d trials RUNNING (killed, or another worker's) are not counted",
                     study_name, self.first_job - finished)  # fmt: skip
        self.n_trials = max(0, total - finished)  # still to run
        self.job_idx = self.first_job

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """The launcher; the job numbers start at the study's next trial number."""
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self._refuse_another_setup(config)
        # a finished study launches no job, yet its optimization_results.yaml goes there
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        self.job_idx = self.first_job

    def sweep(self, arguments: list[str]) -> None:
        """Ask, launch and tell ``n_trials`` trials in batches of ``n_jobs``; write the best."""
        import optuna

        given = [f"{k}={v}" for k, v in (self.params or {}).items()] + list(arguments)
        space, fixed = search_space(given)
        directions = _directions(self.direction)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage,
                                    sampler=self.sampler, directions=directions,
                                    load_if_exists=True)  # fmt: skip
        to_go = self.n_trials
        while to_go > 0:
            trials = [study.ask(space) for _ in range(min(to_go, self.n_jobs))]
            jobs = [tuple(f"{k}={v}" for k, v in {**t.params, **fixed}.items()) for t in trials]
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            failed = 0
            for trial, ret in zip(trials, returns):
                try:
                    values = _values(ret.return_value, len(directions))
                except Exception as e:  # the job raised, or returned no number
                    log.warning("trial %d failed: %s", trial.number, e)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failed += 1
                    continue
                if any(math.isnan(v) for v in values):  # run_sweep_job's failed job
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failed += 1
                else:
                    study.tell(trial, values)
            if failed / len(returns) > self.max_failure_rate:
                for ret in returns:
                    ret.return_value  # noqa: B018 (raises the first failed job's own error)
                raise RuntimeError(f"{failed} of {len(returns)} trials failed")
            to_go -= len(trials)
        _write_results(study, Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")

    def _refuse_another_setup(self, config: DictConfig) -> None:
        """A stored study continued with other fixed settings (``data=mnist1d`` into a digits
        study) would mix its trials: one line naming the keys, exit 2, before any trial."""
        import optuna

        storage, name = self.storage, self.study_name
        if not isinstance(storage, str) or not name:
            return
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # a new study: created with its record by the first trial's sweep
            study = optuna.create_study(study_name=name, storage=storage,
                                        directions=_directions(self.direction))  # fmt: skip
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


def distribution(override: Override) -> Any:
    """The Optuna distribution of one swept override (a fixed one: its value as a string)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return CategoricalDistribution(choices)
    if override.is_range_sweep():  # Hydra's range(start, stop, step): stop included here
        bounds = (value.start, value.stop, value.step)
        if any(isinstance(b, float) for b in bounds):
            return FloatDistribution(value.start, value.stop, step=value.step)
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise ValueError(f"{override.input_line}: not a sweep Optuna can search")


def search_space(overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``key=sweep`` overrides -> ({key: distribution}, {key: fixed value}); a key given a fixed
    value (on the command line, after ``hydra.sweeper.params``) is not searched."""
    space, fixed = {}, {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        found = distribution(override)
        target = fixed if isinstance(found, str) else space
        target[override.get_key_element()] = found
    return {k: v for k, v in space.items() if k not in fixed}, fixed


def _values(returned: Any, n: int) -> list[float]:
    """The job's return value as ``n`` objective values."""
    values = [float(v) for v in returned] if n > 1 else [float(returned)]
    if len(values) != n:
        raise ValueError(f"{len(values)} values returned for {n} objectives")
    return values


def _write_results(study: Any, path: Path) -> None:
    """The best trial (or the Pareto front of several objectives), as hydra-optuna-sweeper."""
    if len(study.directions) == 1:
        best = study.best_trial
        log.info("Best parameters: %s; best value: %s", best.params, best.value)
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
    else:
        front = [{"params": t.params, "values": t.values} for t in study.best_trials]
        results = {"name": "optuna", "solutions": front}
    OmegaConf.save(OmegaConf.create(results), path)


def _directions(direction: Any) -> list[str]:
    """Hydra's ``direction`` (one, or a list for several objectives) as optuna's names."""
    items = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    return [str(getattr(d, "name", d)).lower() for d in items]
