"""Every figure of the lesson page, rendered as the page saves it (``lesson.figures.draw``: no
tight bounding box to hide what falls outside): every text lies inside the canvas and no two
texts overlap; a family has one colour in every figure; the control is drawn apart (dashed or
hatched); the title says the claim; panels of one quantity share their y scale; whole-number x
values get whole-number ticks.

The figures come from the verdict functions on the hand-made results of
``test_lesson_verdicts.py`` and ``test_lesson_demonstrations.py`` (claim and negative control,
as the lesson judges them), and from the committed ``docs/results/lesson.json``: the figures of
the page as it stands, from its recorded numbers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from unittest import mock

import matplotlib.text
import pytest
import test_lesson_demonstrations as TD
import test_lesson_verdicts as TV
from helpers import ROOT
from matplotlib.colors import to_rgb

from depthbench.lesson import decide as DE
from depthbench.lesson import figures as F
from depthbench.lesson.claims import load_claims
from depthbench.lesson.verdict_types import Figure, Series
from depthbench.plotting import FAMILIES, family_color, family_of, pyplot, setting_family

PAGE = ROOT / "docs" / "results" / "lesson.json"
SWEEP_NAMES = {"main", "resnet", "sigmoid", "relu", "frozen", "scratch", "deep", "shallow"}


def _verdict_case(name: str) -> tuple[dict, Callable[[], dict]]:
    claim = TV.claim_of(name)
    frames, control = TV.CASES[name](claim.criterion)
    return frames, partial(DE.control_frames, claim, frames, control)


def _shattered() -> tuple[dict, Callable[[], dict]]:
    smooth = [0.97, 0.98, 0.96]
    frames = {"main": TD.shattered_rows(32, [0.02, -0.05, 0.04], [0.30, 0.36, 0.27])}
    return frames, lambda: {"main": TD.shattered_rows(2, smooth, smooth)}


def _transfer_by_layer() -> tuple[dict, Callable[[], dict]]:
    peaked = [[a + d for a in TD.PEAKED] for d in (-0.005, 0.0, 0.005)]
    return {"main": TD.transfer_rows(peaked)}, lambda: {"main": TD.transfer_rows([TD.AT_INIT] * 3)}


def _cases() -> list:
    """(source, claim, what makes its frames) for every figure: the hand-made results of the
    verdict tests (claim and control), then each claim of the committed page."""
    made: dict[str, Callable] = {name: partial(_verdict_case, name) for name in TV.CASES}
    made["landscape"] = lambda: ({"resnet": TV._landscape()}, None)
    made["shattered_gradients"] = _shattered
    made["transfer_by_layer"] = _transfer_by_layer
    out = [pytest.param("hand-made", n, m, id=f"hand-made-{n}") for n, m in made.items()]
    records = {c["claim"]: c for c in json.loads(PAGE.read_text())["claims"]}
    for claim in load_claims():
        if claim.name in records:
            record = records[claim.name]
            out.append(pytest.param("lesson.json", claim.name, lambda r=record: (r, None),
                                    id=f"page-{claim.name}"))  # fmt: skip
    return out


CASES = _cases()


def _figures(source: str, name: str, make: Callable):
    """(claim, its figure, its control's figure or None) as the page gets them."""
    claim = TV.claim_of(name)
    try:
        frames, control = make()
    except KeyError as e:  # the verdict tests' own results no longer fit: they say so
        pytest.skip(f"{name}: the hand-made results do not build ({e})")
    if source == "lesson.json":
        result = DE.decide(claim, None, record=frames)
        own, ctrl = result.verdict, result.control
    else:
        own = DE.judge(claim, frames)
        try:  # as decide: control runs that do not fit the claim leave it undecided
            ctrl = DE.judge(claim, control()) if control is not None else None
        except KeyError:
            ctrl = None
    if own.figure is None or not own.figure.series:
        pytest.skip(f"{name} from {source}: no figure ({own.outcome}: {own.summary[:80]})")
    return claim, own.figure, ctrl.figure if ctrl is not None else None


def _saved(fig) -> list:
    """(text, window extent) of every text drawn when ``fig`` is saved as ``draw`` saves it."""
    drawn: list[tuple[matplotlib.text.Text, object]] = []
    original = matplotlib.text.Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self, self.get_window_extent(renderer)))

    with mock.patch.object(matplotlib.text.Text, "draw", record):
        fig.savefig(io.BytesIO(), dpi=F.DPI, format="png")
    last = {id(t): (t, box) for t, box in drawn}  # a text drawn twice: where it ended up
    return list(last.values())


def _assert_inside_and_apart(fig, drawn: list) -> None:
    width, height = fig.canvas.get_width_height()
    assert drawn, "no text drawn"
    for text, box in drawn:
        assert box.x0 >= -0.5 and box.y0 >= -0.5, f"{text.get_text()!r} leaves the canvas {box}"
        assert box.x1 <= width + 0.5 and box.y1 <= height + 0.5, (
            f"{text.get_text()!r} leaves the {width}x{height} canvas: {box}"
        )
    for i, (a, box_a) in enumerate(drawn):
        for b, box_b in drawn[i + 1 :]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            assert dx <= 0.5 or dy <= 0.5, (
                f"{a.get_text()!r} overlaps {b.get_text()!r}: {box_a} / {box_b}"
            )


