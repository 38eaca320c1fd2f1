"""Each claim's verdict function on hand-made results that should confirm it and that should not."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from depthbench.lesson import verdicts as V
from depthbench.lesson.claims import load_claims


def runs(rows: list[dict], seeds: int = 3, jitter: float = 0.002) -> pd.DataFrame:
    """One row per (setting, seed): each setting's values plus a small per-seed spread."""
    out = []
    for row in rows:
        for s in range(seeds):
            r = {"seed": s, "status": "ok", "diverged_at_step": pd.NA, **row}
            for k in ("train acc", "test acc"):
                if isinstance(r.get(k), float):
                    r[k] = r[k] + (s - 1) * jitter
            out.append(r)
    return pd.DataFrame(out)


def criterion(name: str) -> dict:
    """The criterion as written in conf/lesson/<name>.yaml (the tests use the real thresholds)."""
    return next(c for c in load_claims([name])).criterion


def test_every_claim_names_a_verdict_function_and_has_both_profiles() -> None:
    claims = load_claims()
    assert [c.order for c in claims] == list(range(1, 10))
    for c in claims:
        assert callable(getattr(V, c.verdict)), c.name
        assert set(c.profiles) == {"quick", "full"} and c.criterion["text"]
        for overrides in c.sweeps("quick").values():
            assert all(isinstance(o, str) for o in overrides)


def _gradients(g: float) -> pd.DataFrame:
    return runs([{"model.depth": d, "grad first/last (init)": 0.9 * g**d} for d in (2, 4, 8, 16)])


def test_vanishing_gradients() -> None:
    c = criterion("vanishing_gradients")
    good = V.vanishing_gradients({"sigmoid": _gradients(0.24), "relu": _gradients(0.97)}, c)
    assert good.outcome == V.CONFIRMED
    assert "0.24" in good.summary and good.checks[0].measured == "0.250000"
    # a sigmoid net whose gradient does not shrink: not confirmed
    bad = V.vanishing_gradients({"sigmoid": _gradients(0.9), "relu": _gradients(0.97)}, c)
    assert bad.outcome == V.NOT_CONFIRMED
    assert [ch.passed for ch in bad.checks] == [True, False, True]


def test_per_layer_factor_is_the_geometric_rate() -> None:
    assert V.per_layer_factor([2, 4, 8], [3 * 0.25**d for d in (2, 4, 8)]) == pytest.approx(0.25)
    assert math.isnan(V.per_layer_factor([2], [0.1]))


def _fixes(plain: float, fixes: dict[str, float | str]) -> dict[str, pd.DataFrame]:
    frames = {"plain_sigmoid": runs([{"train acc": plain, "test acc": plain}])}
    for name, acc in fixes.items():
        if acc == "diverged":
            frame = runs([{"train acc": math.nan, "test acc": math.nan}])
            frame["status"], frame["diverged_at_step"] = "diverged", 7
        else:
            frame = runs([{"train acc": acc, "test acc": acc}])
        frames[name] = frame
    return frames


def test_fixes() -> None:
    c = criterion("fixes")
    good = V.fixes(_fixes(0.1, {"relu_he": 0.97, "residual": 0.95, "batchnorm": 0.99}), c)
    assert good.outcome == V.CONFIRMED
    # a fix that diverged did not train, whatever its last accuracy
    bad = V.fixes(_fixes(0.1, {"relu_he": "diverged", "residual": 0.95, "batchnorm": 0.99}), c)
    assert bad.outcome == V.NOT_CONFIRMED
    assert "diverged" in bad.checks[1].measured and not bad.checks[1].passed
    # the baseline trains: the claim's premise fails
    assert V.fixes(_fixes(0.6, {"relu_he": 0.97, "residual": 0.95, "batchnorm": 0.99}), c).outcome \
        == V.NOT_CONFIRMED  # fmt: skip


def _thousand(res: float, plain: float | str) -> dict[str, pd.DataFrame]:
    frame = runs([{"model.residual": True, "model.depth": 1202, "train acc": res, "test acc": res},
                  {"model.residual": False, "model.depth": 1202, "train acc": 0.0,
                   "test acc": 0.0}])  # fmt: skip
    plain_rows = frame["model.residual"] == False  # noqa: E712
    if plain == "diverged":
        frame.loc[plain_rows, "status"] = "diverged"
        frame.loc[plain_rows, "diverged_at_step"] = 3
    else:
        frame.loc[plain_rows, ["train acc", "test acc"]] = plain
    return {"main": frame}


def test_thousand_layers() -> None:
    c = criterion("thousand_layers")
    assert V.thousand_layers(_thousand(0.99, 0.1), c).outcome == V.CONFIRMED
    diverged_plain = V.thousand_layers(_thousand(0.99, "diverged"), c)
    assert diverged_plain.outcome == V.CONFIRMED  # diverging is not training
    assert "diverged" in diverged_plain.checks[1].measured
    assert V.thousand_layers(_thousand(0.5, 0.1), c).outcome == V.NOT_CONFIRMED
    assert "1202-layer" in diverged_plain.checks[0].requirement


