"""The classifier contract every depthbench network honours (after timm's models).

Subclasses build ``num_features``, a ``dropout`` module and a Linear ``head``, and implement
``forward_features``; this base supplies the rest, so a new family cannot get it subtly wrong:

- ``forward(x) = forward_head(forward_features(x))``;
- ``forward_head(features, pre_logits=True)`` returns the features the head would read;
- ``reset_classifier(num_classes)`` puts a fresh head for ``num_classes`` classes, and
  ``reset_classifier(0)`` an ``nn.Identity``: the net then returns its (B, num_features)
  features, a feature extractor for a fine-tuner or a linear probe with no wrapper.
"""

from __future__ import annotations

import torch
from torch import nn

from depthbench.errors import ConfigError


class ClassifierNet(nn.Module):
    """``forward = forward_head(forward_features(x))``; ``reset_classifier`` swaps the head."""

    num_features: int  # width of forward_features' output, the head's input
    head: nn.Module  # nn.Linear(num_features, num_classes), or nn.Identity after reset(0)
    dropout: nn.Module  # applied to the features before the head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, num_features)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, num_features) -> (B, num_classes); with ``pre_logits`` the head's input instead."""
        features = self.dropout(features)
        return features if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The head (the last layer)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head for ``num_classes`` classes; 0: no head (the net returns its features)."""
        self.head = new_head(self.num_features, num_classes)


def new_head(num_features: int, num_classes: int) -> nn.Module:
    """``nn.Linear(num_features, num_classes)``, or ``nn.Identity()`` for ``num_classes=0``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ConfigError(f"num_classes must be an integer >= 0, got {num_classes!r}")
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()
