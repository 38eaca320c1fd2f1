"""Collect runs -> ``report.md`` (a table per experiment), ``results.csv`` and PNG figures.

``depthbench report PATH`` reads every run folder under PATH (a multirun, a single run, or a
tree of them): its ``.hydra/`` config and overrides, ``metrics.json``, ``gradflow.csv`` and
``csv/metrics.csv``, and draws what the sweep calls for (error and loss against depth, the
gradient per layer, training curves, and the diagnostics' attention maps and filter grids).
Runs that differ only by ``seed`` are one setting: tables show mean ± std (n), figures the mean
with error bars or bands, and diverged or failed runs are their own outcome, never a value.
"""

from depthbench.report.collect import Run, collect_runs
from depthbench.report.tables import aggregate_seeds, seed_cell
from depthbench.report.writer import write_report

__all__ = ["Run", "aggregate_seeds", "collect_runs", "seed_cell", "write_report"]
