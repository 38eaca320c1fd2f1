"""``python -m depthbench.report PATH``."""

import sys

from depthbench.report.cli import main

sys.exit(main())
