"""The one matplotlib set-up: ``pyplot()`` on the non-interactive Agg backend.

Every figure (diagnostics, the attention heat map, reports) goes through it, so no display is
needed and the backend is chosen in one place. It imports no torch (the report path has none).
"""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (PNG files, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
