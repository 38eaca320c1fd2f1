"""``hydra/launcher=seeds_together``: the seeds of a sweep train together, one stacked model.

The jobs of a multirun whose overrides are equal but for ``seed`` form a group; a group of
several seeds that ``depthbench.core.together.why_apart`` accepts trains as one stacked model in
this process (``depthbench.core.together.train_together``); every other job runs exactly as Hydra's
basic launcher runs it (``run_job`` with the task function), one after the other, and a group
that could have stacked but cannot says why in one log line.

Each job of a group still gets its own job folder from Hydra's own ``run_job`` (``.hydra/*.yaml``,
job callbacks, the log file) and its own ``jobs.jsonl`` line from
``depthbench.launch.sweeps.run_sweep_job``, as a job of any other launcher. Hydra imports this
module at every start: torch and depthbench load only when a sweep launches.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from depthbench.core.overrides import override_key

log = logging.getLogger("depthbench")


def group_jobs(job_overrides: Sequence[Sequence[str]], max_seeds: int) -> list[list[int]]:
    """Indices of the jobs whose overrides are equal but for ``seed``, in order of first
    appearance; groups of at most ``max_seeds``."""
    groups: dict[tuple[str, ...], list[list[int]]] = {}
    for i, overrides in enumerate(job_overrides):
        key = tuple(sorted(o for o in overrides if override_key(o) != "seed"))
        chunks = groups.setdefault(key, [[]])
        if len(chunks[-1]) >= max_seeds:
            chunks.append([])
        chunks[-1].append(i)
    return [chunk for chunks in groups.values() for chunk in chunks]


class SeedsTogetherLauncher(Launcher):
    """Train the seeds of each group of a sweep as one stacked model; the rest as usual."""

    def __init__(self, max_seeds: int = 16, stack_convs_on_cpu: bool = False) -> None:
        self.max_seeds = int(max_seeds)
        self.stack_convs_on_cpu = bool(stack_convs_on_cpu)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _sweep_config(self, overrides: Sequence[str], idx: int) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        return config

    def _run(self, config: DictConfig, task: TaskFunction) -> JobReturn:
        """One job through Hydra's ``run_job``, as the basic launcher runs it."""
        assert self.hydra_context is not None and self.config is not None
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        groups = group_jobs(job_overrides, self.max_seeds)
        log.info("Launching %d jobs in %d groups (seeds together)", len(job_overrides), len(groups))
        returns: dict[int, JobReturn] = {}
        for group in groups:
            configs = [self._sweep_config(job_overrides[i], initial_job_idx + i) for i in group]
            for i in group:
                log.info(
                    "\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(job_overrides[i]))
                )
            if len(group) > 1:
                done = self._together(configs)
                if done is not None:
                    returns.update(zip(group, done, strict=True))
                    continue
            for i, config in zip(group, configs, strict=True):
                returns[i] = self._run(config, _no_together_resume(self.task_function))
        return [returns[i] for i in range(len(job_overrides))]

    def _together(self, configs: list[DictConfig]) -> list[JobReturn] | None:
        """Train the group's seeds as one model; None (after one log line) when it cannot."""
        from depthbench.core.run_folder.redaction import redact_hydra_outputs
        from depthbench.core.together import CannotStack, train_together, why_apart
        from depthbench.launch.sweeps import run_sweep_job

        prepared: list[tuple[JobReturn, DictConfig, DictConfig]] = []

        def prepare(task_cfg: DictConfig) -> None:  # inside run_job: the job's folder and log
            redact_hydra_outputs()
            resolved = OmegaConf.create(OmegaConf.to_container(task_cfg, resolve=True))
            prepared.append((None, resolved, HydraConfig.instance().cfg))  # type: ignore[arg-type]

        jobs = []
        for config in configs:
            ret = self._run(config, prepare)
            if ret.status != JobStatus.COMPLETED:  # the config did not resolve: its own error
                return None
            jobs.append(ret)
        cfgs = [p[1] for p in prepared]
        nums = ", ".join(str(c.hydra.job.num) for c in configs)
        reason = why_apart(cfgs[0])
        if reason is not None:
            log.info("seeds_together: jobs %s run apart: %s", nums, reason)
            return None
        handlers = self._log_as_jobs(configs, cfgs)
        outcomes: list[Any]
        try:
            outcomes = train_together(cfgs, stack_convs=self.stack_convs_on_cpu)
        except CannotStack as e:  # found once the nets were built, before anything was written
            log.info("seeds_together: jobs %s run apart: %s", nums, e)
            return None
        except (KeyboardInterrupt, SystemExit) as stop:  # each job records it; the sweep stops
            for config, cfg in zip(configs, cfgs, strict=True):
                with contextlib.suppress(KeyboardInterrupt, SystemExit):  # it re-raises
                    _record(config, cfg, stop, run_sweep_job)
            raise
        except Exception as e:  # the group failed: each of its jobs records it, as its own
            outcomes = [e] * len(cfgs)
        finally:
            for handler in handlers:
                logging.getLogger().removeHandler(handler)
                handler.close()
            assert self.config is not None
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        for ret, config, cfg, outcome in zip(jobs, configs, cfgs, outcomes, strict=True):
            ret.return_value = _record(config, cfg, outcome, run_sweep_job)
            ret.status = JobStatus.COMPLETED
        return jobs

    def _log_as_jobs(self, configs: list[DictConfig], cfgs: list[DictConfig]) -> list[Any]:
        """Log as the group's first job logs (its format and file, Hydra's job logging) and into
        every other job's log file too; the added handlers, to remove at the end."""
        previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(configs[0])  # its log file's name resolves here
        try:
            configure_log(configs[0].hydra.job_logging, configs[0].hydra.verbose)
        finally:
            HydraConfig.instance().cfg = previous
        return _log_to_every_job(cfgs)


def _no_together_resume(task: TaskFunction) -> TaskFunction:
    """``task``, except for a job that would resume a run stopped while its seeds trained
    together: that job is refused in one line (its folder left as it is), since the checkpoint
    holds no Lightning loop position to resume from exactly."""

    def job(task_cfg: DictConfig) -> Any:
        from depthbench.core.run_folder.folder_lock import RunFolderError
        from depthbench.core.together import resume_refusal
        from depthbench.launch.sweeps import run_sweep_job

        reason = resume_refusal(task_cfg)
        if reason is None:
            return task(task_cfg)

        def refuse(_cfg: DictConfig) -> dict[str, Any]:
            raise RunFolderError(reason)

        return run_sweep_job(refuse, task_cfg)

    return job


def _record(config: DictConfig, task_cfg: DictConfig, outcome: Any, run_sweep_job: Any) -> Any:
    """The job's jobs.jsonl line and return value, by the same ``run_sweep_job`` as any job."""

    def recorded(_cfg: DictConfig) -> dict[str, Any]:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        return run_sweep_job(recorded, task_cfg)
    finally:
        HydraConfig.instance().cfg = previous


def _log_to_every_job(cfgs: list[DictConfig]) -> list[logging.Handler]:
    """File handlers writing the group's log lines into every job's own log file as well."""
    root = logging.getLogger()
    current = {getattr(h, "baseFilename", None) for h in root.handlers}
    template = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
    added: list[logging.Handler] = []
    for cfg in cfgs:
        path = Path(cfg.paths.output_dir) / f"{cfg.task_name}.log"
        if str(path.absolute()) in current:
            continue
        handler = logging.FileHandler(path, mode="a")
        if template is not None:
            handler.setFormatter(template.formatter)
            handler.setLevel(template.level)
        root.addHandler(handler)
        added.append(handler)
    return added
