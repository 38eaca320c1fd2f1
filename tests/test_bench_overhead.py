"""The one harness: ``StepTimer`` times the framework's steps (as a callback inside
``core.train``) and the hand-written loop's (called by ``hand_train``) the same way, and the
overhead benchmark reports paired ratios and the wait for data from it."""

from __future__ import annotations

import time

import pytest
import torch

from depthbench.bench import overhead, pages
from depthbench.bench.harness import StepTimer, hand_train


def test_the_timer_times_every_step_after_the_warmup_and_the_wait_before_it() -> None:
    net = torch.nn.Linear(8, 3)
    batch = (torch.randn(16, 8), torch.randint(0, 3, (16,)))

    def slow_batches():  # each batch takes 20 ms to arrive
        while True:
            time.sleep(0.02)
            yield batch

    timer = StepTimer(warmup=2, steps=6)
    hand_train(net, slow_batches(), torch.optim.SGD(net.parameters(), lr=0.1), timer)
    summary = timer.summary()
    assert timer.done == 6 and summary["timed_steps"] == 4
    assert all(0.02 <= w < s for w, s in zip(timer.wait_s, timer.step_s)), timer.wait_s
    assert summary["wait_ms"] >= 20 and summary["step_ms"] > summary["wait_ms"]
    assert summary["mean_ms"] == pytest.approx(sum(timer.step_s) / 4 * 1e3)


def test_overhead_pairs_the_framework_with_the_hand_written_loop() -> None:
    result = overhead.run(["mlp20_w128"], steps=8, warmup=3, repeats=2, threads=1,
                          extra=["model.depth=2", "data.train_size=1024"])  # fmt: skip
    r = result["models"]["mlp20_w128"]
    assert len(r["pairs"]) == 2 and r["batch_size"] == 128
    for pair in r["pairs"]:  # both sides timed by the same timer over the same steps
        assert pair["framework"]["timed_steps"] == pair["hand"]["timed_steps"] == 5
        assert all(0 < pair[side]["wait_ms"] < pair[side]["step_ms"] for side in overhead.SIDES)
    ratios = sorted(p["framework"]["step_ms"] / p["hand"]["step_ms"] for p in r["pairs"])
    assert r["ratio_range"] == pytest.approx(ratios)
    assert r["ratio"] == pytest.approx(sum(ratios) / 2)  # the median of two
    page = pages.render_bench({"overhead": {"machine": {"command": "x"}, **result}})
    assert "framework wait ms/step" in page and f"**{r['ratio']:.3f}**" in page
