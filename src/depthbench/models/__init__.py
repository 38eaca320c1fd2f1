"""Plain ``nn.Module`` networks (no Lightning here), one file per family, plus a registry.

Every classifier takes ``input_shape`` and ``num_classes`` keyword arguments and is a
``contract.ClassifierNet``: ``forward_features(x)``, ``forward_head(features, pre_logits=False)``,
``num_features``, ``head`` and ``reset_classifier(num_classes)`` (0: no head, the net returns its
features). ``tests/test_model_contract.py`` checks it for every name registered here.
"""

# importing each family registers its names (``@register_model`` beside each class or builder)
from depthbench.models.deep import DeepCNN, DeepMLP
from depthbench.models.efficientnet_lite import EfficientNetLite0
from depthbench.models.finetune import FineTuner
from depthbench.models.registry import create_model, list_models, register_model
from depthbench.models.resnet_cifar import CifarResNet
from depthbench.models.resnet_imagenet import TorchvisionResNet
from depthbench.models.transformer import TransformerClassifier

__all__ = [
    "CifarResNet",
    "DeepCNN",
    "DeepMLP",
    "EfficientNetLite0",
    "FineTuner",
    "TorchvisionResNet",
    "TransformerClassifier",
    "create_model",
    "list_models",
    "register_model",
]
