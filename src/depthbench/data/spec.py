"""The *data spec*: what a network needs from its data, as plain ints, floats and lists.

It holds the input shape of one example, the number of classes and their names, the
normalisation statistics and any extra model arguments (e.g. ``vocab_size`` of a text dataset).
``build.build_net`` builds a net from a model config and a spec; the same spec is stored in every
checkpoint (``callbacks.run_config``), so a net is rebuilt without its data.
"""

from __future__ import annotations

from typing import Any


def class_names(datamodule: Any) -> list[str]:
    """The names of a (set-up) data module's classes, index = label; ``"0"``, ``"1"``, ... for
    data without names (digits, MNIST)."""
    names = [str(c) for c in getattr(datamodule, "classes", None) or ()]
    n = int(datamodule.num_classes)
    return names if len(names) == n else [str(i) for i in range(n)]


def data_spec(datamodule: Any) -> dict[str, Any]:
    """What a net needs from its (set-up) data, as plain ints, floats and lists.

    ``mean``/``std`` are the statistics the inputs were normalised with ([0.0]/[1.0] when the
    data is not normalised), so a net can recover raw inputs (the fine-tuner does).
    """
    normalized = getattr(datamodule, "normalize", False)
    extra = datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}
    return {
        "input_shape": [int(s) for s in datamodule.input_shape],
        "num_classes": int(datamodule.num_classes),
        "classes": class_names(datamodule),
        "mean": [float(m) for m in datamodule.mean.flatten()] if normalized else [0.0],
        "std": [float(s) for s in datamodule.std.flatten()] if normalized else [1.0],
        "model_kwargs": dict(extra),
    }
