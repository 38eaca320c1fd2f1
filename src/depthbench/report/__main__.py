"""``python -m depthbench.report PATH``."""

from depthbench.report.cli import main

main()