def _degradation(plain: list[float], residual: list[float]) -> pd.DataFrame:
    depths = (4, 8, 16, 32)
    rows = [{"model.depth": d, "model.residual": False, "train acc": a}
            for d, a in zip(depths, plain, strict=True)]  # fmt: skip
    rows += [{"model.depth": d, "model.residual": True, "train acc": a}
             for d, a in zip(depths, residual, strict=True)]  # fmt: skip
    return runs(rows)


def test_degradation() -> None:
    c = criterion("degradation")
    he = _degradation([0.96, 0.97, 0.80, 0.45], [0.96, 0.98, 0.99, 0.99])  # Fig. 1 of the paper
    good = V.degradation({"mlp": he, "resnet": he}, c)
    assert good.outcome == V.CONFIRMED and len(good.checks) == 8
    # no degradation at all: the plain net keeps improving
    flat = _degradation([0.90, 0.95, 0.97, 0.98], [0.90, 0.95, 0.97, 0.99])
    assert V.degradation({"mlp": flat}, c).outcome == V.NOT_CONFIRMED
    # residual worse than plain at a shallow depth: "at every depth" fails, named in the check
    shallow = _degradation([0.96, 0.97, 0.80, 0.45], [0.90, 0.98, 0.99, 0.99])
    v = V.degradation({"mlp": shallow}, c)
    assert v.outcome == V.NOT_CONFIRMED
    assert any(ch.measured == "fails at depth [4]" for ch in v.checks)


def _hierarchy(probe: list[float], init: list[float], edge: float) -> dict[str, pd.DataFrame]:
    row = {f"probe {i}": p for i, p in enumerate(probe)}
    row.update({f"probe init {i}": p for i, p in enumerate(init)})
    row.update({"edge score": edge, "edge score (init)": 0.5})
    return {"main": runs([row])}


def test_hierarchy() -> None:
    c = criterion("hierarchy")
    good = V.hierarchy(_hierarchy([0.85, 0.87, 0.89, 0.91], [0.84, 0.83, 0.82, 0.80], 0.8), c)
    assert good.outcome == V.CONFIRMED
    dropping = V.hierarchy(_hierarchy([0.85, 0.80, 0.89, 0.91], [0.84] * 4, 0.8), c)
    assert dropping.outcome == V.NOT_CONFIRMED and not dropping.checks[1].passed
    random_filters = V.hierarchy(_hierarchy([0.85, 0.87, 0.89, 0.91], [0.84] * 4, 0.52), c)
    assert random_filters.outcome == V.NOT_CONFIRMED and not random_filters.checks[-1].passed


def _depth_vs_width(accs: dict[tuple[int, int], float]) -> dict[str, pd.DataFrame]:
    rows = [{"model.params": p, "model.depth": d, "test acc": a} for (p, d), a in accs.items()]
    return {"mnist1d": runs(rows)}


def test_depth_vs_width() -> None:
    c = criterion("depth_vs_width")
    good = {(10_000, 1): 0.50, (10_000, 4): 0.70, (100_000, 1): 0.60, (100_000, 4): 0.85}
    assert V.depth_vs_width(_depth_vs_width(good), c).outcome == V.CONFIRMED
    tie = {(10_000, 1): 0.50, (10_000, 4): 0.501, (100_000, 1): 0.60, (100_000, 4): 0.85}
    v = V.depth_vs_width(_depth_vs_width(tie), c)
    assert v.outcome == V.NOT_CONFIRMED  # within the seed spread at 10k, and below 0.60
    assert [ch.passed for ch in v.checks] == [False, True, False]


def _attention(test: tuple[float, float], sentence: tuple[float, float]) -> dict:
    row = {"referent (test)": test[0], "other noun (test)": test[1],
           "referent (sentence)": sentence[0], "other noun (sentence)": sentence[1]}  # fmt: skip
    return {"main": runs([row])}


def test_attention() -> None:
    c = criterion("attention")
    assert V.attention(_attention((0.6, 0.05), (0.8, 0.1)), c).outcome == V.CONFIRMED
    frames = _attention((0.6, 0.05), (0.8, 0.1))
    frames["main"].loc[2, "referent (sentence)"] = 0.05  # one seed looks at "mat"
    v = V.attention(frames, c)
    assert v.outcome == V.NOT_CONFIRMED and "2/3 seeds" in v.checks[1].measured


def test_transfer() -> None:
    c = criterion("transfer")
    frame = runs([{"model.freeze": True, "test acc": 0.7},
                  {"model.freeze": False, "test acc": 0.4}])  # fmt: skip
    assert V.transfer({"main": frame}, c).outcome == V.CONFIRMED
    close = runs([{"model.freeze": True, "test acc": 0.42}, {"model.freeze": False,
                                                             "test acc": 0.40}])  # fmt: skip
    assert V.transfer({"main": close}, c).outcome == V.NOT_CONFIRMED


def test_gpu_speed_is_not_measured_without_gpu_runs() -> None:
    c = criterion("gpu_speed")
    assert V.gpu_speed({}, c).outcome == V.NOT_MEASURED
    frame = runs([{"accelerator": "cpu", "samples/s": 100.0}, {"accelerator": "gpu",
                                                                "samples/s": 4000.0}])  # fmt: skip
    assert V.gpu_speed({"main": frame}, c).outcome == V.CONFIRMED
