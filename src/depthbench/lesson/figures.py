"""Draw a claim's figure, with its negative control beside the claim, as the lesson page saves it.

What a reader can rely on in every figure of the page:

- colour is the family (``depthbench.plotting.FAMILIES``: plain is vermillion, residual blue, ...
  in every figure); two nets of one family in one panel are two shades, the deeper darker;
- the negative control is drawn dashed (lines) or hatched (bars) in its arm's colour, and the
  legend names the change that made it;
- the title says the claim; panels a reader compares share their y scale; layers, depths and
  blocks are ticked on whole numbers;
- nothing is clipped or overlaps: constrained layout, wrapped titles and labels, threshold labels
  inside the axes, one legend below the panels; saved without ``bbox_inches="tight"``, so what is
  on the canvas is what was laid out (``tests/test_lesson_figures.py`` checks every text).
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from depthbench.atomic import atomic_write
from depthbench.lesson.verdict_types import Figure, Series
from depthbench.plotting import CONTROL_COLOR, family_color, pyplot, resolve_family, shade
from depthbench.report.figures import mark_diverged

DPI = 90  # the page's PNGs
PANEL_W, PANEL_H = 4.4, 3.0  # inches per panel
FONT = 8  # axis labels; ticks, legend and threshold labels one point smaller
MARKERS = ("o", "s", "^", "D", "v")
RIGHT = "; right: "  # "left quantity; right: right quantity" in xlabel / ylabel of two panels


def draw(
    figure: Figure,
    path: Path,
    title: str,
    control: Figure | None = None,
    change: str = "",
) -> Path:
    """Save ``figure`` (and ``control``, the same verdict on the negative control's runs, made by
    ``change``) to ``path`` as a PNG titled ``figure.title`` or else ``title``."""
    plt = pyplot()
    fig = render(figure, title, control, change)
    try:  # a reader, or a kill mid-save, sees the old figure or the new one, never half of one
        with atomic_write(path, "wb") as f:
            fig.savefig(f, dpi=DPI, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def render(figure: Figure, title: str, control: Figure | None = None, change: str = "") -> Any:
    """The matplotlib figure ``draw`` saves (laid out; the caller closes it)."""
    plt = pyplot()
    series = _with_control(figure, control)
    panels: dict[str, list[Series]] = {}
    for s in series:
        panels.setdefault(s.panel, []).append(s)
    labels = _panel_labels(figure, control, list(panels))
    # panels of one quantity share a scale, so a reader can compare them
    scale = {p: ("all" if figure.sharey else p if figure.sharey is False else y)
             for p, (_, y) in labels.items()}  # fmt: skip
    cols = len(panels) if len(panels) <= 3 else 2
    rows = math.ceil(len(panels) / cols)
    width = max(6.4, PANEL_W * cols)
    fig = plt.figure(figsize=(width, PANEL_H * rows + 1.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    handles: dict[tuple[str, bool], Any] = {}  # (label, control) -> legend handle
    first: dict[str, Any] = {}  # scale -> its first axes
    names = list(panels)
    for i, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        xlabel, ylabel = labels[name]
        if scale[name] in first:
            ax.sharey(first[scale[name]])
        first.setdefault(scale[name], ax)
        handles.update(_draw_panel(ax, figure, panels[name], width / cols))
        ax.set_xlabel(_wrap(xlabel, width / cols, FONT), fontsize=FONT)
        if i % cols and scale[names[i - 1]] == scale[name]:  # its left neighbour's scale
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel(_wrap(ylabel, PANEL_H * 0.9, FONT), fontsize=FONT)
        if len(panels) > 1 and name:
            ax.set_title(_wrap(name, width / cols, FONT + 1), fontsize=FONT + 1)
    fig.suptitle(_wrap(figure.title or title, width, 10), fontsize=10)
    _legend(fig, figure, series, handles, change, width)
    if figure.hlines:
        fig.canvas.draw()  # lay out, then move threshold labels that collide
        for ax in axes.flat[: len(panels)]:
            _unclash(ax)
    return fig


# ---- what goes in which panel ---------------------------------------------------------------
def _with_control(figure: Figure, control: Figure | None) -> list[Series]:
    """The claim's series, then the control's (``control=True``), leaving out a control series
    that repeats a claim series of its panel (the arm the control did not change)."""
    out = list(figure.series)
    if control is None:
        return out
    claim_panels = {s.panel for s in figure.series}
    for s in control.series:
        panel = _control_panel(s.panel, claim_panels)
        same = any(c.panel == panel and c.label == s.label and _same(c, s) for c in figure.series)
        if not same:
            out.append(replace(s, panel=panel, control=True))
    return out


def _control_panel(panel: str, claim_panels: set[str]) -> str:
    """Where a control series of ``panel`` goes: the claim's panel of that name, else its own."""
    return panel if panel in claim_panels else f"control: {panel}" if panel else "control"


