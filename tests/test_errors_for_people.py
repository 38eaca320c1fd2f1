"""The mistakes a careless user makes each stop with one line that says what to do: exit code 2,
no traceback, and a run folder that says ``failed`` rather than looking finished."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONF_DIR, ROOT, compose_config

from depthbench.core import train
from depthbench.core.config_compose import check_overrides, compose_command
from depthbench.errors import ConfigError

TINY = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "logger=none",
    "callbacks.progress_bar.refresh_rate=0",
]


def run_cli(script: str, *args: str) -> tuple[int, str]:
    """``python SCRIPT ARGS`` in the repository; (exit code, stdout + stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def assert_one_line(code: int, out: str, message: str) -> None:
    """Exit code 2, ``message`` on one line, no traceback and no Hydra error banner."""
    assert code == 2, out
    lines = [line for line in out.splitlines() if message in line]
    assert lines, out
    assert "Traceback" not in out and "HYDRA_FULL_ERROR" not in out, out


def assert_nothing_left(run_dir: Path) -> None:
    """A command refused by hand leaves nothing but its line: no run folder (issue 30)."""
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A two-step digits run with a checkpoint (the MLP of depth 4)."""
    run_dir = tmp_path_factory.mktemp("digits_run")
    assert train(compose_config(TINY, run_dir))["status"] == "ok"
    return run_dir


@pytest.mark.process
def test_unknown_key_gets_did_you_mean(tmp_path):
    code, out = run_cli("train.py", "trainer.max_epoch=3", f"hydra.run.dir={tmp_path}")
    assert_one_line(
        code, out, "trainer.max_epoch is not a config key; did you mean trainer.max_epochs?"
    )
    assert "use '+trainer.max_epoch" not in out


@pytest.mark.process
def test_unknown_top_level_key_and_unknown_option(tmp_path):
    code, out = run_cli("train.py", "traner.max_epochs=3", f"hydra.run.dir={tmp_path}")
    assert_one_line(code, out, "did you mean trainer.max_epochs?")
    code, out = run_cli("train.py", "-m", "model=plain,resnt", f"hydra.sweep.dir={tmp_path}")
    assert_one_line(
        code,
        out,
        "model=resnt is not an option; did you mean model=resnet? options: batchnorm, cnn",
    )
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.process
def test_missing_required_value(tmp_path):
    code, out = run_cli("train.py", "data=text_csv", f"hydra.run.dir={tmp_path}")
    assert_one_line(code, out, "ConfigError: data.path is required and not set; add data.path=")
    assert not (tmp_path / ".hydra").exists()  # refused before Hydra made the run folder


@pytest.mark.process
def test_text_into_an_mlp_names_the_model_it_needs(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("label,text\n" + "".join(f"{i % 2},word{i % 2} x\n" for i in range(60)))
    code, out = run_cli(
        "train.py", "data=text_csv", f"data.path={csv_file}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert_one_line(
        code,
        out,
        "ConfigError: text data needs a model that reads word ids: "
        "model=transformer; depthbench.models.deep.DeepMLP does not take "
        "vocab_size",
    )
    assert_nothing_left(tmp_path / "run")


@pytest.mark.process
def test_eval_on_data_of_another_shape(digits_run, tmp_path):
    code, out = run_cli(
        "eval.py",
        f"ckpt_path={digits_run}",
        "data=synthetic",
        "data.num_train=64",
        "data.num_test=16",
        "data.batch_size=16",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line(
        code,
        out,
        "ConfigError: the checkpoint's DeepMLP was trained on input "
        "(1, 8, 8), 10 classes; data=synthetic gives input (3, 32, 32)",
    )
    assert "test_size" not in out  # the run's data keys are not merged into the new data's


@pytest.mark.process
def test_eval_override_that_would_be_ignored(digits_run, tmp_path):
    code, out = run_cli(
        "eval.py", f"ckpt_path={digits_run}", "+model.depth=8", f"hydra.run.dir={tmp_path}"
    )
    assert_one_line(
        code,
        out,
        "ConfigError: model comes from the checkpoint, so eval.py would ignore model.depth=8",
    )


@pytest.mark.process
def test_resume_with_another_model(digits_run, tmp_path):
    code, out = run_cli(
        "train.py", f"ckpt_path={digits_run}", "model.depth=8", f"hydra.run.dir={tmp_path}", *TINY
    )
    assert_one_line(
        code,
        out,
        "ConfigError: the checkpoint does not fit the configured model "
        "(8 weights missing, 0 unexpected, 0 of another shape): it was "
        "trained with model.depth=4 (now 8)",
    )
    assert_nothing_left(tmp_path)
    assert not (tmp_path / "checkpoints").exists()


# ---- the documentation's commands compose as written ----------------------------------------
# examples of what the guide asks the reader to create first (README "Adding ...")
TO_CREATE = ("model=tiny", "data=blobs", "experiment=skip_digits")
# commands the docs show because they are wrong (the start-up bench times the refusal of a typo)
WRONG_ON_PURPOSE = ("python train.py trainer.max_epoch=1",)


def documented_commands() -> list[str]:
    """Every ``python train.py ...`` of README.md and docs/*.md (code blocks and inline code),
    backslash continuations joined, comments dropped, placeholders (``<run>``, ``...``) left out."""
    commands = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text().replace("\\\n", " ")
        found = re.findall(r"^\s*(python train\.py[^\n]*)", text, flags=re.M)
        found += re.findall(r"`(python train\.py[^`\n]*)`", text)
        for command in found:
            command = re.sub(r"\s+#.*$", "", command).strip()
            placeholder = "<" in command or "..." in command
            to_create = any(c in command.split() for c in TO_CREATE)
            if not placeholder and not to_create and command not in WRONG_ON_PURPOSE:
                commands.append(command)
    return sorted(set(commands))


def test_documented_commands_are_found():
    commands = documented_commands()
    assert len(commands) >= 20
    assert "python train.py -m model=plain,residual model.depth=4,16,64" in commands


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_composes(command: str):
    args = shlex.split(os.path.expandvars(command))[2:]
    compose_command(CONF_DIR, "train", args)  # raises on any key, option or syntax error


@pytest.mark.parametrize("command", WRONG_ON_PURPOSE)
def test_documented_wrong_command_is_refused(command: str):
    args = shlex.split(command)[2:]
    with pytest.raises(Exception, match="max_epoch"):
        compose_command(CONF_DIR, "train", args)


def test_a_users_config_dir_joins_the_options(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "wide_mlp.yaml").write_text(
        "# @package _global_\nmodel:\n  width: 512\n"
    )
    cfg = compose_command(CONF_DIR, "train", ["--config-dir", str(tmp_path), "experiment=wide_mlp"])
    assert cfg.model.width == 512
    with pytest.raises(ConfigError, match=r"did you mean experiment=wide_mlp\?"):
        check_overrides(CONF_DIR, "train", ["-cd", str(tmp_path), "-m", "experiment=wide_mpl"])
    check_overrides(CONF_DIR, "train", ["--help", "nonsense.key=1"])  # --help runs no task
