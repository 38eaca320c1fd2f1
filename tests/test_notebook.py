"""``notebooks/lesson.ipynb`` runs top to bottom (at tiny sizes) and draws every claim's figure."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = ROOT / "notebooks" / "lesson.ipynb"


def test_committed_notebook_has_no_outputs() -> None:
    """The file stays small and diff-able: outputs are cleared before committing."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_cells_are_valid_python() -> None:
    """A cheap check on every run: each code cell compiles."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        compile(cell.source, f"lesson.ipynb cell {i}", "exec")


# in the fast suite so the notebook never goes stale: 75 s on the 2-core VM under a load of 6
# (about 35 s of one core; 31 s idle before the controls and demonstrations 10-14 came in)
@pytest.mark.process
def test_lesson_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch) -> None:
    """Every cell runs without error at tiny sizes; each claim that runs on a CPU shows one
    figure, the claim beside its negative control (claims 1-8 and demonstrations 10-14; claim 5
    adds two PNGs of the run: first-layer filters and feature maps); claim 9 needs a GPU."""
    monkeypatch.setenv("DEPTHBENCH_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("DEPTHBENCH_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
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
    print(f"notebook executed in {seconds:.0f} s")
    for c in nb.cells:  # seconds per cell (nbclient's timing metadata)
        t = c.get("metadata", {}).get("execution", {})
        if t:
            took = pd.Timestamp(t["shell.execute_reply"]) - pd.Timestamp(t["iopub.execute_input"])
            print(f"{took.total_seconds():6.1f} s  {c.source.splitlines()[0][:60]}")
