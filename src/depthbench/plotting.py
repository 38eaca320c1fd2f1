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


def integer_ticks(ax, axis: str = "x") -> None:
    """Ticks on whole numbers only along ``axis`` ("x" or "y"): layer indices, steps, epochs."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))
