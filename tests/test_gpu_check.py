"""The GPU check (``make gpu-check``): it refuses cleanly without CUDA, runs on a CPU at tiny
sizes and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from depthbench.bench import gpu, pages
from depthbench.bench.gpu import MODEL_RUNS
from depthbench.models import list_models

RESULTS_DIR = ROOT / "docs" / "results"


def test_every_registered_model_has_a_fast_dev_run() -> None:
    assert set(list_models()) <= set(MODEL_RUNS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_cuda_the_check_refuses_in_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        gpu.main(["--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "no CUDA device here; `--device cpu`" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_committed_page_is_its_record_rendered() -> None:
    """gpu.md is what the code renders from gpu.json: a heading per recorded section, or, with
    no record, the page naming the command that makes one."""
    record = json.loads((RESULTS_DIR / "gpu.json").read_text())
    page = (RESULTS_DIR / "gpu.md").read_text()
    assert page == pages.render_gpu(record)
    headings = [line[3:] for line in page.splitlines() if line.startswith("## ")]
    if record.get("sections"):
        assert headings == [pages.GPU_SECTIONS[name][0] for name in record["sections"]]
        assert record["environment"]["torch"] in page
    else:
        assert headings == [] and pages.GPU_COMMAND in page


def test_dry_run_of_two_sections_writes_the_report(tmp_path: Path) -> None:
    record = gpu.main(["--device", "cpu", "--out", str(tmp_path), "--only", "hot_path,throughput"])
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["environment"]["device"] == "cpu"
    assert set(saved["sections"]) == {"hot_path", "throughput"}
    tput = record["sections"]["throughput"]
    assert tput["status"] == "ok" and tput["resnet20@16"]["images_per_second"] > 0
    assert tput["resnet20@16"]["timed_steps"] == gpu.TINY.throughput_steps
    hot = record["sections"]["hot_path"]
    assert hot["status"] == "ok" and hot["steps"], hot
    assert hot["syncs_between_logging_steps"] == 0 and hot["copies_between_logging_steps"] == 0
    page = (tmp_path / "gpu.md").read_text()
    assert "Dry run on a CPU" in page and "images/s" in page and "resnet50" in page


@pytest.mark.slow
def test_dry_run_of_the_whole_check(tmp_path: Path) -> None:
    record = gpu.main(["--device", "cpu", "--out", str(tmp_path)])
    statuses = {k: s["status"] for k, s in record["sections"].items()}
    assert set(statuses) == set(gpu.SECTIONS) and set(statuses.values()) == {"ok"}, statuses
    assert record["sections"]["fast_dev_run"]["all_ok"], record["sections"]["fast_dev_run"]
    assert "## fast_dev_run of every registered model" in (tmp_path / "gpu.md").read_text()
