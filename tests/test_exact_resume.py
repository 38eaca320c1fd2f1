"""ExactResume's random-generator state: one entry per global rank, CUDA state of the current
device only, and resumes on another process or GPU count that never fail."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from depthbench.callbacks.reliability import ExactResume


def _on_rank(rank: int) -> ExactResume:
    callback = ExactResume()
    callback.setup(SimpleNamespace(global_rank=rank), None, "fit")  # type: ignore[arg-type]
    return callback


def _state_after(seed: int) -> dict:
    torch.manual_seed(seed)
    random.seed(seed)
    return _on_rank(0).state_dict()["ranks"][0]


def test_one_process_saves_a_list_of_one_state_without_cuda_on_a_cpu() -> None:
    state = _on_rank(0).state_dict()
    assert list(state) == ["ranks"] and len(state["ranks"]) == 1
    if not torch.cuda.is_available():
        assert "cuda" not in state["ranks"][0]  # absent, not an empty list


def test_each_rank_restores_its_own_state() -> None:
    saved = {"ranks": [_state_after(1), _state_after(2)]}
    expected = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        random.seed(seed)
        expected.append((torch.rand(3), random.random()))
    for rank in (0, 1):
        torch.manual_seed(99)
        _on_rank(rank).load_state_dict(saved)
        assert torch.equal(torch.rand(3), expected[rank][0])
        assert random.random() == expected[rank][1]


def test_a_rank_the_checkpoint_has_no_state_for_keeps_its_seeded_generators() -> None:
    saved = {"ranks": [_state_after(1)]}
    torch.manual_seed(7)
    reference = torch.rand(3)
    torch.manual_seed(7)
    _on_rank(2).load_state_dict(saved)  # three processes now, one saved: no IndexError
    assert torch.equal(torch.rand(3), reference)


def test_an_older_single_state_with_every_gpus_cuda_state_loads_here() -> None:
    """The earlier format: one dict, ``cuda`` a list of every visible GPU's state (here more
    GPUs than this machine has, or none at all)."""
    old = {**_state_after(3), "cuda": [torch.zeros(16, dtype=torch.uint8)] * 0}
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _on_rank(0).load_state_dict(old)
    assert torch.equal(torch.rand(3), expected)
