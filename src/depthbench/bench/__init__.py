"""The benchmarks behind ``make bench``: start-up, the machine's matmul peak, framework overhead
against a hand-written loop (with the wait for data), time to accuracy, seeds together, a profile
of one run, and the GPU check (``make gpu-check``).

``python -m depthbench.bench [SECTION|all]``; each record goes to ``docs/results/<page>.json`` and
its page, ``bench.md`` or ``gpu.md``, is rendered from it alone (``bench.pages``).
"""
