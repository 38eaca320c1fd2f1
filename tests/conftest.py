"""Make ``tests/helpers.py`` importable and keep test runs quiet and single-threaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# one torch thread per process (this one, and the processes tests start): `make test` runs one
# pytest worker per core (pytest-xdist)
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch

torch.set_num_threads(1)
