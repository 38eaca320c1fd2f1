"""A new user's path (issue 21): run folders that are never overwritten or shared, one line for
every unreadable input, and one read of a checkpoint per command."""

from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import CONF_DIR, FAST, ROOT, compose_config, run_train
from hydra.errors import InstantiationException

from depthbench.cli import _guarded
from depthbench.core import evaluate, train
from depthbench.core.run_folder.folder_lock import RunFolderError, lock, unlock
from depthbench.core.run_folder.layout import LOCK_FILE
from depthbench.errors import CheckpointError, depthbench_error, error_line

QUIET = [*FAST, "logger=csv"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes): "nothing changed" is equality."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch digits run's folder (written through ``train``, as a notebook does)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(compose_config(QUIET, run))
    return run


def test_continuing_a_finished_run_changes_nothing(finished: Path, caplog) -> None:
    """Case 1: the same command again with ckpt_path=auto returns the run's metrics, leaves every
    file as it was and says how to continue."""
    before = snapshot(finished)
    with caplog.at_level(logging.INFO, logger="depthbench"):
        metrics = train(compose_config([*QUIET, "ckpt_path=auto"], finished))
    assert snapshot(finished) == before
    assert metrics == json.loads((finished / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["val/acc"] is not None
    assert "already finished at epoch 2; raise trainer.max_epochs to continue" in caplog.text


def test_another_run_into_a_used_folder_is_refused(finished: Path) -> None:
    """Case 3: a new run (no ckpt_path) in a folder with results is refused; nothing written."""
    before = snapshot(finished)
    with pytest.raises(RunFolderError, match="holds another run's results") as refusal:
        train(compose_config([*QUIET, "model.depth=2"], finished))
    assert "ckpt_path=auto" in str(refusal.value) and "hydra.run.dir=NEW_DIR" in str(refusal.value)
    assert snapshot(finished) == before


@pytest.mark.process
@pytest.mark.slow  # a fresh interpreter (torch, Lightning)
def test_cli_refuses_a_used_folder_before_hydra_writes(finished: Path) -> None:
    """Case 3 from the command line: one line, exit 2, not even Hydra's config or log written."""
    before = snapshot(finished)
    proc = run_train([*QUIET, f"hydra.run.dir={finished}", "model.depth=2"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[-1].startswith("RunFolderError: ") and str(finished) in lines[-1]
    assert "Traceback" not in proc.stderr
    assert snapshot(finished) == before


@pytest.mark.process
@pytest.mark.slow  # a fresh interpreter (torch, Lightning)
def test_cli_finished_run_again_exits_0_and_changes_nothing(finished: Path) -> None:
    """Case 1 from the command line (a SLURM requeue): exit 0, one line, every file unchanged."""
    before = snapshot(finished)
    proc = run_train([*QUIET, f"hydra.run.dir={finished}", "ckpt_path=auto"])
    assert proc.returncode == 0, proc.stderr
    assert "already finished at epoch 2; raise trainer.max_epochs to continue" in proc.stderr
    assert snapshot(finished) == before


def test_raising_max_epochs_continues_the_finished_run(tmp_path: Path) -> None:
    """The way on that the "already finished" line names does continue the run."""
    run = tmp_path / "run"
    train(compose_config(QUIET, run))
    metrics = train(compose_config([*QUIET, "trainer.max_epochs=3", "ckpt_path=auto"], run))
    assert metrics["status"] == "ok" and metrics["epochs"] == 3 and metrics["steps"] == 9


def test_a_refused_commands_record_does_not_block_the_folder(tmp_path: Path) -> None:
    """A ``failed`` record of a command refused before training is not a result: the corrected
    command may use the folder."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"status": "failed", "error": "ConfigError: x"}))
    assert train(compose_config(QUIET, run))["status"] == "ok"


HOLD = (
    "import sys, time; from pathlib import Path; "
    "from depthbench.core.run_folder.folder_lock import lock; "
    "lock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(120)"
)


@pytest.mark.process
def test_the_lock_keeps_a_second_process_out_and_dies_with_its_holder(tmp_path: Path) -> None:
    """Another process holding the folder: refused, naming its pid; once it is killed (no clean
    up: its lock file stays, with a dead pid) the stale lock is taken over."""
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"in use by another run \\(pid {holder.pid} "):
            lock(run)
        with pytest.raises(RunFolderError, match="in use by another run"):
            train(compose_config(QUIET, run))
        assert not (run / "metrics.json").exists()  # the refusal wrote nothing there
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (run / LOCK_FILE).read_text().split()[0] == str(holder.pid)  # stale: a dead pid
    lock(run)
    assert (run / LOCK_FILE).read_text().split()[0] == str(os.getpid())
    unlock(run)
    assert not (run / LOCK_FILE).exists()


# ---- case 4: every unreadable input is one line, exit 2 and a failed record ----------------


def hydra_wrapped_checkpoint_error() -> InstantiationException:
    """Hydra's wrapper around depthbench's error around a library's, raised as they are."""
    try:
        try:
            try:
                pickle.loads(b"not a pickle")
            except Exception as library_error:
                raise CheckpointError("cannot load checkpoint t.ckpt: corrupt") from library_error
        except CheckpointError as ours:
            raise InstantiationException("Error in call to target 'x'") from ours
    except InstantiationException as wrapped:
        return wrapped
    raise AssertionError("unreachable")


def test_the_first_depthbench_error_of_the_chain_is_the_message() -> None:
    error = hydra_wrapped_checkpoint_error()
    assert isinstance(depthbench_error(error), CheckpointError)
    assert error_line(error) == "CheckpointError: cannot load checkpoint t.ckpt: corrupt"
    assert depthbench_error(ValueError("a bug")) is None
    try:  # raised while handling depthbench's error, without `from`: its context counts
        try:
            raise CheckpointError("unreadable")
        except CheckpointError:
            raise OSError("while handling it")  # noqa: B904
    except OSError as in_context:
        assert isinstance(depthbench_error(in_context), CheckpointError)
    try:
        try:
            raise CheckpointError("unreadable")
        except CheckpointError:
            raise KeyError("while handling it") from None
    except KeyError as suppressed:
        assert depthbench_error(suppressed) is None  # `from None`: not in the chain


def test_guarded_makes_the_chain_one_line_and_leaves_no_folder(tmp_path: Path, caplog) -> None:
    cfg = compose_config(QUIET, tmp_path)

    def fails(_cfg):
        raise hydra_wrapped_checkpoint_error()

    with caplog.at_level(logging.ERROR, logger="depthbench"), pytest.raises(SystemExit) as ex:
        _guarded(fails, cfg)
    assert ex.value.code == 2
    assert [r.getMessage() for r in caplog.records] == [
        "CheckpointError: cannot load checkpoint t.ckpt: corrupt"
    ]
    assert not tmp_path.exists()  # a refused command leaves nothing but its line (issue 30)


def test_guarded_lets_a_bug_keep_its_traceback(tmp_path: Path) -> None:
    def bug(_cfg):
        raise InstantiationException("Error in call") from ZeroDivisionError("division by zero")

    with pytest.raises(InstantiationException):
        _guarded(bug, compose_config(QUIET, tmp_path))


@pytest.mark.process
@pytest.mark.slow  # a fresh interpreter (torch, Lightning)
def test_a_truncated_checkpoint_is_one_line_in_eval(finished: Path, tmp_path: Path) -> None:
    """``head -c 20000 last.ckpt > t.ckpt; python eval.py ckpt_path=t.ckpt``."""
    truncated = tmp_path / "t.ckpt"
    truncated.write_bytes((finished / "checkpoints" / "last.ckpt").read_bytes()[:20000])
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "eval.py", f"ckpt_path={truncated}", f"hydra.run.dir={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    errors = [
        line for line in proc.stderr.splitlines() + proc.stdout.splitlines() if "Error" in line
    ]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and "CheckpointError: cannot load checkpoint" in errors[0]
    assert "Traceback" not in proc.stderr and "weights_only" not in proc.stderr + proc.stdout
    assert not out.exists()  # a failed eval leaves nothing but its line (issue 30)


def _torch_file_with_code(path: Path) -> None:
    torch.save({"state_dict": {}, "hook": functools.partial(print)}, path)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.write_text("just some text\n"),
        lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=2)),
        _torch_file_with_code,  # torch's own message advises weights_only=False here
    ],
    ids=["text", "pickle", "torch-file-with-code"],
)
def test_an_unreadable_checkpoint_never_suggests_weights_only_false(tmp_path: Path, write) -> None:
    bad = tmp_path / "bad.ckpt"
    write(bad)
    with pytest.raises(CheckpointError) as refusal:
        train(compose_config([*QUIET, f"ckpt_path={bad}"], tmp_path / "run"))
    message = str(refusal.value)
    assert "weights_only" not in message and "\n" not in message
    assert message.startswith(f"cannot load checkpoint {bad}: ")


