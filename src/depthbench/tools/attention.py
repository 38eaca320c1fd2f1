"""A trained text transformer's attention from one word to every word of a sentence.

``load_text_model(ckpt)`` rebuilds the transformer of a checkpoint trained on text
(``data=coreference`` or ``data=text_csv``) with its vocabulary; ``read_sentence`` gives the
attention from one word, per layer and averaged over heads (each row sums to 1);
``format_attention`` prints it in the lesson's format ("it" -> cat 0.82, mat 0.11, sat 0.07) and
``plot_attention`` draws the heat map. Used by ``depthbench attention``
(``depthbench.tools.attention_cli``) and by ``diagnostics.referent_attention.ReferentAttention``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from depthbench.core import load_checkpoint, load_net, stored_config
from depthbench.data.text import Vocabulary, encode_batch, tokenize, unpack
from depthbench.errors import CheckpointError, ConfigError
from depthbench.plotting import pyplot

LESSON_SENTENCE = "the cat sat on the mat because it was tired"


# ---- attention of one position ------------------------------------------------------------
def attention_from(
    net: nn.Module, batch: dict[str, torch.Tensor], position: torch.Tensor
) -> torch.Tensor:
    """Head-averaged attention rows of ``position`` in every layer: (layers, B, T).

    ``batch`` holds ``tokens``/``padding_mask`` (and ``position`` for the model). A class token
    (``pool=cls``) is dropped from the keys and rows are re-normalised over the words only, so
    each row sums to 1 over the sentence; with ``pool=token``/``mean`` nothing changes.
    """
    weights = net.forward_attention(**batch)  # depth x (B, heads, T', T')
    offset = 1 if getattr(net, "cls_token", None) is not None else 0
    rows = []
    index = torch.arange(len(position))
    for w in weights:
        row = w.mean(dim=1)[index, position + offset, offset:]  # (B, T)
        rows.append(row / row.sum(dim=-1, keepdim=True))
    return torch.stack(rows)  # (layers, B, T)


# ---- the checkpoint ------------------------------------------------------------------------
@dataclass
class TextModel:
    """A trained text transformer with what reading new sentences needs."""

    net: nn.Module
    vocab: Vocabulary
    max_len: int
    classes: list[str]
    config: dict[str, Any]


def text_state(checkpoint: dict[str, Any], config: Any) -> dict[str, Any]:
    """The text data module's saved state (``vocab``, ``classes``, ``max_len``); ``config`` is
    the run config stored with the checkpoint (``load_net``'s)."""
    for value in checkpoint.values():
        if isinstance(value, dict) and {"vocab", "classes", "max_len"} <= value.keys():
            return value
    data = (config.get("data") or {}).get("_target_", "?")
    raise CheckpointError(
        f"the checkpoint has no vocabulary (its data: {data}); `depthbench attention` needs a "
        "transformer trained on text, e.g. experiment=attention_it"
    )


def load_text_model(path: str | Path) -> TextModel:
    """Rebuild the network of a text checkpoint from its own config and load its weights."""
    checkpoint = load_checkpoint(path)
    config = OmegaConf.to_container(stored_config(checkpoint))
    state = text_state(checkpoint, config)
    net, _ = load_net(checkpoint)
    vocab, max_len, classes = Vocabulary(state["vocab"]), int(state["max_len"]), state["classes"]
    if not hasattr(net, "forward_attention"):
        target = config["model"].get("_target_")
        raise CheckpointError(f"{path}: model {target} has no attention to read")
    return TextModel(net, vocab, max_len, list(classes), config)


# ---- one sentence --------------------------------------------------------------------------
@dataclass
class WordAttention:
    """The attention from ``words[position]`` to every word: ``rows`` (layers, T), summing to 1."""

    words: list[str]
    position: int
    rows: torch.Tensor
    unknown: list[str]
    prediction: str
    probability: float


def read_sentence(model: TextModel, sentence: str, word: str, occurrence: int = 1) -> WordAttention:
    """Attention from ``word`` (its ``occurrence``-th appearance) in ``sentence``, every layer."""
    words = tokenize(sentence)
    if not words:
        raise ConfigError(
            'the sentence is empty; give one, e.g. "the cat sat on the mat because it was tired"'
        )
    if len(words) > model.max_len:
        raise ConfigError(
            f"the sentence has {len(words)} words; this model reads at most {model.max_len}"
        )
    target = word.lower()
    places = [i for i, w in enumerate(words) if w == target]
    if len(places) < occurrence:
        raise ConfigError(
            f"--word {word!r} is not in the sentence"
            + (f" {occurrence} times" if places else "")
            + f"; its words: {' '.join(words)}"
        )
    if target not in model.vocab:
        raise ConfigError(
            f"--word {word!r} is not in the model's vocabulary ({len(model.vocab)} words); "
            "it would be read as <unk>: choose a word the model was trained on"
        )
    unknown = [w for w in dict.fromkeys(words) if w not in model.vocab]
    position = places[occurrence - 1]
    device = next(model.net.parameters()).device
    packed = encode_batch([words], [position], model.vocab, model.max_len).to(device)
    batch = unpack(packed)  # a batch of one sentence
    with torch.no_grad():
        rows = attention_from(model.net, batch, batch["position"]).cpu()  # (layers, 1, T)
        probs = model.net(**batch).softmax(dim=-1)[0].cpu()
    rows = rows[:, 0, : len(words)]  # (layers, words)
    k = int(probs.argmax())
    name = model.classes[k] if k < len(model.classes) else str(k)
    return WordAttention(words, position, rows, unknown, name, float(probs[k]))


def word_labels(words: Sequence[str], unknown: Sequence[str] = ()) -> list[str]:
    """Words as column labels: a repeated word gets its position ("the@4"), a word outside the
    vocabulary a star ("zebra*": the model read ``<unk>``)."""
    repeated = {w for w in words if words.count(w) > 1}
    labels = [f"{w}@{i}" if w in repeated else w for i, w in enumerate(words)]
    return [f"{x}*" if w in unknown else x for x, w in zip(labels, words)]


def format_attention(result: WordAttention, top: int = 3) -> str:
    """A table (layers x words) and, per layer, the lesson's one-line format."""
    labels = word_labels(result.words, result.unknown)
    word = result.words[result.position]
    width = max(6, *(len(x) for x in labels))
    lines = ["layer  " + " ".join(f"{x:>{width}}" for x in labels) + "    sum"]
    for layer, row in enumerate(result.rows, start=1):
        cells = " ".join(f"{float(v):>{width}.2f}" for v in row)
        lines.append(f"{layer:>5}  {cells}  {float(row.sum()):5.2f}")
    lines.append("")
    for layer, row in enumerate(result.rows, start=1):
        order = row.argsort(descending=True)[:top].tolist()
        best = ", ".join(f"{labels[i]} {float(row[i]):.2f}" for i in order)
        last = " (last)" if layer == len(result.rows) else ""
        lines.append(f'layer {layer}{last}: "{word}" -> {best}')
    lines.append(f'prediction from "{word}": {result.prediction} (p = {result.probability:.2f})')
    return "\n".join(lines)


def plot_attention(result: WordAttention, path: str | Path, title: str = "") -> Path:
    """Heat map: one row per layer, one column per word, the attention from the chosen word."""
    plt = pyplot()
    labels = word_labels(result.words, result.unknown)
    rows = result.rows.numpy()
    fig, ax = plt.subplots(figsize=(0.7 * len(labels) + 1.5, 0.55 * len(rows) + 1.4))
    ax.imshow(rows, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            color = "black" if rows[i, j] > 0.5 else "white"
            ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [f"layer {i + 1}" for i in range(len(rows))])
    word = result.words[result.position]
    ax.set_title(title or f'attention from "{word}" (mean over heads)', fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
