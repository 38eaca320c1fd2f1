"""The benchmarks behind ``make bench``: framework overhead against a hand-written loop, time to
accuracy, FLOP/s, scaling, the data path, a long multirun's resources, host syncs and the GPU
check.

``python -m depthbench.bench [overhead|time_to_acc|flops|scaling|data|gpu|profile|load|all]``;
each record goes to ``docs/results/<page>.json`` and its page is rendered from it alone
(``bench.pages``): ``bench.md``, ``bench_data.md`` and ``gpu.md``.
"""
