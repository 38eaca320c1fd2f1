"""Lightning's DDP made safe for Hydra jobs (``accelerator=ddp|ddp_cpu``).

Lightning's DDP launcher starts ranks 1..N-1 by re-running the command line. Under Hydra it
appends ``hydra.run.dir=<run.dir>`` to ``sys.argv`` (``lightning/fabric/strategies/launchers/
subprocess_script.py``), which breaks in a multirun: ``-m`` and the sweep lists are re-run (every
rank would start the whole sweep) and ``run.dir`` is not the job's folder. ``HydraDDPStrategy``
starts each rank with the *job's* own overrides, ``hydra.mode=RUN`` and the job's output folder,
so every rank of a job writes into the same run folder. Under SLURM or torchrun the processes are
started outside (``creates_processes_externally``) and nothing is launched here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from depthbench.errors import ConfigError


def _quote(value: str) -> str:
    # a Hydra override value in single quotes (paths may hold `=`, `,` or spaces)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# hydra overrides of the parent that the rank processes replace
_REPLACED = ("hydra.run.dir", "hydra.mode", "hydra.output_subdir", "hydra.job.name")


def hydra_rank_command(local_rank: int) -> tuple[list[str], str]:
    """The command line (and working folder) that starts rank ``local_rank`` of this Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hydra_cfg = HydraConfig.get()
    if getattr(__main__, "__spec__", None) is not None:
        command = [sys.executable, "-m", __main__.__spec__.name]
    elif os.path.isfile(sys.argv[0]):
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        raise ConfigError(
            f"DDP starts its processes by re-running the script, but {sys.argv[0]!r} is not a "
            "file; run it as `python train.py ...` or `depthbench-train ...`"
        )
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith(_REPLACED)]
    command += [*hydra_cfg.overrides.task, *hydra_overrides]
    command += [
        f"hydra.run.dir={_quote(str(hydra_cfg.runtime.output_dir))}",
        "hydra.output_subdir=null",  # rank 0 already saved .hydra/
        "hydra.mode=RUN",  # a sweep's job is one run on every rank
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
    ]
    return command, get_original_cwd()


# what the launcher sets in this process; LOCAL_RANK there tells Lightning "already launched"
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_ENV_BEFORE_LAUNCH: dict[str, str | None] = {}


def end_distributed_job() -> None:
    """After a DDP job in a multirun: leave the process group, undo the launcher's environment.

    The next job of the sweep runs in this same process; without this it would find the old
    process group (whose other ranks have exited) and ``LOCAL_RANK`` set, and start no ranks.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key, value in _ENV_BEFORE_LAUNCH.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _ENV_BEFORE_LAUNCH.clear()


class _HydraSubprocessLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, starting the ranks with ``hydra_rank_command``."""

    # Private override: Lightning has no public way to change the rank command line (its
    # Hydra multirun support is Lightning issue #16694, fix proposed in PR #18175, unmerged).
    # The body is Lightning 2.6's, with hydra_rank_command and the saved launch environment;
    # tests/test_distributed.py runs it (ddp_cpu runs and a ddp_cpu multirun).
    def _call_children_scripts(self) -> None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():  # not a Hydra app: Lightning's own command line
            return super()._call_children_scripts()
        self._check_can_spawn_children()
        self.procs = []
        env = self.cluster_environment
        _ENV_BEFORE_LAUNCH.update({k: os.environ.get(k) for k in _LAUNCH_ENV})
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = str(env.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            if os.environ.get("PL_GLOBAL_SEED") is None:
                child_env.pop("PL_GLOBAL_SEED", None)
            command, cwd = hydra_rank_command(local_rank)
            self.procs.append(subprocess.Popen(command, env=child_env, cwd=cwd))
        return None


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` whose rank processes rejoin the same Hydra job and run folder.

    Same arguments as Lightning's ``DDPStrategy`` (``process_group_backend="gloo"`` for CPUs,
    ``"nccl"`` for GPUs); only the ``popen`` start method is changed.
    """

    # Private override (the strategy's only launcher hook), see _HydraSubprocessLauncher.
    def _configure_launcher(self) -> None:
        assert self.cluster_environment is not None
        if self._start_method == "popen":
            self._launcher = _HydraSubprocessLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes
            )
        else:
            super()._configure_launcher()
