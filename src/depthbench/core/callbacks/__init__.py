"""Lightning callbacks that steer or record a run; the diagnostic ones are in ``diagnostics/``.

- ``run_config``: ``ConfigInCheckpoint`` (the run config and data spec in every checkpoint) and
  ``LogResolvedConfig`` (the redacted config to every logger), added to every run
- ``checkpointing``: ``AtomicCheckpointIO`` (the Trainer's plugin: atomic, finite-only files)
  and ``LastCheckpoint`` (``last.ckpt`` at every epoch end)
- ``reliability``: ``DivergenceGuard`` (stop at a non-finite loss) and ``ExactResume``
- ``finetune``: ``BackboneFreeze`` for a fine-tuner's backbone
- ``epoch_log``: ``EpochLog`` (a start line, one plain line per epoch, the training-only clock
  behind ``train_samples_per_second``), added to every run
- ``predictions``: ``CollectPredictions``, eval's test-set probabilities and labels
"""

from depthbench.core.callbacks.finetune import BackboneFreeze, finetune_callbacks

__all__ = ["BackboneFreeze", "finetune_callbacks"]
