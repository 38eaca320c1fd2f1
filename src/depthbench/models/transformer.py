"""A pre-norm Transformer classifier (Vaswani et al. 2017; ViT, Dosovitskiy et al. 2021).

One class, three kinds of input:

* images (C, H, W): non-overlapping ``patch_size`` x ``patch_size`` patches, linearly embedded;
* 1-D signals (L,) or (C, L), e.g. MNIST-1D: patches of ``patch_size`` samples along the length;
* token sequences (``vocab_size`` set): ``forward(tokens, padding_mask=None, position=None)`` with
  tokens (B, T) int64, padding_mask (B, T) bool (True = padding, never attended to), and
  position (B,) int64, the index read out when ``pool="token"``.

Attention is written out (softmax(Q K^T / sqrt(d)) V) rather than calling a fused kernel, so that
``forward_attention`` can return the weights of every layer for a callback or script to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.contract import ClassifierNet
from depthbench.models.layers import check_positive_int
from depthbench.models.registry import register_model

POOLS = ("cls", "mean", "token")


class SelfAttention(nn.Module):
    """Multi-head self-attention that can return its (B, heads, T, T) weights."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, key_padding: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, heads, T, head_dim)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, T, T)
        if key_padding is not None:  # (B, T): True = padding, masked as a key for every query
            # finfo.min rather than -inf: a row whose keys are all padding stays finite (uniform)
            scores = scores.masked_fill(
                key_padding[:, None, None, :], torch.finfo(scores.dtype).min
            )
        weights = scores.softmax(dim=-1)  # (B, heads, T, T), rows sum to 1
        out = self.attn_drop(weights) @ v  # (B, heads, T, head_dim)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.proj(out), weights


class Block(nn.Module):
    """Pre-norm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))`` (Xiong et al. 2020)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, key_padding: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(self.norm1(x), key_padding)
        x = x + self.drop(attended)  # (B, T, D)
        x = x + self.drop(self.mlp(self.norm2(x)))  # (B, T, D)
        return x, weights


@register_model("transformer")
class TransformerClassifier(ClassifierNet):
    """ViT-style classifier for images, 1-D signals or token sequences (see the module doc).

    A ``ClassifierNet`` (``forward_features`` -> (B, dim), ``num_features = dim``) whose inputs
    may be keyword tensors (``tokens``, ``padding_mask``, ``position``); plus
    ``forward_attention``.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pool: str = "cls",
        vocab_size: int | None = None,
        max_len: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("patch_size", patch_size), ("dim", dim), ("depth", depth),
                            ("heads", heads)):  # fmt: skip
            check_positive_int(name, value)
        check_positive_int("num_classes", num_classes, minimum=2)
        if dim % heads:
            raise ConfigError(f"transformer dim ({dim}) must be divisible by heads ({heads})")
        if pool not in POOLS:
            raise ConfigError(f"transformer pool must be one of {', '.join(POOLS)}, got {pool!r}")
        shape = list(input_shape)
        self.pool, self.patch_size, self.vocab_size = pool, patch_size, vocab_size
        if vocab_size is not None:  # tokens (B, T)
            check_positive_int("vocab_size", vocab_size, minimum=2)
            n_tokens = max_len or (int(shape[-1]) if shape else 0)
            if n_tokens < 1:
                raise ConfigError("transformer with vocab_size needs max_len or input_shape [T]")
            self.embed: nn.Module = nn.Embedding(vocab_size, dim)
            self.kind = "tokens"
        elif len(shape) == 3:  # images (B, C, H, W)
            c, h, w = shape
            n_tokens = math.ceil(h / patch_size) * math.ceil(w / patch_size)
            self.embed = nn.Conv2d(c, dim, patch_size, patch_size)
            self.kind = "image"
        elif len(shape) in (1, 2):  # signals (B, L) or (B, C, L)
            c, length = (1, shape[0]) if len(shape) == 1 else shape
            n_tokens = math.ceil(length / patch_size)
            self.embed = nn.Conv1d(c, dim, patch_size, patch_size)
            self.kind = "signal"
        else:
            raise ConfigError(
                f"transformer input_shape must be (L,), (C, L) or (C, H, W), got {shape}"
            )
        self.n_tokens = n_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens + (pool == "cls"), dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)  # as ViT / timm
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.num_features = dim
        self.dropout = nn.Identity()  # as ViT: no dropout between the pooled token and the head
        self.head = nn.Linear(dim, num_classes)

    # ---- embedding -----------------------------------------------------------------------
    def _embed(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Input -> tokens (B, T', D) and key padding (B, T') or None; T' counts the cls token."""
        p = self.patch_size
        if self.kind == "tokens":
            if x.shape[1] > self.n_tokens:
                raise ValueError(f"sequence of {x.shape[1]} tokens > max_len {self.n_tokens}")
            x = self.embed(x)  # (B, T, D)
        elif self.kind == "image":
            x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))  # (B, C, H', W'), H' = k p
            x = self.embed(x).flatten(2).transpose(1, 2)  # (B, H'/p * W'/p, D)
        else:
            x = x.unsqueeze(1) if x.ndim == 2 else x  # (B, C, L)
            x = F.pad(x, (0, -x.shape[-1] % p))
            x = self.embed(x).transpose(1, 2)  # (B, L'/p, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)  # (B, 1 + T, D)
            if padding_mask is not None:
                padding_mask = F.pad(padding_mask, (1, 0), value=False)  # cls is never padding
        x = x + self.pos_embed[:, : x.shape[1]]
        return self.drop(x), padding_mask

    def _inputs(self, x: torch.Tensor | None, tokens: torch.Tensor | None) -> torch.Tensor:
        x = tokens if x is None else x
        if x is None:
            raise ValueError("transformer forward needs x (or tokens)")
        return x

    # ---- contract ------------------------------------------------------------------------
    def forward_features(
        self,
        x: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        position: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Input -> pooled features (B, dim): the cls token, the mean of non-padding tokens, or
        the token at ``position``."""
        h, mask = self._embed(self._inputs(x, tokens), padding_mask)  # (B, T', D)
        for block in self.blocks:
            h, _ = block(h, mask)
        h = self.norm(h)  # (B, T', D)
        if self.pool == "cls":
            return h[:, 0]  # (B, D)
        if self.pool == "token":
            if position is None:
                raise ValueError("pool='token' needs position (B,) in the batch")
            return h[torch.arange(len(h), device=h.device), position.long()]  # (B, D)
        if mask is None:
            return h.mean(dim=1)
        keep = (~mask).unsqueeze(-1).to(h.dtype)  # (B, T', 1)
        return (h * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)  # (B, D)

    def forward(
        self,
        x: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        position: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, padding_mask, position, tokens))

    @torch.no_grad()
    def forward_attention(
        self,
        x: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        position: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Attention weights of every layer: a list of ``depth`` tensors (B, heads, T', T'),
        each row summing to 1 (T' includes the cls token, at index 0, when pool='cls')."""
        h, mask = self._embed(self._inputs(x, tokens), padding_mask)
        weights = []
        for block in self.blocks:
            h, w = block(h, mask)
            weights.append(w)
        return weights