def _same(a: Series, b: Series) -> bool:
    if len(a.x) != len(b.x) or list(a.x) != list(b.x):
        return False
    return bool(np.allclose(a.mean, b.mean, equal_nan=True))


def _panel_labels(
    figure: Figure, control: Figure | None, panels: list[str]
) -> dict[str, tuple[str, str]]:
    """panel -> (xlabel, ylabel): the figure's ``panel_labels``, else its own labels; two panels
    labelled "left; right: right" get one part each."""
    own = dict(figure.panel_labels)
    if control is not None:  # a control panel the claim lacks is drawn as "control: <panel>"
        claim_panels = {s.panel for s in figure.series}
        for p, lab in control.panel_labels.items():
            own.setdefault(_control_panel(p, claim_panels), lab)
    x_parts, y_parts = figure.xlabel.split(RIGHT), figure.ylabel.split(RIGHT)
    out = {}
    for i, p in enumerate(panels):
        if p in own:
            out[p] = own[p]
            continue
        side = min(i, 1)
        x = x_parts[side] if len(x_parts) == 2 else figure.xlabel
        y = y_parts[side] if len(y_parts) == 2 else figure.ylabel
        out[p] = (x, y)
    return out


# ---- one panel --------------------------------------------------------------------------------
def _colours(series: list[Series]) -> dict[int, tuple[Any, str]]:
    """id(series) -> (colour, marker): the family's colour; several of one family (claim or
    control alike) in shades from light to full colour, in order of the depth their label names."""
    groups: dict[tuple[str, bool], list[Series]] = {}
    for s in series:
        groups.setdefault((family_color(s.family, s.label), s.control), []).append(s)
    out = {}
    for (colour, _), members in groups.items():
        members = sorted(members, key=_depth_key)
        k = len(members)
        for rank, s in enumerate(members):
            light = 0.55 * (k - 1 - rank) / (k - 1) if k > 1 else 0.0
            out[id(s)] = (shade(colour, light), MARKERS[rank % len(MARKERS)])
    return out


def _gid(s: Series) -> str:
    """What an artist of ``s`` draws: "series|<family>|<control 0/1>|<label>" (for tests)."""
    return f"series|{resolve_family(s.family, s.label) or ''}|{int(s.control)}|{s.label}"


def _depth_key(s: Series) -> float:
    found = re.search(r"\d+", s.label)
    return float(found.group()) if found else math.inf


def _draw_panel(ax: Any, figure: Figure, series: list[Series], width_in: float) -> dict:
    """Draw ``series`` and the thresholds on ``ax``; return (label, control) -> legend handle."""
    colours = _colours(series)
    if figure.categorical:
        handles = _bars(ax, figure, series, colours, width_in)
    else:
        handles = _lines(ax, figure, series, colours)
    for y, text in figure.hlines:
        if math.isfinite(y) and (y > 0 or not figure.logy):  # a threshold that has a place
            ax.axhline(y, color="#444444", ls=":", lw=0.9, zorder=1)
            _threshold_label(ax, y, text)
    ax.tick_params(labelsize=FONT - 1)
    ax.grid(alpha=0.3)
    if figure.logy:
        ax.set_yscale("log")
    _room_for(ax, [y for y, _ in figure.hlines], figure.logy)
    return handles


