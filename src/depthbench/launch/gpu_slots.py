"""One GPU per parallel sweep job: ``hydra/launcher=joblib`` and ``submitit_local``.

Both launchers run several jobs at once on one machine, and neither chooses their devices:
joblib's workers inherit every GPU, and submitit's local launcher gives every job the same
``gpus_per_node`` GPUs, so every job would start on GPU 0. Before a job touches CUDA,
:func:`claim_gpu` narrows ``CUDA_VISIBLE_DEVICES`` to one of the GPUs it was given. Each GPU is
a lock file (``fcntl.flock``, held until the process exits, released even by a SIGKILL): a job
takes the first free GPU from ``job_num % n_gpus`` on, so jobs that run at the same time get
different GPUs, also across sweeps on the same machine. A joblib worker keeps its GPU for every
job it runs (CUDA cannot move once initialised). More parallel jobs than GPUs: the extra jobs
share, with a warning.

``DEPTHBENCH_NUM_GPUS`` replaces ``torch.cuda.device_count()`` (tests fake a multi-GPU machine
with it); ``DEPTHBENCH_GPU_LOCK_DIR`` moves the lock files (default: the temp folder).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path
from typing import IO

log = logging.getLogger("depthbench")

# launchers (Hydra ``_target_`` suffixes) that run several jobs at once on this machine
PARALLEL_LOCAL_LAUNCHERS = ("JoblibLauncher", "submitit_launcher.LocalLauncher")
_claimed: dict[str, IO[str] | str] = {}  # this process's GPU and the lock that holds it


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    count = os.environ.get("DEPTHBENCH_NUM_GPUS")
    if count is None:
        import torch

        count = torch.cuda.device_count()  # NVML: does not initialise CUDA
    return [str(i) for i in range(int(count))]


def _lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"depthbench-gpu-locks-{os.getuid()}"
    folder = Path(os.environ.get("DEPTHBENCH_GPU_LOCK_DIR", default))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def claim_gpu(job_num: int) -> str | None:
    """Narrow ``CUDA_VISIBLE_DEVICES`` to one GPU for this job; return it (None: nothing done).

    Nothing is done with fewer than two GPUs, or once CUDA is initialised in this process.
    """
    if "gpu" in _claimed:
        return str(_claimed["gpu"])
    gpus = visible_gpus()
    if len(gpus) < 2:
        return None
    import torch

    if torch.cuda.is_initialized():
        log.warning("job %s: CUDA already initialised, its GPUs stay %s", job_num, gpus)
        return None
    folder = _lock_dir()
    for i in range(len(gpus)):
        gpu = gpus[(job_num + i) % len(gpus)]
        lock = open(folder / f"gpu-{gpu}.lock", "w")  # noqa: SIM115 (held for the process)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _claimed.update(gpu=gpu, lock=lock)
        break
    else:
        gpu = gpus[job_num % len(gpus)]
        _claimed["gpu"] = gpu
        log.warning("job %s: more parallel jobs than GPUs %s; it shares GPU %s", job_num, gpus, gpu)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


def claim_gpu_for_sweep_job(launcher_target: str, job_num: int) -> str | None:
    """``claim_gpu`` when the launcher runs jobs in parallel on this machine, else None."""
    if not launcher_target.endswith(PARALLEL_LOCAL_LAUNCHERS):
        return None
    return claim_gpu(job_num)
