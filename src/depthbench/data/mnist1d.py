"""MNIST-1D (Greydanus & Kobak 2024, "Scaling down deep learning with MNIST-1D"), generated here.

Ten 1-D templates of the digits, shifted, scaled, sheared and noised into length-40 sequences:
small enough for a CPU, yet MLPs, CNNs and transformers separate clearly on it. Built with the
``mnist1d`` package's ``make_dataset`` and its default arguments (``get_dataset_args()``: 5,000
examples, 80% train: 4,000 train / 1,000 test, seed 42) - never its download path - and cached
in ``<root>/MNIST1D/depthbench_cache_<split>.pt``. An example is (1, 40): one channel of length
40, so ``DeepCNN`` uses Conv1d, an MLP flattens it and a transformer reads 40 tokens.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import numpy as np
import torch

from depthbench.data.base import Batch, InMemoryDataModule
from depthbench.data.cache import cache_path, load_or_build


@cache
def _generate() -> dict[str, torch.Tensor]:
    """MNIST-1D with the package's default arguments, as float32 (N, 1, 40) and int64 labels."""
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds the global `random` and NumPy generators: restore them afterwards
    states = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return {
        "x": torch.as_tensor(data["x"], dtype=torch.float32).unsqueeze(1),
        "y": torch.as_tensor(data["y"], dtype=torch.long),
        "x_test": torch.as_tensor(data["x_test"], dtype=torch.float32).unsqueeze(1),
        "y_test": torch.as_tensor(data["y_test"], dtype=torch.long),
    }


def _fingerprint() -> dict:
    from importlib.metadata import version

    from mnist1d.data import get_dataset_args

    args = {k: v for k, v in get_dataset_args(as_dict=True).items() if k != "url"}
    return {"mnist1d": version("mnist1d"), "args": args}


class MNIST1DDataModule(InMemoryDataModule):
    """MNIST-1D as (1, 40) float sequences (already standardised by the generator), 10 classes."""

    name = "mnist1d"

    @property
    def data_dir(self) -> Path:
        return self.root / "MNIST1D"

    def prepare_data(self) -> None:
        """Generate and cache the dataset (about 4 s, once)."""
        self.load_splits()

    def load_splits(self) -> dict[str, Batch]:
        fingerprint = _fingerprint()
        out = {}
        for split, (xk, yk) in {"train": ("x", "y"), "test": ("x_test", "y_test")}.items():

            def build(xk: str = xk, yk: str = yk) -> dict[str, torch.Tensor]:
                data = _generate()
                return {"x": data[xk], "y": data[yk]}

            t = load_or_build(cache_path(self.data_dir, split), build, fingerprint)
            out[split] = (t["x"], t["y"])
        return out
