"""The committed benchmark pages are what the code renders from their committed records, so every
figure on them comes from the record beside it (and a change to a renderer shows in the page)."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT

from depthbench.bench.pages import PAGES

RESULTS_DIR = ROOT / "docs" / "results"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_each_page_is_its_json_rendered(page: str) -> None:
    record = json.loads((RESULTS_DIR / f"{page}.json").read_text())
    assert (RESULTS_DIR / f"{page}.md").read_text() == PAGES[page](record)


def test_each_bench_section_says_where_it_was_measured() -> None:
    record = json.loads((RESULTS_DIR / "bench.json").read_text())
    page = (RESULTS_DIR / "bench.md").read_text()
    for section in record.values():
        assert section["machine"]["command"] in page
