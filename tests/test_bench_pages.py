"""The committed benchmark pages are what the code renders from their committed records, so every
figure on them comes from the record beside it (and a change to a renderer shows in the page)."""

from __future__ import annotations

import json

from depthbench.bench import data, report
from depthbench.bench.common import RESULTS_DIR


def test_bench_page_is_bench_json_rendered() -> None:
    record = json.loads((RESULTS_DIR / "bench.json").read_text())
    page = (RESULTS_DIR / "bench.md").read_text()
    assert page == report.render(record)
    for section in record.values():  # each section says where it was measured
        assert section["machine"]["command"] in page


def test_data_bench_page_is_bench_data_json_rendered() -> None:
    record = json.loads((RESULTS_DIR / "bench_data.json").read_text())
    info = record.pop("machine")
    assert (RESULTS_DIR / "bench_data.md").read_text() == data.render(record, info)