def test_a_broken_image_is_one_line_and_leaves_no_folder(tmp_path: Path, caplog) -> None:
    """``echo x > root/train/circle/broken.png; python train.py data=image_folder ...``."""
    from PIL import Image

    root = tmp_path / "root"
    for split in ("train", "test"):
        for name, value in (("circle", 255), ("square", 0)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("L", (8, 8), value).save(folder / f"{i}.png")
    (root / "train" / "circle" / "broken.png").write_text("x\n")
    run = tmp_path / "run"
    cfg = compose_config([*QUIET, "data=image_folder", f"data.root={root}"], run)
    with caplog.at_level(logging.ERROR, logger="depthbench"), pytest.raises(SystemExit) as ex:
        _guarded(train, cfg)
    assert ex.value.code == 2
    messages = [r.getMessage() for r in caplog.records]
    assert (
        len(messages) == 1 and messages[0].startswith("DataError: ") and "broken.png" in messages[0]
    )
    assert not run.exists()  # a refused command leaves nothing but its line (issue 30)


# ---- one read of a checkpoint per command (issue 22) ---------------------------------------


def test_a_resume_reads_its_checkpoint_once(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    train(compose_config([*QUIET, "trainer.max_epochs=1"], run))
    last = run / "checkpoints" / "last.ckpt"
    reads: list[str] = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        name = str(f) if isinstance(f, (str, os.PathLike)) else str(getattr(f, "name", ""))
        if Path(name).name == last.name:  # a path, or an open file (Lightning's reader)
            reads.append(name)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    metrics = train(compose_config([*QUIET, "trainer.max_epochs=2", "ckpt_path=auto"], run))
    assert metrics["epochs"] == 2 and metrics["steps"] == 6  # it did resume, from step 3
    assert reads == [str(last)]


# ---- case 2: ckpt_path=auto resumes by intent ----------------------------------------------


def fake_interrupted_run(folder: Path, overrides: list[str], status: str | None) -> Path:
    """A run folder as an interrupted (``status``) or killed (None) run leaves it."""
    from omegaconf import OmegaConf

    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_config(overrides, folder), folder / ".hydra" / "config.yaml")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    if status:
        (folder / "metrics.json").write_text(json.dumps({"status": status}))
    return folder


def test_auto_finds_the_latest_interrupted_run_of_the_same_config(tmp_path: Path) -> None:
    from depthbench.core.run_folder.resume import find_run_to_continue

    runs = tmp_path / "runs"
    old = fake_interrupted_run(runs / "a", ["model.depth=2"], "interrupted")
    killed = fake_interrupted_run(runs / "b", ["model.depth=2"], None)
    fake_interrupted_run(runs / "c", ["model.depth=2"], "ok")  # finished: not a candidate
    near = fake_interrupted_run(runs / "d", ["model.depth=3", "optimizer.lr=0.5"], "interrupted")
    os.utime(old / "checkpoints" / "last.ckpt", (1, 1))  # b is the newer of the two matches
    wanted = compose_config(["model.depth=2", "ckpt_path=auto"], tmp_path / "new")
    assert find_run_to_continue(wanted, runs) == (
        killed,
        f"ckpt_path=auto: continuing the interrupted run in {killed}",
    )
    other = compose_config(["model.depth=3", "optimizer.lr=0.4", "ckpt_path=auto"], tmp_path)
    found, line = find_run_to_continue(other, runs)
    assert found is None and line.startswith("ckpt_path=auto: no interrupted run of this config")
    assert line.endswith(f"starting fresh (the nearest, {near}, differs in optimizer.lr)")


@pytest.mark.process
@pytest.mark.slow
def test_the_interrupt_hint_and_auto_in_a_new_folder_resume_the_run(tmp_path: Path) -> None:
    """Case 2 as a user meets it, in default timestamped folders: Ctrl+C, then the same command
    with ckpt_path=auto continues the interrupted run in its folder; the printed command does
    too, and says the run finished once it has."""
    args = ["data.train_size=640", "trainer.max_epochs=3", "callbacks.progress_bar.refresh_rate=0"]
    args += ["callbacks.last_checkpoint.every_n_train_steps=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEPTHBENCH_ROOT": str(tmp_path)}
    runs = tmp_path / "outputs" / "runs" / "train"

    def cli(*more: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "train.py", *args, *more], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    proc = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    while not list(runs.glob("*/checkpoints/last.ckpt")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    (folder,) = runs.iterdir()
    hint = next(line for line in out.splitlines() if "resume with: " in line)
    command = hint.split("resume with: ", 1)[1]
    assert command.startswith("python train.py ") and f"hydra.run.dir={folder}" in command

    near = cli("model.depth=2", "trainer.max_epochs=1", "ckpt_path=auto")
    assert near.returncode == 0, near.stderr[-2000:]
    assert f"starting fresh (the nearest, {folder}, differs in model.depth" in near.stderr
    resumed = cli("ckpt_path=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"continuing the interrupted run in {folder}" in resumed.stderr
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 30
    assert len(list(runs.iterdir())) == 2  # the near miss's folder and the resumed one

    again = subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert shlex.split(command)[1] == "train.py"
    assert again.returncode == 0 and "already finished at epoch 3" in again.stderr


# ---- case 6: every hint works as written ---------------------------------------------------
# Each message that suggests a command, triggered as a user does, and its command run as given.


def refusal(config_name: str, *args: str) -> str:
    """The one-line ConfigError of ``python {config_name}.py ARGS`` (checked before Hydra)."""
    from depthbench.core.config_compose import check_overrides
    from depthbench.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        check_overrides(CONF_DIR, config_name, list(args))
    return str(refused.value)


def command_line(config_name: str, *args: str):
    """The config ``python {config_name}.py ARGS`` runs with (as ``cli._checked`` gives it)."""
    from depthbench.core.config_compose import check_overrides, compose_command

    completed = check_overrides(CONF_DIR, config_name, list(args))
    return completed, compose_command(CONF_DIR, config_name, completed)


def suggested(message: str, pattern: str) -> str:
    found = re.search(pattern, message)
    assert found, message
    return found.group(1)


def test_did_you_mean_a_key_and_an_option_compose_as_suggested() -> None:
    key = suggested(refusal("train", "trainer.max_epoch=3"), r"did you mean (\S+)\?")
    assert command_line("train", f"{key}=3")[1].trainer.max_epochs == 3
    option = suggested(refusal("train", "model=resnt"), r"did you mean (\S+)\?")
    assert command_line("train", option)[1].model._target_.endswith("CifarResNet")


def test_add_plus_hint_adds_the_key() -> None:
    message = refusal("train", "tags_extra=1")
    added = suggested(message, r"to add a new key on purpose: (\S+)=VALUE")
    assert command_line("train", f"{added}=1")[1].tags_extra == 1


def test_a_plain_trainer_argument_is_passed_to_the_trainer(tmp_path: Path) -> None:
    completed, cfg = command_line("train", "trainer.limit_val_batches=2", "trainer.max_epochs=1")
    assert completed == ["+trainer.limit_val_batches=2", "trainer.max_epochs=1"]
    assert cfg.trainer.limit_val_batches == 2
    assert "did you mean trainer.max_epochs?" in refusal("train", "trainer.max_epoch=1")


@pytest.mark.parametrize(
    ("entry", "given", "claims"),
    [
        ("train", "+lesson=attention", "attention"),
        ("train", "lesson=atention", "attention"),  # a typo: the closest claim
        ("eval", "lesson=attention,fixes", "attention,fixes"),
        ("train", "lesson.seeds=3", "NAME"),
    ],
)
def test_the_lesson_is_refused_naming_its_command(entry: str, given: str, claims: str) -> None:
    """``lesson`` is no config group of train.py or eval.py: refused in one line that names
    ``depthbench lesson --only CLAIMS``, a command line that the lesson's parser takes."""
    from depthbench.lesson.claims import load_claims
    from depthbench.lesson.run import parse_args

    message = refusal(entry, given)
    assert f"which {entry}.py does not read" in message
    command = suggested(message, r"run a claim with (depthbench lesson [^(]+?) \(")
    assert command == f"depthbench lesson --only {claims}"
    if claims != "NAME":
        only = parse_args(command.split()[2:]).only.split(",")
        assert {c.name for c in load_claims(only)} == set(only)


def test_help_lists_no_lesson_group(capsys) -> None:
    """The group list of ``train.py --help`` (conf/hydra/default.yaml's template, as Hydra
    resolves it) is Hydra's without ``lesson``; ``depthbench lesson --help`` lists the claims."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import depthbench.cli  # noqa: F401  (registers the template's resolver, as train.py does)
    from depthbench.lesson.claims import load_claims
    from depthbench.lesson.run import parse_args

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            text = compose("train", return_hydra_config=True).hydra.help.template
    finally:
        GlobalHydra.instance().clear()
    groups = dict(re.findall(r"^([\w/]+): (.+)$", text, re.M))
    assert "lesson" not in groups and not any(g.startswith("hydra") for g in groups)
    assert groups["model"].split(", ")[:2] == ["batchnorm", "cnn"]
    assert "experiment/arch" in groups and "$CONFIG" in text
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    listed = " ".join(capsys.readouterr().out.split())
    assert all(c.name in listed for c in load_claims())


@pytest.mark.process
def test_train_help_as_printed_lists_no_lesson_group() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^model: ", proc.stdout, re.M) and "\nlesson:" not in proc.stdout


@pytest.fixture(scope="module")
def eval_cases(finished: Path, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval_cases")


@pytest.mark.parametrize("given", ["model.depth=8", "+model.depth=8"])
def test_eval_remove_it_works_as_written(finished: Path, eval_cases: Path, given: str) -> None:
    """``eval.py ckpt_path=RUN model.depth=8`` says remove it, with or without ``+`` (never
    "add +"); the command without it evaluates."""
    message = refusal("eval", f"ckpt_path={finished}", given)
    assert "comes from the checkpoint" in message and "remove it" in message
    assert "+model" not in message
    _, cfg = command_line("eval", f"ckpt_path={finished}")
    out = eval_cases / given.lstrip("+")
    cfg.paths.output_dir = str(out)
    assert evaluate(cfg)["status"] == "ok"


def test_eval_takes_the_checkpoints_data_keys(finished: Path, eval_cases: Path) -> None:
    """``data.batch_size`` and ``data.root`` work on eval.py without ``data=``; a typo gets a
    did-you-mean whose command works."""
    from depthbench.errors import ConfigError

    args = [f"ckpt_path={finished}", "data.batch_sise=8"]
    completed, cfg = command_line("eval", *args)
    cfg.paths.output_dir = str(eval_cases / "typo")
    with pytest.raises(ConfigError, match=r"did you mean data\.batch_size\?") as typo:
        evaluate(cfg)
    fixed = suggested(str(typo.value), r"did you mean (\S+)\?")
    root = ROOT / "data"
    completed, cfg = command_line(
        "eval", f"ckpt_path={finished}", f"{fixed}=8", f"data.root={root}"
    )
    assert completed[1:] == ["+data.batch_size=8", f"+data.root={root}"]
    cfg.paths.output_dir = str(eval_cases / "batch")
    assert evaluate(cfg)["status"] == "ok"


@pytest.mark.process
@pytest.mark.slow  # a fresh interpreter (torch, Lightning)
def test_each_entry_points_help_describes_itself() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def helps(*argv: str) -> str:
        proc = subprocess.run([sys.executable, *argv, "--help"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert helps("eval.py").startswith("depthbench eval: test a trained checkpoint")
    assert "python train.py" not in helps("eval.py")
    listed = helps("-m", "depthbench.cli")
    from depthbench.cli import SUBCOMMANDS

    for name in SUBCOMMANDS:
        assert re.search(rf"^  {name} +\S", listed, re.M), listed
    assert "its checkpoints/last.ckpt" in helps("-m", "depthbench.cli", "predict")


def test_a_sweep_into_another_sweeps_folder_is_refused(tmp_path: Path, capsys) -> None:
    """A multirun with a fixed ``hydra.sweep.dir`` that holds finished jobs is refused before
    Hydra writes; ``ckpt_path=auto`` (continue its jobs) and a stored Optuna study (new job
    numbers) go on."""
    from omegaconf import OmegaConf

    from depthbench.core.run_folder.ownership import RunFolderClaim

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "metrics.json").write_text(json.dumps({"status": "ok", "epochs": 1}))

    def config(ckpt_path: str | None = None, storage: str | None = None, where: Path = sweep):
        return OmegaConf.create({"hydra": {"sweep": {"dir": str(where)},
                                           "sweeper": {"storage": storage}},
                                 "module": {}, "ckpt_path": ckpt_path})  # fmt: skip

    with pytest.raises(SystemExit) as refused:
        RunFolderClaim().on_multirun_start(config())
    assert refused.value.code == 2
    assert f"RunFolderError: {sweep} holds another sweep's results (0/)" in capsys.readouterr().err
    RunFolderClaim().on_multirun_start(config(ckpt_path="auto"))
    RunFolderClaim().on_multirun_start(config(storage="sqlite:///study.db"))
    RunFolderClaim().on_multirun_start(config(where=tmp_path / "new"))  # hydra.sweep.dir=NEW_DIR


# ---- case 9: a heartbeat off a terminal ----------------------------------------------------


@pytest.mark.parametrize("bar", [False, True], ids=["bar-off", "bar-on"])
def test_a_heartbeat_line_when_the_progress_bar_is_off(tmp_path: Path, caplog, bar: bool) -> None:
    overrides = [*QUIET, f"trainer.enable_progress_bar={str(bar).lower()}"]
    overrides += ["callbacks.heartbeat.every_seconds=null", "callbacks.heartbeat.every_n_steps=2"]
    with caplog.at_level(logging.INFO, logger="depthbench"):
        train(compose_config(overrides, tmp_path))
    beats = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    if bar:
        assert beats == []
        return
    assert [b.split("  ")[0] for b in beats] == [
        "step 2/6 (epoch 1/2)",
        "step 4/6 (epoch 2/2)",
        "step 6/6 (epoch 2/2)",
    ]
    assert all(re.search(r"  loss \d+\.\d{4}  [\d,]+ samples/s  ETA \d+ s$", b) for b in beats)


def test_a_refused_folders_two_ways_on_work(finished: Path, tmp_path: Path) -> None:
    """The RunFolderError's ways on, as written: a new folder, or ckpt_path=auto."""
    with pytest.raises(RunFolderError) as refused:
        train(compose_config([*QUIET, "trainer.max_epochs=3"], finished))
    assert "hydra.run.dir=NEW_DIR" in str(refused.value) and "ckpt_path=auto" in str(refused.value)
    assert train(compose_config([*QUIET, "trainer.max_epochs=3"], tmp_path / "new"))["steps"] == 9
    copy = tmp_path / "copy"  # continued with ckpt_path=auto, as the line says
    shutil.copytree(finished, copy)
    resumed = train(compose_config([*QUIET, "trainer.max_epochs=3", "ckpt_path=auto"], copy))
    assert resumed["epochs"] == 3 and resumed["steps"] == 9


def test_checkpoint_hints_work_as_written(finished: Path, tmp_path: Path) -> None:
    """``ckpt_path=last`` in a new folder names the old run folder or ``hydra.run.dir=DIR
    ckpt_path=auto``; a resume with another model names the checkpoint's settings or a new run
    without ckpt_path. Each way on runs."""
    from depthbench.errors import ConfigError

    with pytest.raises(CheckpointError, match="resume with ckpt_path=auto") as not_found:
        train(compose_config([*QUIET, "ckpt_path=last"], tmp_path / "fresh"))
    assert "give the old run folder (ckpt_path=outputs/runs/...)" in str(not_found.value)
    more = [*QUIET, "trainer.max_epochs=3"]
    from_folder = train(compose_config([*more, f"ckpt_path={finished}"], tmp_path / "from_old"))
    assert from_folder["steps"] == 9  # resumed from the old run's step 6
    with pytest.raises(ConfigError, match="resume with the checkpoint's model settings") as other:
        train(compose_config([*more, "model.depth=2", f"ckpt_path={finished}"], tmp_path / "d2"))
    assert "model.depth=4 (now 2)" in str(other.value)
    assert "start a new run without ckpt_path" in str(other.value)
    assert train(compose_config([*more, "model.depth=2"], tmp_path / "new_run"))["steps"] == 9
