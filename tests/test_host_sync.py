"""No host sync and no CPU-to-device copy on the training hot path, counted on the CPU.

``bench.syncs.HostSyncCounter(cpu_is_device=True)`` counts every value read (``.item()``,
``bool()``, ``float()``...) and every copy to an explicit device as if the CPU were a GPU; the
training steps between logging steps must have none.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_config

from depthbench.bench.syncs import HostSyncCounter, count_per_step

# a CNN on images with batch augmentation (random crop + flip) and the EMA of the weights
CNN_AUGMENT_EMA = ["model=cnn", "data=synthetic", "data.shape=[1,12,12]", "data.num_train=400",
                   "data.augment=true", "data.crop_padding=2", "data.batch_size=32",
                   "module.ema_decay=0.9"]  # fmt: skip
LOG_EVERY = 4
STEPS = 10


def _count_steps(overrides: list[str], tmp_path: Path) -> list[dict]:
    cfg = compose_config(
        [
            *overrides,
            f"trainer.max_steps={STEPS}",
            "trainer.max_epochs=-1",
            f"trainer.log_every_n_steps={LOG_EVERY}",
            "+trainer.limit_val_batches=0",
            "test=false",
            "trainer.enable_progress_bar=false",  # a bar reads its values at every step
        ],
        tmp_path,
    )
    return count_per_step(cfg, cpu_is_device=True)


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the default job: MLP on digits
        CNN_AUGMENT_EMA,
    ],
    ids=["default", "cnn_augment_ema"],
)
def test_no_sync_or_copy_between_logging_steps(overrides, tmp_path: Path) -> None:
    steps = _count_steps(overrides, tmp_path)
    table = [(s["step"], s["syncs"], s["copies"]) for s in steps]  # (step, syncs, copies)
    assert len(steps) == STEPS, table
    # the first step's window holds the set-up, the last one the end of the fit
    quiet = [s for s in steps[1:-1] if not s["logging_step"]]
    assert quiet and all(s["syncs"] == 0 and s["copies"] == 0 for s in quiet), table
    logging = [s for s in steps if s["logging_step"]]
    assert logging and all(s["syncs"] <= 8 for s in logging), table


def test_the_counter_sees_the_calls_that_would_sync_a_gpu() -> None:
    x = torch.ones(4)
    with HostSyncCounter(cpu_is_device=True) as counter:
        float(x.sum())
        bool(x[0] > 0)
        x.to(x.device)
        torch.as_tensor([1.0, 2.0], device=x.device)
        x.to(torch.float64)  # a dtype change: no device named, no copy counted
    assert (counter.syncs, counter.copies) == (2, 2)
    with HostSyncCounter() as on_gpu_only:  # a CPU tensor read on a CPU run is no device sync
        float(x.sum())
    assert on_gpu_only.syncs == 0
