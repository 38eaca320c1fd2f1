"""Lightning callbacks that are not diagnostics (backbone freezing for the fine-tuner, ...)."""

from depthbench.callbacks.finetune import BackboneFreeze, finetune_callbacks

__all__ = ["BackboneFreeze", "finetune_callbacks"]
