"""The GPU check (``make gpu-check``) runs on a CPU at tiny sizes and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ROOT

from depthbench.bench import gpu, pages
from depthbench.bench.gpu import MODEL_RUNS
from depthbench.models import list_models

RESULTS_DIR = ROOT / "docs" / "results"


def test_every_registered_model_has_a_fast_dev_run_and_the_budget_fits_8_minutes() -> None:
    assert set(list_models()) <= set(MODEL_RUNS)
    assert sum(gpu.BUDGET_S.values()) <= gpu.TOTAL_S <= 480
    assert gpu.budget_line().endswith(f"= {sum(gpu.BUDGET_S.values())} of 480")


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
    record = gpu.main(
        ["--device", "cpu", "--out", str(tmp_path), "--only", "throughput,cpu_vs_gpu"]
    )
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["environment"]["device"] == "cpu" and saved["budget"] == gpu.budget_line()
    tput = record["sections"]["throughput"]
    assert tput["status"] == "ok" and tput["resnet20@16"]["images_per_second"] > 0
    runs = record["sections"]["cpu_vs_gpu"]
    assert runs["status"] == "ok" and runs["batch32"]["status"] == "ok", runs
    page = (tmp_path / "gpu.md").read_text()
    assert "Dry run on a CPU" in page and "images/s" in page and "resnet50" in page


@pytest.mark.slow
def test_dry_run_of_the_whole_check(tmp_path: Path) -> None:
    record = gpu.main(["--device", "cpu", "--out", str(tmp_path)])
    statuses = {k: s["status"] for k, s in record["sections"].items()}
    assert set(statuses) == set(gpu.SECTIONS) and set(statuses.values()) == {"ok"}, statuses
    assert record["sections"]["fast_dev_run"]["all_ok"], record["sections"]["fast_dev_run"]
    assert record["sections"]["hot_path"]["syncs_between_logging_steps"] == 0
    assert record["sections"]["overhead"]["mlp20"]["ratio"] > 0
    assert record["sections"]["fmnist_94"]["curve"]  # scored after the epoch
    assert "## Time to 94%" in (tmp_path / "gpu.md").read_text()
