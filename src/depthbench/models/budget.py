"""Networks by parameter budget: the width that brings a network of a given depth closest to N.

"Deep networks achieve the same results with far fewer total parameters" is a claim at a fixed
budget, so a sweep must compare depths at equal parameter counts: ``model.params=100000
model.depth=8`` asks for the width whose network has the count nearest to 100,000. The count is
exact, not a formula: each candidate is built on PyTorch's ``meta`` device (shapes without
storage, so even a 16-layer, 10,000-wide candidate costs no memory) and its parameters summed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.layers import check_positive_int

MAX_WIDTH = 1 << 20  # a bound for the search, far beyond anything a budget can ask for


def count_at_width(builder: Callable[..., nn.Module], width: int, **kwargs: Any) -> int:
    """Exact parameter count of ``builder(width=width, **kwargs)``, built on the meta device."""
    with torch.device("meta"):
        net = builder(width=width, **kwargs)
    return sum(p.numel() for p in net.parameters())


def solve_width(builder: Callable[..., nn.Module], params: int, **kwargs: Any) -> int:
    """The width whose ``builder(width=..., **kwargs)`` has the parameter count closest to
    ``params`` (ties go to the smaller width).

    The count grows with width, so a binary search finds the smallest width at or above the
    budget; the answer is it or its predecessor. Width 1 is the floor: a budget below the
    width-1 network returns 1 (and the run's ``metrics.json`` records the real count).
    """
    check_positive_int("params", params)
    lo, hi = 1, 1
    while count_at_width(builder, hi, **kwargs) < params:  # exponential search for an upper bound
        lo, hi = hi, hi * 2
        if hi > MAX_WIDTH:
            raise ConfigError(f"params={params} needs a width above {MAX_WIDTH}; ask for less")
    while lo < hi:  # smallest width with count >= params
        mid = (lo + hi) // 2
        if count_at_width(builder, mid, **kwargs) >= params:
            hi = mid
        else:
            lo = mid + 1
    if lo == 1:
        return 1
    above = count_at_width(builder, lo, **kwargs) - params
    below = params - count_at_width(builder, lo - 1, **kwargs)
    return lo - 1 if below <= above else lo
