"""The committed outputs of ``lesson.ipynb``: one tiny run of the notebook on the code as committed.

``python notebooks/outputs.py`` (``make notebook-outputs``) executes the notebook at its tiny size
(``DEPTHBENCH_NOTEBOOK_TINY=1``, one thread) and writes it back with its outputs; ``--check``
executes it and says whether the committed outputs are still what the code prints.
``tests/test_notebook.py`` runs the same check. Compared are the text outputs of every code cell
(printed text, a table's or a value's plain text, errors), with the run folder's path masked and
numbers compared to 1% (``NUMBER_TOLERANCE``); figures are kept in the file but not compared
(their bytes follow the numbers that are).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).resolve().parent / "lesson.ipynb"
RUNS = "<runs>"  # what the run folder's path reads as in the committed outputs
# the same numbers up to rounding on every machine: one thread (one float summation order), and
# no GPU (claim 9 trains only where there is one; the committed run is the CPU one)
ENVIRONMENT = {"DEPTHBENCH_NOTEBOOK_TINY": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip


def execute(path: Path = NOTEBOOK, out_dir: Path | None = None, timeout: int = 600) -> Any:
    """The notebook at ``path`` executed at its tiny size, its runs written under ``out_dir``
    (a new temporary folder if None), each cell's outputs masked (``mask``)."""
    import nbclient
    import nbformat

    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="lesson_notebook_"))
    saved = {k: os.environ.get(k) for k in [*ENVIRONMENT, "DEPTHBENCH_NOTEBOOK_OUT"]}
    os.environ.update(ENVIRONMENT, DEPTHBENCH_NOTEBOOK_OUT=str(out_dir))  # the kernel inherits
    try:
        nb = nbformat.read(path, as_version=4)
        where = {"metadata": {"path": str(out_dir)}}  # the kernel's working folder
        # startup_timeout: nbclient's default of 60 s is not enough for a kernel to start on a
        # 2-core machine busy with other work (seen: "Kernel didn't respond in 60 seconds")
        client = nbclient.NotebookClient(
            nb, timeout=timeout, startup_timeout=timeout, kernel_name="python3", resources=where
        )
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            mask(output, out_dir)
    return nb


def mask(output: dict, out_dir: Path) -> None:
    """Replace the run folder's path in one output's text by ``RUNS`` (in place)."""
    for container, key in [(output, "text"), *((output.get("data", {}), k) for k in
                                               ("text/plain", "text/html"))]:  # fmt: skip
        if isinstance(container.get(key), str):
            container[key] = container[key].replace(str(out_dir), RUNS)


def texts(nb: Any) -> list[str]:
    """Each code cell's text outputs, joined: streams, plain-text values, errors. Consecutive
    chunks of one stream are one text: the kernel cuts a stream wherever its flush timer falls."""
    cells = []
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        parts: list[str] = []
        last_stream = None
        for output in cell.outputs:
            stream = output.name if output.output_type == "stream" else None
            if stream is not None and stream == last_stream:
                parts[-1] += output.text
            elif stream is not None:
                parts.append(f"[{output.name}] {output.text}")
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
            elif output.output_type == "error":
                parts.append(f"[error] {output.ename}: {output.evalue}")
            last_stream = stream
        cells.append("\n".join(parts))
    return cells


# a number in printed text; two outputs agree when their text around the numbers is the same and
# each pair of numbers is within NUMBER_TOLERANCE (relative or absolute): one thread gives one
# summation order, but another CPU's vector kernels may still round the last digits differently
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
NUMBER_TOLERANCE = 0.01


def _same(old: str, new: str) -> bool:
    """Whether two output texts say the same, numbers compared within ``NUMBER_TOLERANCE``."""
    if NUMBER.sub("#", old) != NUMBER.sub("#", new):
        return False
    pairs = zip(NUMBER.findall(old), NUMBER.findall(new), strict=True)
    return all(
        math.isclose(float(a), float(b), rel_tol=NUMBER_TOLERANCE, abs_tol=NUMBER_TOLERANCE)
        for a, b in pairs
    )


def differences(committed: Any, executed: Any) -> list[str]:
    """A unified diff per code cell whose text outputs differ (empty: the outputs are current)."""
    diffs = []
    for i, (old, new) in enumerate(zip(texts(committed), texts(executed), strict=True)):
        if not _same(old, new):
            lines = difflib.unified_diff(old.splitlines(), new.splitlines(), "committed",
                                         "executed", lineterm="")  # fmt: skip
            diffs.append(f"code cell {i}:\n" + "\n".join(lines))
    return diffs


def strip_timing(nb: Any) -> None:
    """Drop nbclient's per-cell timestamps: they change on every run and say nothing."""
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)


def main(argv: list[str] | None = None) -> int:
    """Write the notebook's outputs in place, or with ``--check`` compare them; exit status."""
    import nbformat

    parser = argparse.ArgumentParser(prog="python notebooks/outputs.py", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    args = parser.parse_args(argv)
    executed = execute(args.notebook)
    if args.check:
        diffs = differences(nbformat.read(args.notebook, as_version=4), executed)
        print("\n".join(diffs) or f"{args.notebook}: the committed outputs are current")
        return 1 if diffs else 0
    strip_timing(executed)
    nbformat.write(executed, args.notebook)
    size = args.notebook.stat().st_size
    print(f"wrote {args.notebook} with the outputs of one tiny run ({size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
