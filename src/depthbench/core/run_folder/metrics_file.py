"""The one writer of a run's ``metrics.json``: how the run ended, and what it measured.

Every file holds ``status``, ``output_dir`` and ``code`` (the commit the run ran on and whether
the checkout was dirty: ``depthbench.machine.code_state``), and, where known, ``model``, ``params``,
``epochs`` and ``steps``. The status is one of:

* ``ok``: training (or evaluation) finished with finite losses and weights;
* ``diverged``: the loss or the weights became NaN/inf; the file also holds
  ``diverged_at_step`` (the global step of the first non-finite loss), ``last_finite_loss``
  (a float, or null when no finite loss was seen) and ``error`` (one line);
* ``interrupted``: stopped by Ctrl+C or SIGTERM; ``signal`` names it when known;
* ``failed``: an exception ended the run, or bad input (a ``DepthbenchError``) stopped it before
  training; ``error`` says which (one line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from depthbench.atomic import write_text_atomic
from depthbench.core.run_folder.layout import METRICS_FILE
from depthbench.core.run_folder.redaction import redact
from depthbench.machine import code_state

STATUSES = ("ok", "diverged", "interrupted", "failed")
# the fields a status needs beyond status and output_dir
REQUIRED = {
    "diverged": ("diverged_at_step", "last_finite_loss", "error"),
    "failed": ("error",),
}


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (True outside DDP/SLURM/torchrun): Lightning's
    ``rank_zero_only.rank``, or, before Lightning is imported (a refused command line needs no
    Lightning), the environment variable it reads that rank from."""
    import os

    from lightning_utilities.core.rank_zero import rank_zero_only  # light; Lightning sets .rank

    rank = getattr(rank_zero_only, "rank", None)
    if rank is None:  # as lightning.fabric.utilities.rank_zero._get_rank
        keys = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
        rank = next((int(os.environ[k]) for k in keys if os.environ.get(k) is not None), 0)
    return rank == 0


def write_metrics(out_dir: str | Path, status: str, **fields: Any) -> Path:
    """Write ``<out_dir>/metrics.json`` atomically (``depthbench.atomic``); return its path.

    The file holds ``status``, then ``fields``, then ``output_dir`` (``out_dir`` unless given),
    with secrets redacted. Raises ValueError for a status not in ``STATUSES`` or a missing field
    the status needs. Under DDP only global rank 0 writes (the other ranks return the path): one
    file per run, never two processes renaming over each other.
    """
    if status not in STATUSES:
        raise ValueError(f"metrics status must be one of {', '.join(STATUSES)}; got {status!r}")
    missing = [k for k in REQUIRED.get(status, ()) if k not in fields]
    if missing:
        raise ValueError(f"a {status!r} metrics.json needs {', '.join(missing)}")
    if status == "diverged" and not isinstance(fields["diverged_at_step"], int):
        raise ValueError(f"diverged_at_step must be an int, got {fields['diverged_at_step']!r}")
    out_dir = Path(out_dir)
    payload = {"status": status, **fields, "output_dir": str(fields.get("output_dir", out_dir))}
    payload.setdefault("code", code_state())  # the commit the run ran on, and if it was dirty
    payload = redact(payload)  # an error line may quote a secret-named override
    path = out_dir / METRICS_FILE
    if not is_rank_zero():
        return path
    # a reader sees the old file or the new one, never half of one
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
