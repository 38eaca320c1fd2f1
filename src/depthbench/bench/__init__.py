"""The benchmarks behind ``make bench``: framework overhead, time to accuracy, FLOP/s, scaling.

``python -m depthbench.bench [overhead|time_to_acc|flops|scaling|data|gpu|all]``; results go to
``docs/results/bench.json`` and ``docs/results/bench.md`` (see ``depthbench.bench.report``).
"""