def _series_artists(fig) -> Iterator[tuple[str, bool, str, object]]:
    """(family, control, label, artist) of every drawn series."""
    for ax in fig.axes:
        for artist in [*ax.get_lines(), *ax.patches]:
            gid = artist.get_gid() or ""
            if gid.startswith("series|"):
                _, family, control, label = gid.split("|", 3)
                yield family, control == "1", label, artist


def _is_shade_of(colour, base: str) -> bool:
    """``colour`` is ``base`` mixed with white (0-60 %): two depths of one family."""
    c, b = to_rgb(colour), to_rgb(base)
    ts = [1 - (1 - ci) / (1 - bi) for ci, bi in zip(c, b, strict=True) if bi < 0.98]
    return bool(ts) and max(ts) - min(ts) < 0.02 and -0.01 <= ts[0] <= 0.9


@pytest.mark.parametrize(("source", "name", "make"), CASES)
def test_lesson_figure_as_saved(source: str, name: str, make: Callable) -> None:
    claim, figure, ctrl = _figures(source, name, make)
    fig = F.render(figure, claim.title, ctrl, claim.control.change if claim.control else "")
    try:
        _check(fig, _saved(fig), claim, figure, ctrl)
    finally:
        pyplot().close(fig)


def _check(fig, drawn: list, claim, figure: Figure, ctrl: Figure | None) -> None:
    # every text inside the canvas, none over another
    _assert_inside_and_apart(fig, drawn)
    # the title says the claim; no panel is titled by a bare sweep name
    assert " ".join(fig.get_suptitle().split()) == " ".join((figure.title or claim.title).split())
    for ax in fig.axes:
        assert ax.get_title().strip().lower() not in SWEEP_NAMES, ax.get_title()
    # colour is the family's (FAMILIES: the same in every figure), the control drawn apart
    artists = list(_series_artists(fig))
    assert artists
    for family, is_control, label, artist in artists:
        bar = isinstance(artist, matplotlib.patches.Patch)
        colour = artist.get_edgecolor() if bar else artist.get_color()
        base = FAMILIES[family] if family else family_color(None, label)
        assert _is_shade_of(colour, base), (label, family, colour)
        if is_control:
            assert (artist.get_hatch() if bar else artist.get_linestyle()) in ("///", "--")
        else:
            assert (not artist.get_hatch()) if bar else artist.get_linestyle() == "-"
    if ctrl is not None and any(
        not any(c.label == s.label and F._same(c, s) for c in figure.series) for s in ctrl.series
    ):
        assert any(is_control for _, is_control, _, _ in artists), "the control is not drawn"
    # panels of one quantity share one y scale
    panels = list(dict.fromkeys(s.panel for s in figure.series))
    labels = F._panel_labels(figure, ctrl, panels)
    by_label: dict[str, list] = {}
    for ax, panel in zip(fig.axes, panels, strict=False):
        by_label.setdefault(labels[panel][1], []).append(ax)
    for group in by_label.values():
        assert len({ax.get_ylim() for ax in group}) == 1
    # whole-number x values (layers, depths, blocks): whole-number ticks
    whole = all(float(x).is_integer() for s in figure.series for x in s.x)
    if whole and not figure.categorical and len(panels) == 1 and figure.integer_x is not False:
        lo, hi = fig.axes[0].get_xlim()
        ticks = [t for t in fig.axes[0].get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_plain_and_residual_meet_the_reader_in_several_figures() -> None:
    """The colour check above is per figure; it says "one colour per family across the page"
    because the families recur: plain and residual are drawn in at least three figures each."""
    seen: dict[str, set[str]] = {}
    for source, name, make in (p.values for p in CASES):
        if source != "hand-made":
            continue
        try:
            _, figure, _ = _figures(source, name, make)
        except pytest.skip.Exception:
            continue
        for s in figure.series:
            seen.setdefault(s.family or family_of(s.label) or "", set()).add(name)
    assert len(seen.get("plain", ())) >= 3 and len(seen.get("residual", ())) >= 3, seen


# ---- the palette and the layout on hand-made figures --------------------------------------------
def test_family_of_reads_the_labels_of_the_page() -> None:
    assert family_of("plain-56 (n=3)") == family_of("plain net") == "plain"
    assert family_of("sigmoid + skip connections") == "residual"
    assert family_of("sigmoid + batch norm") == "batchnorm"
    assert family_of("plain sigmoid + Xavier") == family_of("sigmoid (g = 0.231)") == "sigmoid"
    assert family_of("ReLU + He init") == family_of("relu (g = 0.99)") == "relu"
    assert family_of("probe on the raw input") == family_of("raw-pixel linear") == "raw pixels"
    assert family_of("depth 1") == "shallow" and family_of("deep (depth 16)") == "deep"
    assert family_of("something else") is None
    # an explicit family wins; an unknown label keeps one spare colour
    assert family_color("residual", "plain") == FAMILIES["residual"]
    assert family_color(None, "something else") == family_color(None, "something else")
    # the report's series are settings of a sweep
    assert setting_family({"model.residual": False}) == "plain"
    assert setting_family({"model.residual": True, "model.depth": 20}) == "residual"
    assert setting_family({"model.activation": "sigmoid", "model.init": "xavier"}) == "sigmoid"
    assert setting_family({"model.pretrained": True}) == "pretrained"
    assert setting_family({"model.width": 64}) is None


def test_long_titles_and_crowded_thresholds_stay_inside() -> None:
    """A title of three lines, thresholds 0.01 apart near the top, four panels of two depths."""
    series = [
        Series(f"plain-{d}", [0, 1, 2], [0.5, 0.9, 0.99], [0.01] * 3, panel=p)
        for p in ("first panel", "second", "third", "fourth")
        for d in (20, 56)
    ]
    figure = Figure("layer", "accuracy", series, hlines=[(0.97, "trains"), (0.98, "does not")])
    title = "A claim whose title is far longer than one line of the figure can hold, " * 3
    fig = F.render(figure, title, None)
    drawn = _saved(fig)
    _assert_inside_and_apart(fig, drawn)
    assert sum(t.get_gid() == "threshold" for t, _ in drawn) == 8
    assert fig.get_suptitle().count("\n") >= 1  # wrapped, not clipped
    assert len({ax.get_ylim() for ax in fig.axes}) == 1  # one quantity: one scale
    pyplot().close(fig)


def test_what_a_verdict_can_set() -> None:
    """family, control, title, panel_labels, sharey and integer_x, as a verdict sets them."""
    series = [
        Series("A", [1, 2, 3], [0.2, 0.5, 0.9], [0.0] * 3, panel="left", family="residual"),
        Series("B", [1, 2, 3], [0.3, 0.3, 0.3], [0.0] * 3, panel="left", control=True),
        Series("C", [0.5, 3.5, 6.5], [5.0, 9.0, 7.0], [1.0] * 3, panel="right", family="plain"),
    ]
    figure = Figure(
        "",
        "",
        series,
        title="What the figure shows",
        panel_labels={"left": ("layer", "accuracy"), "right": ("x", "loss")},
        integer_x=True,
    )
    fig = F.render(figure, "the claim's title", None)
    drawn = _saved(fig)
    _assert_inside_and_apart(fig, drawn)
    assert fig.get_suptitle() == "What the figure shows"
    left, right = fig.axes
    assert (left.get_ylabel(), right.get_ylabel()) == ("accuracy", "loss")
    assert left.get_ylim() != right.get_ylim()  # two quantities: two scales
    artists = {label: (family, ctrl, a) for family, ctrl, label, a in _series_artists(fig)}
    assert artists["A"][0] == "residual"
    assert to_rgb(artists["A"][2].get_color()) == pytest.approx(to_rgb(FAMILIES["residual"]))
    assert artists["B"][1] and artists["B"][2].get_linestyle() == "--"
    lo, hi = right.get_xlim()
    assert all(float(t).is_integer() for t in right.get_xticks() if lo <= t <= hi)
    pyplot().close(fig)
    shared = F.render(replace(figure, sharey=True), "t", None)
    assert len({ax.get_ylim() for ax in shared.axes}) == 1
    pyplot().close(shared)


def test_diverged_runs_missing_means_and_thresholds_out_of_place() -> None:
    """Diverged runs (red crosses, in the legend), a NaN mean, a threshold at NaN or at 0 on a
    log scale: drawn without a text outside the canvas or over another."""
    nan = float("nan")
    lines = Figure(
        "depth",
        "ratio",
        [
            Series("plain", [2, 4, 8], [1.0, nan, 1e-3], [0.1, nan, 1e-4], diverged_x=[4]),
            Series("residual", [2, 4, 8], [1.0, 0.9, 0.8], [0.0] * 3),
        ],
        logx=True,
        logy=True,
        hlines=[(nan, "nowhere"), (0.0, "zero"), (0.5, "half")],
    )
    bars = Figure(
        "",
        "accuracy",
        [
            Series("plain", [0], [nan], [nan], diverged_x=[0]),
            Series("residual", [1], [0.9], [0.01]),
        ],
        categorical=True,
        xticks=["plain", "residual"],
        hlines=[(0.5, "trains")],
    )
    xs = [1, 2, 4, 8, 12, 16, 24, 32, 50, 64, 100]  # too close on a log scale to tick each
    crowded = Figure("depth", "acc", [Series("plain", xs, [0.5] * 11, [0.0] * 11)], logx=True)
    fig = F.render(crowded, "crowded", None)
    _assert_inside_and_apart(fig, _saved(fig))
    pyplot().close(fig)
    for figure in (lines, bars):
        fig = F.render(figure, "diverged", None)
        drawn = _saved(fig)
        _assert_inside_and_apart(fig, drawn)
        assert "diverged" in [t.get_text() for t, _ in drawn]
        assert [t.get_text() for t, _ in drawn if t.get_gid() == "threshold"] in (
            ["half"],
            ["trains"],
        )
        pyplot().close(fig)
