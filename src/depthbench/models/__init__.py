"""Plain ``nn.Module`` networks (no Lightning here), one file per family, plus a registry.

Every classifier takes ``input_shape`` and ``num_classes`` keyword arguments and honours one
contract: ``forward_features(x)``, ``forward_head(features)``, ``num_features``, ``head``
and ``reset_classifier(num_classes)``.
"""

from depthbench.models.deep import DeepCNN, DeepMLP
from depthbench.models.registry import create_model, list_models, register_model

register_model("mlp")(DeepMLP)
register_model("cnn")(DeepCNN)

__all__ = ["DeepCNN", "DeepMLP", "create_model", "list_models", "register_model"]
