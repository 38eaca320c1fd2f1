"""Every hint works as written.

The scan finds every command written in a string of ``src/depthbench`` (a message, a page line).
``HINTS`` lists each command a message suggests, by what it says (``ckpt_path=auto``), with the
tests that run it and check that it does what the message promises, whichever messages suggest
it; ``NOT_HINTS`` lists the text that looks like a command but suggests none, with why. A new
message needs an entry only when it suggests a command no test runs yet; the scan fails on such
a command, and on a listed one that no string writes any more.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch
from helpers import FAST, FMNIST_DEBIAN, ROOT, compose_config
from hydra.utils import instantiate

from depthbench.errors import ConfigError

PACKAGE = ROOT / "src" / "depthbench"

# what a suggested command looks like inside a message
COMMAND = re.compile(
    # a phrase whose command the message builds at run time
    r"did you mean|remove it|on purpose: \+|resume with|raise trainer\.\w+"
    r"|\b(?:add|run|give|set|try|use) $"  # an imperative that a value of the message completes
    r"|leave [\w.]+ unset"
    r"|(?<![\w.%{\\-])[+~]{0,2}[a-z_]\w*(?:\.\w+)*=(?![=%({\[\s])[^\s,;)`'\"]+"  # key=value
    r"|\b(?:depthbench (?:train|eval|predict|report|attention|lesson)\b(?!:)|depthbench-\w+"
    r"|python (?:-m [\w.]+|\S+\.py)|make [a-z][\w-]*|pip install \S+|apt-get install \S+)"
    r"|(?<![\w-])--[a-z][\w-]*"  # a flag
)
# argparse's own text describes the command being run, not another one
ARGPARSE_TEXT = {"help", "description", "prog", "metavar", "epilog", "usage"}

GPU = "test_gpu_check.py::test_dry_run_of_two_sections_writes_the_report"
UP = "test_user_path.py::"
HERE = "test_hints.py::"
# the command as a message writes it -> the tests that run it and check what the message says
HINTS: dict[str, list[str]] = {
    "--device": [GPU],
    "--from": ["test_lesson.py::test_lesson_decides_claim_and_control_resumes_and_decides_again"],
    "--help": [
        HERE + "test_each_subcommands_help_lists_its_options",
        UP + "test_each_entry_points_help_describes_itself",
        UP + "test_help_lists_no_lesson_group",
    ],
    "--only": [
        UP + "test_the_lesson_is_refused_naming_its_command",
        "test_lesson_provenance.py::test_set_on_a_computed_claim_or_with_from_is_refused_in_one_line",
    ],
    "--out": [GPU],
    "--profile": [
        "test_second_day.py::test_resume_without_runs_continues_the_newest_unfinished_lesson_or_refuses"
    ],
    "--resume": [
        "test_lesson.py::test_lesson_decides_claim_and_control_resumes_and_decides_again",
        "test_lesson_provenance.py::test_a_failed_job_is_never_marked_finished_and_runs_again_on_resume",
    ],
    "--runs": [
        "test_second_day.py::test_resume_without_runs_continues_the_newest_unfinished_lesson_or_refuses"
    ],
    "add ": [HERE + "test_text_csv_runs_as_its_hints_say"],
    "apt-get install dataset-fashion-mnist`;": [
        HERE + "test_the_debian_package_named_is_where_fashion_mnist_is_read"
    ],
    "ckpt_path=/path/to/run/checkpoints/last.ckpt": [
        "test_train.py::test_eval_checkpoint_and_resume"
    ],
    "ckpt_path=auto": [
        UP + "test_checkpoint_hints_work_as_written",
        UP + "test_a_refused_folders_two_ways_on_work",
        UP + "test_a_sweep_into_another_sweeps_folder_is_refused",
    ],
    "ckpt_path=outputs/runs/...": [UP + "test_checkpoint_hints_work_as_written"],
    "data.download=true": [HERE + "test_download_hint_downloads_into_the_root"],
    "data.on_bad_files=skip": ["test_data.py::test_image_folder_skips_unreadable_files_when_asked"],
    "data.on_bad_rows=skip": ["test_text_csv.py::test_skip_drops_bad_rows_and_says_how_many"],
    "data.path=/path/to/train.csv": [HERE + "test_text_csv_runs_as_its_hints_say"],
    "data=coreference": ["test_coreference.py::test_attention_it_experiment_trains_and_measures"],
    "data=text_csv": [HERE + "test_text_csv_runs_as_its_hints_say"],
    "depthbench attention": ["test_attention_cli.py::test_prints_rows_summing_to_one"],
    "depthbench lesson": [UP + "test_the_lesson_is_refused_naming_its_command"],
    "depthbench-train": [HERE + "test_ddp_relaunches_the_scripts_named"],
    "did you mean": [
        UP + "test_did_you_mean_a_key_and_an_option_compose_as_suggested",
        UP + "test_eval_takes_the_checkpoints_data_keys",
    ],
    "experiment=attention_it": ["test_attention_cli.py::test_prints_rows_summing_to_one"],
    "hydra.run.dir=DIR": [UP + "test_a_refused_folders_two_ways_on_work"],
    "hydra.run.dir=NEW_DIR": [
        UP + "test_the_lock_keeps_a_second_process_out_and_dies_with_its_holder",
        UP + "test_a_refused_folders_two_ways_on_work",
    ],
    "hydra.sweep.dir=NEW_DIR": [UP + "test_a_sweep_into_another_sweeps_folder_is_refused"],
    "leave ckpt_path unset": [
        "test_second_day.py::test_a_finished_onecycle_run_is_refused_and_the_new_run_it_names_trains"
    ],
    "leave data unset": [HERE + "test_eval_on_other_data_leave_data_unset"],
    "leave hydra.run.dir unset": [
        UP + "test_the_lock_keeps_a_second_process_out_and_dies_with_its_holder",
        UP + "test_a_refused_folders_two_ways_on_work",
    ],
    "leave hydra.sweep.dir unset": [
        "test_seeds_together.py::test_a_run_stopped_while_training_together_is_not_resumed",
        UP + "test_a_sweep_into_another_sweeps_folder_is_refused",
    ],
    "model.backbone=depthbench": [
        HERE + "test_backbone_hints_name_config_keys",
        "test_finetune.py::test_depthbench_checkpoint_as_backbone",
    ],
    "model.batchnorm=true": [
        HERE + "test_the_divergence_hint_gives_the_net_normalisation",
        HERE + "test_residual_scale_hint_builds",
    ],
    "model.checkpoint=RUN/checkpoints/last.ckpt": [
        HERE + "test_backbone_hints_name_config_keys",
        "test_finetune.py::test_depthbench_checkpoint_as_backbone",
    ],
    "model.residual_scale=1.0": [HERE + "test_residual_scale_hint_builds"],
    "model.weights_path=PATH": [HERE + "test_backbone_hints_name_config_keys"],
    "model=transformer": [
        HERE + "test_text_data_takes_the_model_it_names",
        HERE + "test_text_csv_runs_as_its_hints_say",
    ],
    "on purpose: +": [UP + "test_add_plus_hint_adds_the_key"],
    "pip install 'depthbench[slurm]'": [HERE + "test_the_slurm_extra_installs_the_launcher_plugin"],
    "+trainer.profiler=simple": [HERE + "test_the_profiler_hint_prints_every_hooks_time"],
    "python train.py": [
        HERE + "test_ddp_relaunches_the_scripts_named",
        "test_distributed.py::test_ddp_cpu_two_processes_write_one_metrics_over_whole_val_set",
    ],
    "raise trainer.max_epochs": [UP + "test_raising_max_epochs_continues_the_finished_run"],
    "remove it": [UP + "test_eval_remove_it_works_as_written"],
    "resume with": [
        "test_second_day.py::test_ctrl_c_in_the_lesson_is_one_line_with_the_command_that_resumes_it",
        UP + "test_checkpoint_hints_work_as_written",
        UP + "test_the_interrupt_hint_and_auto_in_a_new_folder_resume_the_run",
    ],
}

PAGE = "names the command that made a page or a figure on it"
USAGE = "a usage line or program name: the command being run"
GIVEN = "names what the user gave, not a command to run"
INTERNAL = "a command the package runs itself"
# text that looks like a command in a message but suggests none -> why
NOT_HINTS: dict[str, str] = {
    "--first-seed": GIVEN,
    "--format": "git's own option, in the command that reads a commit",
    "--jobs": GIVEN,
    "--models": GIVEN,
    "--seeds": GIVEN,
    "--set": GIVEN,
    "--sklearn-worker": INTERNAL,
    "--top-k": GIVEN,
    "batch_size=256": "scikit-learn's settings, on a page",
    "ckpt_path=auto:": "says what ckpt_path=auto, as given, found",
    "depthbench eval": USAGE,
    "depthbench report": PAGE,
    "depthbench train": PAGE,
    "launcher=seeds_together": PAGE,
    "make bench": PAGE,
    "make gpu-check": PAGE,
    "n=1:": "prose on a page",
    "python -m depthbench.bench": USAGE,
    "python -m depthbench.bench.time_to_acc": INTERNAL,
    "python eval.py": "depthbench --help: the script a subcommand stands for",
    "seed=0": PAGE,
}


def commands_in_messages(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Every command written in a string of the package's code that holds a ``COMMAND``:
    docstrings, argparse's text and one-word strings (an override list's items) left out."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        skip = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in ARGPARSE_TEXT:
                skip |= {id(n) for n in ast.walk(node.value)}
        name = str(path.relative_to(package))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if id(node) in skip or " " not in node.value.strip():
                continue
            for m in COMMAND.finditer(node.value):
                found.setdefault(m.group(0), set()).add(name)
    return found


def test_every_message_that_suggests_a_command_is_listed_with_its_tests() -> None:
    found = commands_in_messages()
    assert not set(HINTS) & set(NOT_HINTS)
    new = {cmd: found[cmd] for cmd in set(found) - set(HINTS) - set(NOT_HINTS)}
    assert not new, "a message suggests a command no test runs: list it above"
    assert set(HINTS) | set(NOT_HINTS) <= set(found), "a listed command is gone: drop it above"
    for tests in HINTS.values():
        assert tests
        for ref in tests:
            file, name = ref.split("::")
            tree = ast.parse((ROOT / "tests" / file).read_text())
            assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, ref


# ---- the hints whose command no other test runs ----------------------------------------------


def refused_by(error_type: type[Exception], build, *args) -> str:
    """The message of the depthbench error ``build(*args)`` raises (Hydra's ``instantiate``
    wraps a constructor's)."""
    from depthbench.errors import depthbench_error

    with pytest.raises(Exception) as raised:
        build(*args)
    error = depthbench_error(raised.value)
    assert isinstance(error, error_type), raised.value
    return str(error)


def _data_module(overrides: list[str], tmp_path: Path, **kwargs):
    cfg = compose_config(overrides, tmp_path, data_dir=tmp_path / "data")
    return instantiate(cfg.data, **kwargs)


@pytest.mark.parametrize(
    ("data", "torchvision_class"),
    [("cifar10", "CIFAR10"), ("cifar100", "CIFAR100"), ("mnist", "MNIST"),
     ("fashion_mnist", "FashionMNIST"), ("flowers102", "Flowers102")],
)  # fmt: skip
def test_download_hint_downloads_into_the_root(
    data: str, torchvision_class: str, tmp_path: Path, monkeypatch
) -> None:
    """``data.download=false`` and no files: the error says ``data.download=true``; with it,
    ``prepare_data`` asks torchvision to download into the data root (recorded, not fetched)."""
    import torchvision.datasets

    from depthbench.errors import DataError

    calls = []

    def fetched(root, **kwargs):
        calls.append((root, kwargs.get("download")))

    monkeypatch.setattr(torchvision.datasets, torchvision_class, fetched)
    extra = {"debian_dir": tmp_path / "no_debian"} if data == "fashion_mnist" else {}
    with pytest.raises(DataError, match=r"run once with data\.download=true"):
        _data_module([f"data={data}", "data.download=false"], tmp_path, **extra).prepare_data()
    assert calls == []
    _data_module([f"data={data}", "data.download=true"], tmp_path, **extra).prepare_data()
    assert calls and all(c == (str(tmp_path / "data"), True) for c in calls), calls


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system")
def test_the_debian_package_named_is_where_fashion_mnist_is_read() -> None:
    """``apt-get install dataset-fashion-mnist`` puts the files where the data module reads."""
    from depthbench.data.fashion_mnist import DEBIAN_DIR, FILES

    assert Path(DEBIAN_DIR) == FMNIST_DEBIAN
    if not (FMNIST_DEBIAN / f"{FILES[0]}.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed here")
    owner = subprocess.run(["dpkg", "-S", str(FMNIST_DEBIAN / f"{FILES[0]}.gz")],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert owner.split(":")[0] == "dataset-fashion-mnist"


def test_text_data_takes_the_model_it_names(tmp_path: Path) -> None:
    from depthbench.core.build import build_data, build_net

    small = ["data=coreference", "data.n_train=64", "data.n_val=16", "data.n_test=16"]
    cfg = compose_config(small, tmp_path)
    dm = build_data(cfg)
    with pytest.raises(ConfigError, match="model=transformer") as refused:
        build_net(cfg.model, dm)
    suggested = re.search(r"(model=\w+)", str(refused.value)).group(1)
    cfg = compose_config([*small, suggested], tmp_path)
    assert build_net(cfg.model, build_data(cfg)).head.out_features == dm.num_classes


def test_text_csv_runs_as_its_hints_say(tmp_path: Path) -> None:
    """``data=text_csv`` alone: "add data.path=... to the command"; the constructor's own line
    (for Python callers) names the whole command, which trains."""
    from test_text_csv import write_csv

    from depthbench.core.run import train
    from depthbench.data.text_csv import TextCSVDataModule

    with pytest.raises(ConfigError, match=r"add data\.path=\.\.\. to the command"):
        train(compose_config(["data=text_csv", *FAST], tmp_path / "none"))
    with pytest.raises(ConfigError) as refused:
        TextCSVDataModule(path=None)
    written = str(refused.value).split(": ", 1)[1].split()
    csv = write_csv(tmp_path / "train.csv", 60)
    given = [o.replace("/path/to/train.csv", str(csv)) for o in written]
    assert train(compose_config([*given, *FAST], tmp_path / "run"))["status"] == "ok"


def test_eval_on_other_data_leave_data_unset(tmp_path: Path) -> None:
    """Data of another shape is refused naming "leave data unset"; without data= eval runs."""
    from depthbench.core.run import evaluate, train

    train(compose_config(FAST, tmp_path / "run"))
    ckpt = [f"ckpt_path={tmp_path / 'run'}", "+trainer.limit_test_batches=1"]
    other = ["data=synthetic", "data.num_train=64", "data.num_test=32", "data.batch_size=16"]
    cfg = compose_config([*ckpt, *other], tmp_path / "other", "eval")
    assert "leave data unset" in refused_by(ConfigError, evaluate, cfg)
    assert evaluate(compose_config(ckpt, tmp_path / "own", "eval"))["status"] == "ok"


def test_the_divergence_hint_gives_the_net_normalisation(tmp_path: Path) -> None:
    """The divergence line's "try model.batchnorm=true": with it, the net has the
    normalisation whose absence the line names as a cause."""
    from depthbench.core.build import build_data, build_net

    cfg = compose_config(["model.batchnorm=true"], tmp_path)
    net = build_net(cfg.model, build_data(cfg))
    assert any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in net.modules())


def test_residual_scale_hint_builds(tmp_path: Path) -> None:
    from depthbench.core.build import build_data, build_net

    base = ["model.residual=true", "model.batchnorm=true"]
    cfg = compose_config([*base, "model.residual_scale=0.5"], tmp_path)
    dm = build_data(cfg)
    refused = refused_by(ConfigError, build_net, cfg.model, dm)
    keys = re.findall(r"(model\.\w+=[\w.]+)", refused)
    assert keys[1:] == ["model.batchnorm=true", "model.residual_scale=1.0"]
    cfg = compose_config([*base, keys[2]], tmp_path)
    assert isinstance(build_net(cfg.model, dm), torch.nn.Module)


def test_backbone_hints_name_config_keys(tmp_path: Path, monkeypatch) -> None:
    """``model.backbone=depthbench`` without a checkpoint names ``model.checkpoint``; a weights
    download that fails offline names ``model.weights_path``, and that key loads the file."""
    import torchvision

    from depthbench.core.build import build_data, build_net
    from depthbench.errors import CheckpointError

    cfg = compose_config(["model=finetune", "model.backbone=depthbench"], tmp_path)
    dm = build_data(cfg)
    refused = refused_by(ConfigError, build_net, cfg.model, dm)
    assert re.findall(r"model\.\w+=\S+", refused) == [
        "model.backbone=depthbench", "model.checkpoint=RUN/checkpoints/last.ckpt"
    ]  # fmt: skip

    def offline(*args, **kwargs):
        raise OSError("no network")

    net_args = ["model=finetune", "model.backbone=mobilenet_v3_small", "model.image_size=32"]
    cfg = compose_config(net_args, tmp_path)
    real = torchvision.models.get_model

    def get_model(arch, weights=None, **kwargs):  # torchvision offline: no weights download
        return offline() if weights else real(arch, **kwargs)

    monkeypatch.setattr(torchvision.models, "get_model", get_model)
    refused = refused_by(CheckpointError, build_net, cfg.model, dm)
    assert "save them elsewhere with torch.save(model.state_dict(), PATH)" in refused
    assert "set model.weights_path=PATH" in refused
    saved = torchvision.models.mobilenet_v3_small()
    torch.save(saved.state_dict(), tmp_path / "mnv3.pth")
    cfg = compose_config([*net_args, f"model.weights_path={tmp_path / 'mnv3.pth'}"], tmp_path)
    net = build_net(cfg.model, dm)
    first = net.backbone.features[0][0].weight
    assert torch.equal(first, saved.features[0][0].weight)


def test_ddp_relaunches_the_scripts_named(monkeypatch) -> None:
    """DDP re-runs ``sys.argv[0]``: ``python train.py`` and the ``depthbench-train`` console
    script (both files) give its rank command; a script that is no file gets the hint."""
    from depthbench.launch import distributed

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["depthbench-train"] == "depthbench.cli:train_main"

    class Hydra:  # what hydra_rank_command reads of HydraConfig.get()
        overrides = type("O", (), {"task": ["model.depth=2"], "hydra": []})
        runtime = type("R", (), {"output_dir": "/tmp/run"})
        job = type("J", (), {"name": "train"})

    import hydra.core.hydra_config
    import hydra.utils

    monkeypatch.setattr(hydra.core.hydra_config.HydraConfig, "get", staticmethod(lambda: Hydra))
    monkeypatch.setattr(hydra.utils, "get_original_cwd", lambda: str(ROOT))
    monkeypatch.delattr(sys.modules["__main__"], "__spec__", raising=False)
    for script in (ROOT / "train.py", Path(sys.executable).parent / "depthbench-train"):
        if not script.exists():
            continue  # the console script exists only in an installed environment
        monkeypatch.setattr(sys, "argv", [str(script), "model.depth=2"])
        command, _ = distributed.hydra_rank_command(1)
        assert command[1] == str(script) and "model.depth=2" in command
    monkeypatch.setattr(sys, "argv", ["<stdin>"])
    with pytest.raises(ConfigError, match=r"run it as `python train.py \.\.\.`"):
        distributed.hydra_rank_command(1)


def test_the_slurm_extra_installs_the_launcher_plugin() -> None:
    """``pip install 'depthbench[slurm]'`` (not run: no network) installs the distribution
    that provides the module the sweep checks for."""
    from importlib.metadata import PackageNotFoundError, files

    from depthbench.launch.sweeps import OPTIONAL_PLUGINS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirement = extras["optional-dependencies"]["slurm"][0]
    distribution = re.match(r"[\w.-]+", requirement).group(0)
    (module,) = [m for m, how in OPTIONAL_PLUGINS.items() if "[slurm]" in how]
    try:
        provided = {str(f) for f in files(distribution) or []}
    except PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed here")
    assert f"{module.replace('.', '/')}/__init__.py" in provided


def test_each_subcommands_help_lists_its_options(capsys) -> None:
    """``depthbench SUBCOMMAND --help: its own options``, for those run in this process
    (train and eval: test_user_path.py starts them)."""
    from depthbench.cli import SUBCOMMANDS, main

    for name in set(SUBCOMMANDS) - {"train", "eval"}:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: depthbench {name}") and "options:" in out, out


@pytest.mark.process
def test_the_profiler_hint_prints_every_hooks_time(tmp_path: Path) -> None:
    """bench.md: ``python train.py +trainer.profiler=simple`` times every callback's hooks."""
    from helpers import run_train

    proc = run_train([*FAST, "+trainer.profiler=simple", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "run_training_batch" in out and "[Callback]DivergenceGuard.on_train_batch_end" in out
