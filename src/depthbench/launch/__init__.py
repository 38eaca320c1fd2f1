"""Launching runs: Hydra multiruns and sweeps, DDP under Hydra, one GPU per sweep job."""
