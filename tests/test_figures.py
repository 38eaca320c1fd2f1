"""Figures a student reads without help: curves of short runs, no empty panels, class names,
whole-number layer ticks."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from depthbench.diagnostics import activations, features, gradflow
from depthbench.report.collect import Run
from depthbench.report.curves import EPOCH_LOSS, STEP_LOSS, curves_figure, loss_curve


@pytest.fixture
def drawn(monkeypatch):
    """The figures the diagnostics hand to ``save_figure`` (kept open, not saved)."""
    figures = []

    def keep(fig, path, trainer=None, key=""):
        fig.canvas.draw()  # tick labels are set at draw time
        figures.append(fig)
        return path

    for module in (activations, features, gradflow):
        monkeypatch.setattr(module, "save_figure", keep)
    return figures


def _run(tmp_path: Path, name: str, rows: list[dict]) -> Run:
    folder = tmp_path / name / "csv"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    return Run(path=tmp_path / name, experiment="x", overrides={}, config={}, status="ok")


def _drawn_points(ax) -> int:
    """The finite points of an axis' lines."""
    return sum(sum(map(math.isfinite, line.get_ydata())) for line in ax.get_lines())


def test_short_run_curves_come_from_the_epoch_losses(tmp_path: Path) -> None:
    """A 6-step run (no step loss logged at log_every_n_steps=50) is drawn from its two
    per-epoch losses; a long run keeps its step losses."""
    short = _run(tmp_path, "short", [
        {"epoch": 0, "step": 2, EPOCH_LOSS: 2.1, "val/loss": 2.0},
        {"epoch": 1, "step": 5, EPOCH_LOSS: 1.7, "val/loss": 1.8},
    ])  # fmt: skip
    long_rows = [{"epoch": 0, "step": s, STEP_LOSS: 2.0 - s / 500} for s in range(49, 500, 50)]
    long = _run(tmp_path, "long", [*long_rows, {"epoch": 0, "step": 499, EPOCH_LOSS: 1.5}])
    curve, column = loss_curve(short.file("csv/metrics.csv"))
    assert column == EPOCH_LOSS and list(curve.index) == [2, 5]
    assert loss_curve(long.file("csv/metrics.csv"))[1] == STEP_LOSS

    fig = curves_figure([short], [], None)
    (ax,) = [a for a in fig.axes if a.get_visible() and a.axison]
    assert _drawn_points(ax) == 2 and ax.get_lines()[0].get_marker() == "o"
    assert "per epoch" in ax.get_ylabel()


def _integer_labels(ax, axis: str = "x") -> list[str]:
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text().replace("\N{MINUS SIGN}", "-") for t in labels if t.get_text()]


def test_gradflow_layer_and_step_ticks_are_whole_numbers(tmp_path: Path, drawn) -> None:
    """A 3-layer net over 3 steps: the layer and step axes show 0, 1, 2, never 0.25."""
    rows = [(s, f"l{i}", i, 10.0**-i) for s in range(3) for i in range(3)]
    csv = tmp_path / "gradflow.csv"
    pd.DataFrame(rows, columns=gradflow.COLUMNS).to_csv(csv, index=False)
    gradflow.plot_gradflow(csv, tmp_path / "gradflow.png")
    for ax in drawn[0].axes:
        labels = _integer_labels(ax)
        assert labels and all(float(t).is_integer() for t in labels), labels


def test_activations_of_a_relu_net_have_no_empty_panel(tmp_path: Path, drawn) -> None:
    """ReLU layers never saturate: the figure has the mean and dead panels only, each with
    drawn points, and says why the saturation panel is missing."""
    rows = [(s, f"act{i}", i, "relu", 0.5, 0.2, math.nan, 0.1 * i) for s in (0, 50) for i in
            range(4)]  # fmt: skip
    csv = tmp_path / "activations.csv"
    pd.DataFrame(rows, columns=activations.COLUMNS).to_csv(csv, index=False)
    activations.plot_activations(csv, tmp_path / "activations.png")
    fig = drawn[0]
    assert len(fig.axes) == 2
    assert all(_drawn_points(ax) > 0 for ax in fig.axes)
    assert "dead" in fig.axes[1].get_title()
    assert "no sigmoid/tanh layer, so no 'fraction saturated' panel" in fig._suptitle.get_text()
    assert all(float(t).is_integer() for t in _integer_labels(fig.axes[1]))


def test_feature_maps_name_the_class(tmp_path: Path, drawn) -> None:
    """The input of class 9 of Fashion-MNIST is titled "Ankle boot", not "label 9"."""
    from depthbench.data.fashion_mnist import CLASSES

    x, y = torch.rand(2, 1, 8, 8), torch.tensor([9, 0])
    maps = {"conv1": torch.rand(2, 4, 8, 8)}
    features.plot_feature_maps(x, y, maps, 4, tmp_path / "f.png", classes=CLASSES)
    titles = [ax.get_title(loc="left") for ax in drawn[0].axes]
    assert "input: Ankle boot" in titles and "input: T-shirt/top" in titles
    assert not any("label" in t for t in titles)
