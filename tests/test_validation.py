"""Bad config values stop a run with one clear line before any data is loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, compose_config
from hydra.errors import MissingConfigException

from depthbench.core import run
from depthbench.errors import CheckpointError, ConfigError

FAST = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "logger=none", "callbacks=none"]


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the run gets as far as loading data."""

    def refuse(cfg):
        raise AssertionError("data was loaded before the config was validated")

    monkeypatch.setattr(run, "build_data", refuse)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.depth=0", "model.depth must be an integer >= 1, got 0"),
        ("model.width=-8", "model.width must be an integer >= 1, got -8"),
        ("model.activation=swish", "model.activation='swish' is unknown; allowed: relu, sigmoid"),
        ("model.init=orthogonal", "model.init='orthogonal' is unknown; allowed: default"),
        ("optimizer.lr=-0.1", "optimizer.lr must be a number >= 0 (e.g. 1e-3; 0 leaves"),
        ("optimizer.lr=fast", "optimizer.lr must be a number >= 0"),
        ("optimizer.lr=.inf", "optimizer.lr must be a number >= 0"),
        ("data.batch_size=0", "data.batch_size must be an integer >= 1, got 0"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be an integer >= 1 or -1, got 0"),
    ],
)
def test_bad_value_is_one_clear_line_before_data(override, message, tmp_path, no_data):
    cfg = compose_config([*FAST, override], tmp_path)
    with pytest.raises(ConfigError) as e:
        run.train(cfg)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_checkpoint_path(tmp_path, no_data):
    cfg = compose_config([f"ckpt_path={tmp_path}/nope.ckpt", *FAST], tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.ckpt"):
        run.train(cfg)
    cfg = compose_config(["ckpt_path=last", *FAST], tmp_path)
    with pytest.raises(CheckpointError, match=r"resume with ckpt_path=auto"):
        run.train(cfg)


def test_batch_larger_than_data(tmp_path):
    cfg = compose_config(["data.batch_size=5000", *FAST], tmp_path)
    with pytest.raises(ConfigError, match=r"data.batch_size=5000 is larger than the \d+ training"):
        run.train(cfg)


def test_unknown_group_option_lists_valid_ones(tmp_path):
    with pytest.raises(MissingConfigException) as e:
        compose_config(["model=resnett"], tmp_path)
    text = str(e.value)
    assert "Could not find 'model/resnett'" in text
    assert "Available options in 'model'" in text and "residual" in text and "mlp" in text


@pytest.mark.process
def test_cli_exits_non_zero_with_one_line(tmp_path):
    """The real entry point: exit code 2 and the message, no traceback."""
    proc = subprocess.run(
        [sys.executable, "train.py", "model.depth=0", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "ConfigError: model.depth must be an integer >= 1, got 0" in out
    assert "Traceback" not in out


@pytest.mark.process
def test_constructor_error_is_not_wrapped_in_hydras_instantiate_message(tmp_path):
    """A model constructor's ConfigError reaches the user as its own line, exit code 2."""
    proc = subprocess.run(
        [sys.executable, "train.py", "model=resnet", "model.depth=51", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "ConfigError: resnet depth must be 6n+2 with n >= 1" in out
    assert "Error in call to target" not in out and "Traceback" not in out
