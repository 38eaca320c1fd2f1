"""Plain ``nn.Module`` networks (no Lightning here), one file per family, plus a registry.

Every classifier takes ``input_shape`` and ``num_classes`` keyword arguments and is a
``contract.ClassifierNet``: ``forward_features(x)``, ``forward_head(features, pre_logits=False)``,
``num_features``, ``head`` and ``reset_classifier(num_classes)`` (0: no head, the net returns its
features). ``tests/test_model_contract.py`` checks it for every name registered here.
"""

from depthbench.models import resnet_cifar
from depthbench.models.deep import DeepCNN, DeepMLP
from depthbench.models.efficientnet_lite import EfficientNetLite0
from depthbench.models.finetune import FineTuner
from depthbench.models.registry import create_model, list_models, register_model
from depthbench.models.resnet_cifar import PAPER_DEPTHS, CifarResNet
from depthbench.models.resnet_imagenet import TorchvisionResNet
from depthbench.models.transformer import TransformerClassifier

register_model("mlp")(DeepMLP)
register_model("cnn")(DeepCNN)
# CIFAR ResNets (the paper's depths by name), torchvision ResNets, transformer, fine-tuner
register_model("resnet")(CifarResNet)
for _depth in PAPER_DEPTHS:
    register_model(f"resnet{_depth}")(getattr(resnet_cifar, f"resnet{_depth}"))
register_model("resnet_imagenet")(TorchvisionResNet)
register_model("transformer")(TransformerClassifier)
register_model("efficientnet_lite0")(EfficientNetLite0)
register_model("finetune")(FineTuner)

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