def _bars(ax: Any, figure: Figure, series: list[Series], colours: dict, width_in: float) -> dict:
    """Bars per category: the claim's, then the control's hatched beside them."""
    handles = {}
    cats = sorted({x for s in series for x in s.x})
    for cat in cats:
        here = [s for s in series if cat in s.x]
        w = 0.8 / len(here)
        for i, s in enumerate(here):
            j = list(s.x).index(cat)
            at = cat + (i - (len(here) - 1) / 2) * w
            mean = s.mean[j] if math.isfinite(s.mean[j]) else 0.0
            std = s.std[j] if j < len(s.std) and math.isfinite(s.std[j]) else 0.0
            colour = colours[id(s)][0]
            style = {"color": colour, "edgecolor": colour, "lw": 0.8}
            if s.control:
                style.update(color=shade(colours[id(s)][0], 0.6), hatch="///")
            bar = ax.bar(at, mean, width=w * 0.92, yerr=std, capsize=3, **style,
                         error_kw={"lw": 0.9})  # fmt: skip
            for patch in bar.patches:
                patch.set_gid(_gid(s))
            handles.setdefault((s.label, s.control), bar)
            if cat in s.diverged_x:
                mark_diverged(ax, [at], color=colour)
    ticks = figure.xticks or [f"{c:g}" for c in cats]
    chars = max(8, int(width_in * 72 / max(len(ticks), 1) / ((FONT - 1) * 0.6)) - 1)
    ax.set_xticks(range(len(ticks)), [textwrap.fill(t, chars) for t in ticks])
    ax.set_xlim(-0.6, len(ticks) - 0.4)
    return handles


