"""The run folder: checkpoints, ``metrics.json``, history files, redaction, output checks."""
