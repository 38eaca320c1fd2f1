"""Lightning callbacks that steer or record a run; the diagnostic ones are in ``diagnostics/``.

- ``run_config``: ``ConfigInCheckpoint`` (the run config and data spec in every checkpoint) and
  ``LogResolvedConfig`` (the redacted config to every logger), added to every run
- ``reliability``: ``DivergenceGuard`` (stop at a non-finite loss) and ``ExactResume``
- ``finetune``: ``BackboneFreeze`` for a fine-tuner's backbone
- ``timing``: ``StepTimer``, the benchmarks' in-loop step timer
- ``predictions``: ``CollectPredictions``, eval's test-set probabilities and labels
"""

from depthbench.callbacks.finetune import BackboneFreeze, finetune_callbacks

__all__ = ["BackboneFreeze", "finetune_callbacks"]