def _lines(ax: Any, figure: Figure, series: list[Series], colours: dict) -> dict:
    handles = {}
    xs_all = sorted({float(x) for s in series for x in s.x})
    for row, s in enumerate(series):
        colour, marker = colours[id(s)]
        dense = len(s.x) > 40  # a signal along x (df/dx), not a few settings: no markers
        style: dict[str, Any] = {
            "color": colour,
            "lw": 0.9 if dense else 1.5,
            "marker": None if dense else marker,
            "ms": 4,
        }
        if s.control:
            style.update(ls="--", mfc="white", alpha=0.9)
        std = [v if math.isfinite(v) else 0.0 for v in s.std]
        if any(std) and not dense:
            drawn = ax.errorbar(s.x, s.mean, yerr=std, capsize=2.5, elinewidth=0.9, **style)
            drawn[0].set_gid(_gid(s))
        else:
            drawn = ax.plot(s.x, s.mean, gid=_gid(s), **style)[0]
        handles.setdefault((s.label, s.control), drawn)
        mark_diverged(ax, sorted(set(s.diverged_x)), color=colour, row=row)
    whole = bool(xs_all) and all(float(x).is_integer() for x in xs_all)
    integer_x = figure.integer_x if figure.integer_x is not None else whole
    if figure.logx and xs_all and min(xs_all) > 0:
        powers_of_two = all(math.log2(x).is_integer() for x in xs_all)
        ax.set_xscale("log", base=2 if powers_of_two else 10)
        ax.xaxis.set_minor_locator(_null_locator())
        logs = np.log(xs_all)
        if len(logs) < 2 or np.diff(logs).min() >= np.ptp(logs) / 12:
            ax.set_xticks(xs_all, [_tick(x) for x in xs_all])  # each setting, ticked
        else:  # settings too close to tick each: the scale's own ticks
            from matplotlib.ticker import FuncFormatter

            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _tick(x)))
    elif integer_x:
        gaps = np.diff(xs_all)
        if whole and len(xs_all) <= 12 and (not len(gaps) or gaps.min() >= np.ptp(xs_all) / 12):
            ax.set_xticks(xs_all, [_tick(x) for x in xs_all])  # each setting, ticked
        else:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    return handles


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _tick(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def _room_for(ax: Any, ys: list[float], log: bool) -> None:
    """Keep every threshold inside the y range, with room above it for its label."""
    lo, hi = ax.get_ylim()
    finite = [y for y in ys if math.isfinite(y) and (y > 0 or not log)]
    if not finite:
        return
    if log:
        lo, hi = min(lo, min(finite) / 2), max(hi, max(finite) * 2)
    else:
        pad = 0.08 * (max(hi, *finite) - min(lo, *finite))
        lo, hi = min(lo, min(finite) - pad), max(hi, max(finite) + pad)
    ax.set_ylim(lo, hi)


# ---- threshold labels ---------------------------------------------------------------------
def _threshold_label(ax: Any, y: float, text: str) -> None:
    """The criterion's threshold named at the right end of its line, inside the axes."""
    ax.annotate(
        text,
        (0.99, y),
        xycoords=("axes fraction", "data"),
        xytext=(0, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=FONT - 1,
        color="#333333",
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
        annotation_clip=False,
        gid="threshold",
    )


def _unclash(ax: Any) -> None:
    """Threshold labels that leave the axes or meet another go below their line, then to the
    left end."""
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    labels = [t for t in ax.texts if t.get_gid() == "threshold"]
    placed: list[Any] = []
    for t in labels:
        for move in (None, "below", "left", "left-below"):
            if move:
                below = move.endswith("below")
                t.set_va("top" if below else "bottom")
                t.xyann = (0, -2 if below else 2)
                if move.startswith("left"):
                    t.xy = (0.01, t.xy[1])
                    t.set_ha("left")
            ext = t.get_window_extent(renderer)
            inside = ext.y1 <= box.y1 and ext.y0 >= box.y0
            if inside and not any(ext.overlaps(p) for p in placed):
                break
        placed.append(t.get_window_extent(renderer))


# ---- the legend ---------------------------------------------------------------------------------
def _legend(
    fig: Any, figure: Figure, series: list[Series], handles: dict, change: str, width_in: float
) -> None:
    """One legend below the panels: each claim series once (a bar whose label is its category's
    tick needs none), a control series only where the claim has no series of its label, and
    one "negative control" key whose title names the change that made it."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    claim = {s.label for s in series if not s.control}
    skip = set(figure.xticks) if figure.categorical else set()
    entries: list[tuple[Any, str]] = []
    for (label, is_control), h in handles.items():
        if label in skip or (is_control and label in claim):
            continue
        if label not in [n for _, n in entries]:
            entries.append((h, label))
    for ax in fig.axes:  # the red crosses of diverged runs (report.figures.mark_diverged)
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label == "diverged" and label not in [n for _, n in entries]:
                entries.append((h, label))
    heading = None
    if any(s.control for s in series):
        kind = "hatched" if figure.categorical else "dashed"
        proxy = (
            Patch(facecolor="white", edgecolor=CONTROL_COLOR, hatch="///")
            if figure.categorical
            else Line2D([], [], color=CONTROL_COLOR, ls="--", marker="o", mfc="white", ms=4)
        )
        entries.append((proxy, f"negative control ({kind})"))
        if change:
            heading = _wrap(f"negative control: {change}", width_in * 0.9, FONT - 1)
    if not entries:
        return
    longest = max(len(n) for _, n in entries) + 6  # characters, with the key
    chars = width_in * 72 / ((FONT - 1) * 0.6)
    fig.legend(
        [h for h, _ in entries],
        [n for _, n in entries],
        loc="outside lower center",
        ncols=max(1, min(len(entries), int(chars // longest))),
        fontsize=FONT - 1,
        title=heading,
        title_fontsize=FONT - 1,
        frameon=False,
    )


def _wrap(text: str, inches: float, points: float) -> str:
    """``text`` broken into lines that fit ``inches`` at ``points`` (about 0.55 em a character)."""
    chars = max(10, int(inches * 72 / (points * 0.55)))
    return "\n".join(textwrap.wrap(text, chars)) if text else text
