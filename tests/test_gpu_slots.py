"""One GPU per parallel sweep job, on a CPU machine that pretends to have several GPUs."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import torch  # noqa: F401 (imported once here, not in every forked child)

from depthbench.launch import gpu_slots

CTX = mp.get_context("fork")  # the child inherits the faked environment and starts at once


def _job(job_nums: list[int], out: mp.Queue, release: mp.Event) -> None:
    """A launcher's worker process: claim a GPU per job, report it and CUDA_VISIBLE_DEVICES,
    hold the GPU until released."""
    import os

    for num in job_nums:
        out.put((num, gpu_slots.claim_gpu(num), os.environ.get("CUDA_VISIBLE_DEVICES")))
    release.wait(60)


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def fake(count: int | None = None, visible: str | None = None) -> None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        if visible is not None:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        if count is not None:
            monkeypatch.setenv("DEPTHBENCH_NUM_GPUS", str(count))
        monkeypatch.setenv("DEPTHBENCH_GPU_LOCK_DIR", str(tmp_path / "locks"))
        monkeypatch.setattr(gpu_slots, "_claimed", {})

    return fake


def _run_parallel(workers: list[list[int]]) -> tuple[list[tuple], list]:
    """Start one process per worker, one after the other; all stay alive until the end."""
    out, release, procs, seen = CTX.Queue(), CTX.Event(), [], []
    for job_nums in workers:
        proc = CTX.Process(target=_job, args=(job_nums, out, release))
        proc.start()
        procs.append(proc)
        seen += [out.get(timeout=60) for _ in job_nums]
    return seen, [release, *procs]


def _stop(handles: list) -> None:
    release, *procs = handles
    release.set()
    for proc in procs:
        proc.join(60)


def test_parallel_jobs_get_their_own_gpu_even_when_their_numbers_collide(fake_gpus) -> None:
    fake_gpus(count=4)
    seen, handles = _run_parallel([[0], [4], [1], [5], [2]])
    try:  # jobs 0 and 4 both start from GPU 0; the fifth job has no free GPU left and shares
        assert [(num, gpu) for num, gpu, _ in seen] == [(0, "0"), (4, "1"), (1, "2"), (5, "3"),
                                                         (2, "2")]  # fmt: skip
        assert all(env == gpu for _, gpu, env in seen)
    finally:
        _stop(handles)
    seen, handles = _run_parallel([[4]])  # every lock was released with its process
    _stop(handles)
    assert seen == [(4, "0", "0")]


def test_a_worker_keeps_its_gpu_for_every_job_it_runs(fake_gpus) -> None:
    fake_gpus(count=2)
    seen, handles = _run_parallel([[0, 1, 2], [3]])
    _stop(handles)
    assert [gpu for _, gpu, _ in seen] == ["0", "0", "0", "1"]


def test_the_gpus_given_by_cuda_visible_devices_are_shared_out(fake_gpus) -> None:
    fake_gpus(visible="2,5")  # e.g. submitit_local with gpus_per_node, or the user's choice
    seen, handles = _run_parallel([[0], [1]])
    _stop(handles)
    assert seen == [(0, "2", "2"), (1, "5", "5")]


@pytest.mark.parametrize("visible", ["", "3"])
def test_nothing_to_share_with_fewer_than_two_gpus(fake_gpus, visible: str) -> None:
    fake_gpus(count=4, visible=visible)
    assert gpu_slots.claim_gpu(0) is None


def test_only_parallel_local_launchers_claim(fake_gpus) -> None:
    fake_gpus(count=2)
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert gpu_slots.claim_gpu_for_sweep_job(basic, 1) is None
    assert gpu_slots.claim_gpu_for_sweep_job(slurm, 1) is None


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_\w+' is validated against")
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_a_parallel_sweep_runs_each_job_on_its_own_gpu(
    launcher: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real two-job sweep: joblib with two faked GPUs, submitit_local given two GPUs."""
    from helpers import run_train

    from depthbench.launch.sweeps import read_job_records

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("DEPTHBENCH_NUM_GPUS", "2")
    monkeypatch.setenv("DEPTHBENCH_GPU_LOCK_DIR", str(tmp_path / "locks"))
    extra = (["hydra.launcher.n_jobs=2"] if launcher == "joblib"
             else ["hydra.launcher.gpus_per_node=2"])  # fmt: skip
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", f"hydra/launcher={launcher}", *extra, "model.depth=1,2",
                      "trainer.max_epochs=1", "+trainer.limit_train_batches=20", "test=false",
                      "callbacks=none", "logger=none", f"hydra.sweep.dir={sweep}"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_job_records(sweep)
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert sorted(r["gpu"] for r in records) == ["0", "1"]
