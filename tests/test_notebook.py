"""``notebooks/lesson.ipynb`` runs top to bottom (at tiny sizes), draws every claim's figure, and
its committed outputs are those of that tiny run on the code as committed."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = ROOT / "notebooks" / "lesson.ipynb"
# notebooks/outputs.py is a script beside the notebook, not part of the package
_spec = importlib.util.spec_from_file_location("outputs", ROOT / "notebooks" / "outputs.py")
outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(outputs)


def test_committed_notebook_has_the_outputs_of_a_run_and_stays_small() -> None:
    """Every code cell was run, in order, once; no run-specific timing or path; under 1 MB."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert all(c.outputs for c in code[:9])  # set-up and claims 1-8 print or draw
    assert not any("execution" in c.get("metadata", {}) for c in code)
    assert "runs go to <runs> | tiny" in outputs.texts(nb)[0]
    assert NOTEBOOK.stat().st_size < 1_000_000


def test_notebook_cells_are_valid_python() -> None:
    """A cheap check on every run: each code cell compiles."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        compile(cell.source, f"lesson.ipynb cell {i}", "exec")


def test_outputs_agree_up_to_rounding_and_no_further() -> None:
    """Another CPU may round the last digits differently; other text or numbers are stale."""
    assert outputs._same("acc 0.105182, ratio 1.078e-20", "acc 0.105190, ratio 1.08e-20")
    assert not outputs._same("train acc 0.105182", "train acc 0.136891")
    assert not outputs._same("confirmed 0.9", "not confirmed 0.9")
    assert not outputs._same("depth 20: 0.1", "depth 20: 0.1 depth 2: 0.1")


def test_a_stream_cut_in_two_by_the_kernel_reads_as_one() -> None:
    """ipykernel sends stdout in chunks wherever its flush timer falls; the text is what counts."""
    import nbformat

    def notebook(*outputs: dict) -> Any:
        cell = nbformat.v4.new_code_cell("print('a'); print('b')")
        cell.outputs = [nbformat.v4.new_output(**o) for o in outputs]
        return nbformat.v4.new_notebook(cells=[cell])

    whole = notebook({"output_type": "stream", "name": "stdout", "text": "a\nb\n"})
    cut = notebook({"output_type": "stream", "name": "stdout", "text": "a\n"},
                   {"output_type": "stream", "name": "stdout", "text": "b\n"})  # fmt: skip
    other = notebook({"output_type": "stream", "name": "stdout", "text": "a\n"},
                     {"output_type": "stream", "name": "stderr", "text": "b\n"})  # fmt: skip
    assert outputs.differences(whole, cut) == []
    assert outputs.differences(whole, other) != []


# not marked slow: in every `make test`, so the notebook never goes stale
@pytest.mark.process
def test_lesson_notebook_runs_top_to_bottom_and_its_outputs_are_current(tmp_path: Path) -> None:
    """Every cell runs without error at tiny sizes; each claim that runs on a CPU shows one
    figure, the claim beside its negative control (claims 1-8 and demonstrations 10-14; claim 5
    adds two PNGs of the run: first-layer filters and feature maps); claim 9 needs a GPU. The
    text of every output is the committed one (``make notebook-outputs`` writes it)."""
    start = time.perf_counter()
    nb = outputs.execute(NOTEBOOK, tmp_path)
    seconds = time.perf_counter() - start
    images = [
        [o for o in c.outputs if "image/png" in o.get("data", {})]
        for c in nb.cells
        if c.cell_type == "code"
    ]
    per_claim = [len(i) for i in images[1:]]  # cell 0 is the set-up; claim k is cell k
    assert len(per_claim) == 14, per_claim
    assert per_claim[:8] == [1, 1, 1, 1, 3, 1, 1, 1], per_claim
    assert per_claim[9:] == [1, 1, 1, 1, 1], per_claim  # demonstrations 10-14
    assert (tmp_path / "hierarchy" / "feature_maps.png").is_file()
    committed = nbformat.read(NOTEBOOK, as_version=4)
    diffs = outputs.differences(committed, nb)
    assert not diffs, "outputs changed; make notebook-outputs writes them:\n" + "\n".join(diffs)
    print(f"notebook executed in {seconds:.0f} s")
    for c in nb.cells:  # seconds per cell (nbclient's timing metadata)
        t = c.get("metadata", {}).get("execution", {})
        if t:
            took = pd.Timestamp(t["shell.execute_reply"]) - pd.Timestamp(t["iopub.execute_input"])
            print(f"{took.total_seconds():6.1f} s  {c.source.splitlines()[0][:60]}")
