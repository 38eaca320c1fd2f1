"""The load benchmark runs a real multirun in one process and records its resources per job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depthbench.bench import load


@pytest.mark.slow  # a three-job Hydra multirun in this process (about 20 s)
def test_load_bench_records_every_job_of_one_process(tmp_path: Path) -> None:
    load.main(["--jobs", "3", "--results-dir", str(tmp_path)])
    section = json.loads((tmp_path / "bench.json").read_text())["load"]
    assert section["jobs"] == 3 and section["early_job"] == 3  # fewer jobs than EARLY_JOB
    assert [r["job"] for r in section["per_job"]] == [0, 1, 2]
    assert all(r["rss_mib"] > 50 and r["open_fds"] > 3 for r in section["per_job"])
    assert section["open_fds"]["last"] == section["per_job"][-1]["open_fds"]
    page = (tmp_path / "bench.md").read_text()
    assert "## Load: a 3-job multirun in one process" in page and "open file descriptors" in page


def test_summary_compares_job_5_with_the_last() -> None:
    records = [{"job": i, "rss_mib": 100.0 + i, "open_fds": 20} for i in range(40)]
    summary = load.summarise(records)
    assert summary["rss_mib"] == {"early": 104.0, "last": 139.0}
    assert summary["rss_mib_per_job"] == 1.0 and summary["open_fds"] == {"early": 20, "last": 20}
