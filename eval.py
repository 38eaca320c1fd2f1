"""Evaluate a checkpoint: ``python eval.py ckpt_path=<run folder>/checkpoints/last.ckpt``."""

from depthbench.cli import eval_main

if __name__ == "__main__":
    eval_main()
