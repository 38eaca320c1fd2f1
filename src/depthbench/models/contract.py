"""The classifier contract every depthbench network honours (after timm's models).

Subclasses build ``num_features``, a ``dropout`` module and a Linear ``head``, and implement
``forward_features``; this base supplies the rest, so a new family cannot get it subtly wrong.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassifierNet(nn.Module):
    """``forward = forward_head(forward_features(x))``; ``reset_classifier`` swaps the head."""

    num_features: int
    head: nn.Linear
    dropout: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, num_features)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features) -> (B, num_classes)."""
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a fresh one for ``num_classes`` classes."""
        self.head = nn.Linear(self.num_features, num_classes)
