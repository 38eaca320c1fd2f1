"""The benchmarks behind ``make bench``: framework overhead against a hand-written loop, time to
accuracy, FLOP/s, the data path, host syncs and the GPU check.

``python -m depthbench.bench [overhead|time_to_acc|flops|data|gpu|profile|all]``; each record goes
to ``docs/results/<page>.json`` and its page is rendered from it alone (``bench.pages``):
``bench.md``, ``bench_data.md`` and ``gpu.md``.
"""
