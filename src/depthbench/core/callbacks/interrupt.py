"""``GracefulInterrupt``: SIGINT and SIGTERM stop training at a step boundary with a resumable
``last.ckpt``.

Lightning already stops cleanly on SIGTERM: its handler sets ``trainer.received_sigterm`` and
the training loop raises ``SIGTERMException`` once the current step (its logging and any
validation it triggers) is done, then calls every callback's ``on_exception``. Ctrl+C, by
default, raises ``KeyboardInterrupt`` wherever the code is (mid-backward, say) and Lightning
exits with code 1. This callback makes the two the same:

* from ``on_train_start`` (Lightning's handlers are installed by then) SIGINT is routed to the
  SIGTERM handler, so Ctrl+C also stops at the next step boundary; a second Ctrl+C stops at
  once (``KeyboardInterrupt``);
* at ``on_exception`` with ``SIGTERMException`` it writes ``last.ckpt`` (temp file + rename)
  with the state after the finished step, which Lightning resumes as a checkpoint saved at that
  boundary. A signal during validation keeps the previous ``last.ckpt`` (its epoch's validation
  did not finish); the resume redoes the steps after it, exactly;
* the signal is put on the exception (``signum``) so ``run.train`` records ``"status":
  "interrupted"`` and the process exits 128 + signal (130 for SIGINT, 143 for SIGTERM).

Under SLURM, Lightning's auto-requeue (``SLURMEnvironment``, detected from the job's
environment; requeue signal SIGUSR1, which ``conf/hydra/launcher/submitit_slurm.yaml`` asks
SLURM to send) saves an HPC checkpoint and requeues the job; the SIGTERM that SLURM sends next
ends the run here with a ``last.ckpt`` from a step boundary (resume with ``ckpt_path=auto``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from depthbench.core.callbacks.checkpointing import LastCheckpoint
from depthbench.core.callbacks.reliability import nonfinite_parameters
from depthbench.core.run_folder.layout import last_checkpoint

log = logging.getLogger("depthbench")


def last_checkpoint_path(trainer: L.Trainer) -> str:
    """Where ``ckpt_path=auto`` looks: the ``LastCheckpoint`` callback's file, else the checkpoint
    folder's ``last.ckpt``, else ``<default_root_dir>/checkpoints/last.ckpt``."""
    for cb in trainer.callbacks:
        if isinstance(cb, LastCheckpoint):
            return str(cb.path)
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return os.path.join(cb.dirpath, cb.CHECKPOINT_NAME_LAST + cb.FILE_EXTENSION)
    return str(last_checkpoint(trainer.default_root_dir))


class GracefulInterrupt(L.Callback):
    """Stop at the next step boundary on SIGINT/SIGTERM, writing a resumable ``last.ckpt``."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received, None while running

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only
        lightning_sigterm = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.signum is None:
                self.signum = signum
            if callable(lightning_sigterm):
                lightning_sigterm(signum, frame)

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            if self.signum is not None:
                raise KeyboardInterrupt  # asked twice: stop now
            self.signum = signum
            log.warning("SIGINT: stopping after this step (Ctrl+C again stops at once)")
            on_sigterm(signal.SIGTERM, frame)

        # Lightning puts its own handlers back when the fit ends (Trainer._teardown)
        signal.signal(signal.SIGTERM, on_sigterm)
        signal.signal(signal.SIGINT, on_sigint)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        signum = self.signum or signal.SIGTERM  # another rank's SIGTERM arrives as a broadcast
        exception.signum = int(signum)  # type: ignore[attr-defined]
        name = signal.Signals(signum).name
        if not trainer.training or trainer.sanity_checking:
            log.warning("%s during validation at step %d: last.ckpt is the previous one",
                        name, trainer.global_step)  # fmt: skip
            return
        if nonfinite_parameters(pl_module):
            log.warning("%s at step %d: weights are not finite, last.ckpt is the previous one",
                        name, trainer.global_step)  # fmt: skip
            return
        path = last_checkpoint_path(trainer)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        trainer.save_checkpoint(path, weights_only=False)  # atomic: AtomicCheckpointIO writes it
        log.warning("%s: stopped at step %d, saved %s", name, trainer.global_step, path)


def interrupt_signal(error: BaseException) -> int | None:
    """The signal that interrupted a fit (SIGINT/SIGTERM), or None when no signal did."""
    signum = getattr(error, "signum", None)
    if signum is not None:
        return int(signum)
    # Lightning turns a KeyboardInterrupt (Ctrl+C before training started) into sys.exit(1)
    if isinstance(error, KeyboardInterrupt) or isinstance(error.__context__, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None
