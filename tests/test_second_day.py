"""The second day of a user (issue 30): one line and exit 2 where a traceback was, small
commands that answer before torch loads, quick trials that are small, a continued run that
trains, sweeps that resume as sweeps."""

from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT


def run_py(*args: str, cwd: Path = ROOT, timeout: float = 300) -> tuple[int, str]:
    """``python ARGS`` as a process in ``cwd``; (exit code, stdout + stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


# ---- one line, exit 2, everywhere ------------------------------------------------------------
def test_trainer_arguments_are_read_from_lightnings_source_without_importing_it() -> None:
    code = (
        "import sys; from depthbench.core.config_compose import trainer_arguments; "
        "names = trainer_arguments(); print(sorted(names)); print('lightning' in sys.modules)"
    )
    status, out = run_py("-c", code)
    assert status == 0, out
    names, imported = out.strip().splitlines()
    assert imported == "False"
    from lightning.pytorch import Trainer

    assert eval(names) == sorted(set(inspect.signature(Trainer.__init__).parameters) - {"self"})


@pytest.mark.process
def test_a_trainer_argument_lightning_refuses_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    status, out = run_py("train.py", "trainer.limit_val_batches=0.1", "trainer.max_epochs=1",
                         "logger=none", f"hydra.run.dir={run}")  # fmt: skip
    assert status == 2, out
    assert "Traceback" not in out and "HYDRA_FULL_ERROR" not in out, out
    lines = [line for line in out.splitlines() if "MisconfigurationException: " in line]
    assert len(lines) == 1 and "limit_val_batches" in lines[0], out


@pytest.mark.process
def test_cfg_hydra_resolve_prints_the_resolved_hydra_config() -> None:
    status, out = run_py("train.py", "--cfg", "hydra", "--resolve", "task_name=t30")
    assert status == 0, out
    assert "Traceback" not in out, out
    assert "dir: ./outputs/runs/t30/" in out and "${paths.log_dir}" not in out, out


def test_cfg_hydra_resolve_is_selected_from_the_whole_config() -> None:
    from depthbench.core.config_compose import hydra_config_resolvable

    assert hydra_config_resolvable(["--cfg", "hydra", "-r", "a=1"]) == [
        "--cfg", "all", "--package", "hydra", "-r", "a=1"]  # fmt: skip
    assert hydra_config_resolvable(["--cfg", "hydra"]) == ["--cfg", "hydra"]  # unresolved: Hydra's
    assert hydra_config_resolvable(["--cfg", "job", "--resolve"]) == ["--cfg", "job", "--resolve"]


def test_sigterm_line_is_dropped_whatever_its_rank_prefix() -> None:
    from depthbench.quiet import DROPPED_INFO, DropLines

    drop = DropLines(DROPPED_INFO)

    def kept(message: str) -> bool:
        return drop.filter(logging.LogRecord("x", logging.INFO, "", 0, message, None, None))

    assert not kept("Received SIGTERM: 15")
    assert not kept("[rank: 0] Received SIGTERM: 15")
    assert not kept("[rank: 3] GPU available: False, used: False")
    assert kept("[rank: 0] Something the user must read")


def test_make_notebook_allows_root_only_as_root() -> None:
    out = subprocess.run(["make", "-n", "notebook"], cwd=ROOT, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if "jupyter lab" in x)
    assert ("--allow-root" in line) == (os.getuid() == 0), line


def _lesson_main(monkeypatch, argv: list[str], raises: BaseException | None = None) -> list:
    """``depthbench lesson ARGV`` with the lesson itself replaced: the args it was given."""
    from depthbench.lesson import run

    given = []

    def fake_lesson(args):
        given.append(args)
        if raises is not None:
            raise raises
        return Path("page.md")

    monkeypatch.setattr(run, "lesson", fake_lesson)
    run.main(argv)
    return given


def test_ctrl_c_in_the_lesson_is_one_line_with_the_command_that_resumes_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from depthbench.lesson import run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        _lesson_main(monkeypatch, ["--only", "fixes", "--seeds", "2"], KeyboardInterrupt())
    assert stop.value.code == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    command = err.split("resume with: ")[1]
    start = "depthbench lesson --only fixes --seeds 2 --runs outputs/lesson/quick/"
    assert command.startswith(start)
    assert command.endswith(" --resume")
    # the command as printed continues that folder
    resumed = run.parse_args(command.split()[2:])
    assert resumed.resume and resumed.only == "fixes" and resumed.seeds == 2


def test_resume_without_runs_continues_the_newest_unfinished_lesson_or_refuses(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from depthbench.lesson import run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:  # none yet: refused, nothing started
        _lesson_main(monkeypatch, ["--resume"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "there is none" in err and "--runs DIR --resume" in err

    quick = tmp_path / "outputs/lesson/quick"
    old, done = quick / "2026-01-01_10-00-00", quick / "2026-01-02_10-00-00"
    old.mkdir(parents=True)  # interrupted: no finished.txt
    done.mkdir()
    (done / run.DONE_FILE).write_text("x\n")  # finished: not resumed
    newest_full = tmp_path / "outputs/lesson/full/2026-01-03_10-00-00"
    newest_full.mkdir(parents=True)  # another profile: not resumed
    given = _lesson_main(monkeypatch, ["--resume"])
    assert given[0].runs == Path("outputs/lesson/quick/2026-01-01_10-00-00") and given[0].resume


# ---- start-up in seconds ---------------------------------------------------------------------
LIGHT = {
    # what a small command imports -> what it must not import
    "depthbench.cli, depthbench.core.config_values, depthbench.core.config_compose, "
    "depthbench.launch.sweeps, "
    "depthbench.core.run_folder.ownership, depthbench.core.run_folder.output_dir": (
        "torch",
        "lightning",
    ),
    "depthbench.data, depthbench.data.spec, depthbench.tools.predict, depthbench.core.build, "
    "depthbench.core.run_folder.checkpoint": ("lightning", "torchvision"),
}


@pytest.mark.parametrize("modules", list(LIGHT))
def test_small_commands_import_no_heavy_module(modules: str) -> None:
    code = f"import sys, {modules}; print([m for m in {LIGHT[modules]!r} if m in sys.modules])"
    status, out = run_py("-c", code)
    assert status == 0 and out.strip() == "[]", out


def test_validation_names_the_activations_and_inits_the_layers_take() -> None:
    from depthbench.core import config_values as validation
    from depthbench.models import layers

    assert tuple(layers.ACTIVATIONS) == validation.ACTIVATIONS
    assert layers.INITS == validation.INITS


def test_images_are_resized_and_cropped_as_torchvision_does() -> None:
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.transforms import functional as TF

    from depthbench.data.images import resize_center_crop, to_uint8_tensor

    rng = np.random.default_rng(0)
    for width, height in [(8, 8), (30, 17), (17, 30), (100, 37), (5, 5), (31, 32)]:
        pixels = (rng.random((height, width, 3)) * 255).astype("uint8")
        for mode in ("L", "RGB"):
            img = Image.fromarray(pixels).convert(mode)
            for size in [(8, 8), (28, 28), (32, 24), (24, 32)]:
                ref = TF.pil_to_tensor(TF.center_crop(TF.resize(img, min(size)), list(size)))
                assert torch.equal(to_uint8_tensor(resize_center_crop(img, size)), ref)


@pytest.mark.process
def test_a_bad_value_typed_by_hand_is_one_line_and_makes_no_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    status, out = run_py("train.py", "model.depth=0", f"hydra.run.dir={run}")
    assert status == 2 and out.strip() == "ConfigError: model.depth must be an integer >= 1, got 0"
    assert not run.exists()


@pytest.mark.process
@pytest.mark.slow  # Hydra's own --help takes seconds: the point of printing it ourselves
def test_help_is_the_text_hydra_prints() -> None:
    hydras = (
        "import sys; sys.argv = ['train.py', '--help']; from depthbench import cli; "
        "cli._train_hydra()"
    )
    assert run_py("train.py", "--help") == run_py("-c", hydras)


# ---- quick trials are small ------------------------------------------------------------------
def test_val_size_and_test_size_shrink_the_evaluated_sets(tmp_path: Path) -> None:
    from helpers import compose_config
    from hydra.utils import instantiate

    sizes = ["data=synthetic", "data.num_train=400", "data.num_test=200"]
    cfg = compose_config([*sizes, "data.val_size=30", "data.test_size=50"], tmp_path)
    data = instantiate(cfg.data)
    data.setup("fit")
    assert [len(data.splits[s][1]) for s in ("train", "val", "test")] == [370, 30, 50]
    counts = data.splits["test"][1].bincount()
    assert counts.max() - counts.min() <= 1  # balanced over the classes
    cfg = compose_config([*sizes, "data.test_size=0.25"], tmp_path)
    fraction = instantiate(cfg.data)
    fraction.setup("fit")
    assert len(fraction.splits["test"][1]) == 50
    whole = instantiate(compose_config(sizes, tmp_path).data)
    whole.setup("fit")
    assert len(whole.splits["test"][1]) == 200


def test_a_test_size_beyond_the_test_split_is_one_line(tmp_path: Path) -> None:
    from helpers import compose_config
    from hydra.utils import instantiate

    from depthbench.errors import ConfigError

    cfg = compose_config(["data=synthetic", "data.num_test=20", "data.test_size=30"], tmp_path)
    with pytest.raises(ConfigError, match=r"data.test_size=30 is larger than the 20 test"):
        instantiate(cfg.data).setup("fit")
    bad = compose_config(["data=synthetic", "data.test_size=-1"], tmp_path)
    with pytest.raises(Exception, match=r"data.test_size must be a count >= 1"):
        instantiate(bad.data)


# ---- continuing a run means training -----------------------------------------------------------
def test_the_continuation_line_names_the_schedule_or_refuses_one_that_cannot_stretch() -> None:
    from depthbench.core.run_folder.ownership import continuation_line
    from depthbench.errors import ConfigError

    record, trainer = {"status": "ok", "epochs": 2}, {"max_epochs": 4}
    cosine = {"_target_": "depthbench.optim.schedulers.cosine"}
    line = continuation_line(record, cosine, trainer)
    assert "cosine learning-rate schedule is re-planned for 4 epochs" in line
    assert "constant rate" in continuation_line(record, None, trainer)
    onecycle = {"_target_": "depthbench.optim.schedulers.onecycle"}
    with pytest.raises(ConfigError, match=r"train a new run with trainer.max_epochs=4"):
        continuation_line(record, onecycle, trainer)


def test_raising_max_epochs_on_a_finished_run_trains_with_a_replanned_schedule(
    tmp_path: Path, caplog
) -> None:
    import csv

    from helpers import compose_config

    from depthbench.core.run import train

    tiny = ["+trainer.limit_train_batches=4", "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1", "callbacks.progress_bar.refresh_rate=0",
            "trainer.log_every_n_steps=1"]  # fmt: skip
    first = train(compose_config(["trainer.max_epochs=2", *tiny], tmp_path))
    with caplog.at_level(logging.INFO, logger="depthbench"):
        second = train(compose_config(["trainer.max_epochs=4", "ckpt_path=auto", *tiny], tmp_path))
    assert second["status"] == "ok" and second["steps"] == 16
    assert "cosine learning-rate schedule is re-planned for 4 epochs" in caplog.text
    assert second["fit_seconds"] > first["fit_seconds"]  # both parts of the run
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").read_text().splitlines()))
    lrs = {int(r["step"]): float(r["lr-AdamW"]) for r in rows if r.get("lr-AdamW")}
    after = [lr for step, lr in lrs.items() if step > 8]
    assert after and min(after) > 1e-5 * max(lrs.values())  # the new epochs train


def test_a_finished_onecycle_run_is_refused_and_the_new_run_it_names_trains(tmp_path: Path) -> None:
    from helpers import compose_config

    from depthbench.core.run import train
    from depthbench.errors import ConfigError

    tiny = ["scheduler=onecycle", "+trainer.limit_train_batches=8", "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1", "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
    run = tmp_path / "run"
    train(compose_config(["trainer.max_epochs=1", *tiny], run))
    with pytest.raises(ConfigError) as refused:
        train(compose_config(["trainer.max_epochs=2", "ckpt_path=auto", *tiny], run))
    assert "train a new run with trainer.max_epochs=2 (leave ckpt_path unset)" in str(refused.value)
    again = train(compose_config(["trainer.max_epochs=2", *tiny], tmp_path / "new"))
    assert again["status"] == "ok" and again["epochs"] == 2


def test_each_command_of_a_run_folder_is_kept(tmp_path: Path) -> None:
    from depthbench.core.run_folder.commands import read_commands, record_command

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- trainer.max_epochs=2\n")
    record_command(tmp_path, "python train.py", ["trainer.max_epochs=4", "ckpt_path=auto"])
    record_command(tmp_path, "python train.py", ["trainer.max_epochs=6", "ckpt_path=auto",
                                                 "+logger.wandb.api_key=abc123"])  # fmt: skip
    assert read_commands(tmp_path) == [
        "python train.py trainer.max_epochs=2",
        "python train.py trainer.max_epochs=4 ckpt_path=auto",
        "python train.py trainer.max_epochs=6 ckpt_path=auto "
        "'+logger.wandb.api_key=***redacted***'",
    ]


# ---- sweeps resume as sweeps -------------------------------------------------------------------
@pytest.mark.process
@pytest.mark.slow  # two sweeps of two short digits runs
def test_ctrl_c_in_a_sweep_keeps_finished_jobs_and_prints_the_command_that_resumes_it(
    tmp_path: Path,
) -> None:
    import csv
    import json
    import shlex
    import signal

    from test_interrupt import INTERRUPTIBLE, start_train, wait_for

    sweep = tmp_path / "sweep"
    proc = start_train(["-m", *INTERRUPTIBLE, "model.depth=2,3", f"hydra.sweep.dir={sweep}"])
    wait_for(sweep / "1" / "checkpoints" / "last.ckpt", proc)  # job 0 done, job 1 under way
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    command = out.split("resume with: ")[1].splitlines()[0]
    assert command.startswith("python train.py -m ") and command.endswith(
        f"hydra.sweep.dir={sweep} ckpt_path=auto"
    )
    rows = list(csv.DictReader((sweep / "summary.csv").read_text().splitlines()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "ok"), ("1", "interrupted")]
    first = json.loads((sweep / "0" / "metrics.json").read_text())

    status, resumed = run_py(*shlex.split(command)[1:])
    assert status == 0, resumed[-3000:]
    rows = list(csv.DictReader((sweep / "summary.csv").read_text().splitlines()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "ok"), ("1", "ok")]
    assert json.loads((sweep / "0" / "metrics.json").read_text()) == first  # kept, not rerun
    assert json.loads((sweep / "1" / "metrics.json").read_text())["steps"] == 30


def test_a_refused_commands_folder_is_removed_and_a_folder_with_results_kept(
    tmp_path: Path,
) -> None:
    from depthbench.core.run_folder.ownership import discard_refused

    refused = tmp_path / "refused"
    (refused / ".hydra").mkdir(parents=True)
    (refused / "train.log").write_text("ConfigError: x\n")
    (refused / "commands.txt").write_text("now  python train.py\n")
    assert discard_refused(refused) and not refused.exists()
    kept = tmp_path / "kept"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert not discard_refused(kept) and kept.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file\n")
    assert not discard_refused(mine) and (mine / "notes.txt").exists()


def test_the_report_counts_each_outcome_apart() -> None:
    from depthbench.report.collect import Run
    from depthbench.report.writer import outcome_counts

    runs = [Run(Path(str(i)), "e", {}, {}, status=s)
            for i, s in enumerate(["ok", "ok", "interrupted", "diverged", "failed"])]  # fmt: skip
    assert outcome_counts(runs) == "5 runs, 2 ok, 1 interrupted, 1 diverged, 1 failed."


# ---- current Optuna ----------------------------------------------------------------------------
def test_optuna_is_current_and_sqlalchemy_2() -> None:
    from importlib.metadata import version

    assert int(version("optuna").split(".")[0]) >= 5
    assert int(version("sqlalchemy").split(".")[0]) == 2


def test_sweeps_become_optuna_distributions() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.depthbench_sweepers.resumable_optuna import search_space

    space, fixed = search_space(["optimizer.lr=tag(log, interval(0.0001, 0.03))",
                                 "model.depth=choice(2, 4, 8)", "model.width=range(16, 64, 16)",
                                 "x=interval(1, 5)", "seed=3", "model.width=32"])  # fmt: skip
    assert space["optimizer.lr"] == FloatDistribution(0.0001, 0.03, log=True)
    assert space["model.depth"] == CategoricalDistribution([2, 4, 8])
    assert "model.width" not in space  # fixed on the command line: not searched
    assert space["x"] == FloatDistribution(1.0, 5.0)  # as Hydra reads interval(1, 5)
    assert fixed == {"seed": "3", "model.width": "32"}
    assert search_space(["w=range(16, 64, 16)"])[0]["w"] == IntDistribution(16, 64, step=16)


@pytest.mark.process
@pytest.mark.slow  # a two-trial search, then the dashboard's server
def test_a_study_of_mlp_optuna_opens_in_optuna_dashboard(tmp_path: Path) -> None:
    import json
    import socket
    import time
    import urllib.request

    from test_optuna_resume import _search

    db = tmp_path / "optuna.db"
    study = _search(2, db, tmp_path / "sweep")
    with socket.socket() as s:  # a free port on localhost
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    server = subprocess.Popen([str(dashboard), f"sqlite:///{db}", "--host", "127.0.0.1",
                               "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/studies", timeout=5) as r:
                    studies = json.loads(r.read())["study_summaries"]
            except OSError:
                time.sleep(0.2)
        assert studies is not None, server.stderr.read().decode() if server.poll() else "no answer"
        listed = next(s for s in studies if s["study_name"] == "mlp_lr_depth_width")
        with urllib.request.urlopen(f"{base}/studies/{listed['study_id']}", timeout=10) as r:
            trials = json.loads(r.read())["trials"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [t["number"] for t in trials] == [t.number for t in study.trials] == [0, 1]
    assert [t["values"] for t in trials] == [[t.value] for t in study.trials]
