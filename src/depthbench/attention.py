"""Read a trained transformer's attention from one word: ``depthbench attention``.

    depthbench attention CKPT "the cat sat on the mat because it was tired" --word it

loads a checkpoint of a transformer trained on text (``data=coreference`` or ``data=text_csv``),
prints the attention from ``--word`` to every word of the sentence, per layer and averaged over
heads (each row sums to 1), in the lesson's format ("it" -> cat 0.82, mat 0.11, sat 0.07), and
writes a heat map. The vocabulary comes from the checkpoint (the text data module's
``state_dict``); words outside it are read as ``<unk>`` and named in a warning.

``ReferentAttention`` is the measuring side: a callback that, over the whole test split of
``coreference``, averages the attention from "it" to the noun it refers to, to the other noun
and to the rest, and writes ``attention_summary.json`` into the run folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from depthbench.checkpoint import CONFIG_KEY, load_checkpoint, load_net
from depthbench.data.text import UNK, Vocabulary, encode_batch, tokenize, unpack
from depthbench.errors import CheckpointError, ConfigError, DepthbenchError

log = logging.getLogger("depthbench")
LESSON_SENTENCE = "the cat sat on the mat because it was tired"
LESSON_SCORES = {"cat": 0.82, "mat": 0.11, "sat": 0.07}  # the lesson's illustration, not measured


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


def text_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The text data module's saved state (``vocab``, ``classes``, ``max_len``)."""
    for value in checkpoint.values():
        if isinstance(value, dict) and {"vocab", "classes", "max_len"} <= value.keys():
            return value
    data = checkpoint.get(CONFIG_KEY, {}).get("data", {}).get("_target_", "?")
    raise CheckpointError(
        f"the checkpoint has no vocabulary (its data: {data}); `depthbench attention` needs a "
        "transformer trained on text, e.g. experiment=attention_it"
    )


def load_text_model(path: str | Path) -> TextModel:
    """Rebuild the network of a text checkpoint from its own config and load its weights."""
    checkpoint = load_checkpoint(path)
    state = text_state(checkpoint)
    config = checkpoint[CONFIG_KEY]
    vocab, max_len, classes = Vocabulary(state["vocab"]), int(state["max_len"]), state["classes"]
    model_cfg = OmegaConf.create(config["model"])
    if not hasattr(instantiate(model_cfg, _partial_=True).func, "forward_attention"):
        raise CheckpointError(f"{path}: model {model_cfg.get('_target_')} has no attention to read")
    net, _ = load_net(checkpoint)
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


def _labels(words: Sequence[str], unknown: Sequence[str] = ()) -> list[str]:
    """Words as column labels: a repeated word gets its position ("the@4"), a word outside the
    vocabulary a star ("zebra*": the model read ``<unk>``)."""
    repeated = {w for w in words if words.count(w) > 1}
    labels = [f"{w}@{i}" if w in repeated else w for i, w in enumerate(words)]
    return [f"{x}*" if w in unknown else x for x, w in zip(labels, words)]


def format_attention(result: WordAttention, top: int = 3) -> str:
    """A table (layers x words) and, per layer, the lesson's one-line format."""
    labels = _labels(result.words, result.unknown)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _labels(result.words, result.unknown)
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


def main(argv: list[str] | None = None) -> None:
    """``depthbench attention CKPT SENTENCE [--word it] [--out attention.png]``."""
    parser = argparse.ArgumentParser(
        prog="depthbench attention",
        description="Attention from one word of a sentence to every other, per layer, read from "
        "a transformer checkpoint trained on text (e.g. experiment=attention_it).",
    )
    parser.add_argument("checkpoint", help="a .ckpt file or a run folder")
    parser.add_argument("sentence", help='e.g. "the cat sat on the mat because it was tired"')
    parser.add_argument(
        "--word", default="it", help="the word whose attention to read (default: it)"
    )
    parser.add_argument(
        "--occurrence", type=int, default=1, help="which appearance of --word (1 = first)"
    )
    parser.add_argument(
        "--out", default="attention.png", help="heat-map PNG (default: attention.png)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        ckpt = Path(args.checkpoint)
        if ckpt.is_dir():
            found = sorted(ckpt.glob("**/last.ckpt")) or sorted(ckpt.glob("**/*.ckpt"))
            if not found:
                raise CheckpointError(f"no .ckpt file under {ckpt}")
            ckpt = found[0]
        model = load_text_model(ckpt)
        result = read_sentence(model, args.sentence, args.word, args.occurrence)
    except DepthbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if result.unknown:
        print(
            f"warning: not in the vocabulary, read as {UNK} (* below): {', '.join(result.unknown)}",
            file=sys.stderr,
        )
    n_heads = (
        getattr(model.net.blocks[0].attn, "heads", "?") if hasattr(model.net, "blocks") else "?"
    )
    print(
        f'"{" ".join(result.words)}"  ({ckpt}; {len(result.rows)} layers x {n_heads} heads, '
        "mean over heads, rows sum to 1)"
    )
    print(format_attention(result))
    print(f"heat map: {plot_attention(result, args.out)}")


# ---- the measurement over a test set ------------------------------------------------------
class ReferentAttention(L.Callback):
    """Over the test split of ``coreference``: mean attention from "it" to its referent, to the
    other noun and to the rest, per layer (mean over heads), plus where the rest goes by word
    role; written to ``<dirpath>/attention_summary.json`` at the end of testing.

    The referent's position is where the sentence holds the label's noun (labels name nouns);
    the other noun is the sentence's other word from ``datamodule.classes``.
    """

    def __init__(
        self, dirpath: str | Path, sentences: Sequence[str] = (LESSON_SENTENCE,), word: str = "it"
    ) -> None:
        self.dirpath, self.sentences, self.word = Path(dirpath), list(sentences), word
        self._sums: dict[str, torch.Tensor] = {}  # role -> (layers,) summed attention
        self._by_word: dict[int, float] = {}  # word id -> summed last-layer attention
        self._count = 0

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not hasattr(trainer.datamodule, "vocab") or not hasattr(
            pl_module.net, "forward_attention"
        ):
            raise ConfigError("ReferentAttention needs a transformer on data=coreference")
        self._sums, self._by_word, self._count = {}, {}, 0

    def _roles(
        self, dm: Any, tokens: torch.Tensor, y: torch.Tensor, position: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(B, T) masks: referent, other noun, adjective (last word), "it" itself, rest."""
        ids = torch.tensor([dm.vocab.index.get(c, -1) for c in dm.classes], device=tokens.device)
        referent = tokens == ids[y].unsqueeze(1)
        noun = torch.isin(tokens, ids[ids >= 0])
        length = (tokens != 0).sum(dim=1)
        index = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        adjective = index == (length - 1).unsqueeze(1)
        itself = index == position.unsqueeze(1)
        masks = {
            "referent": referent,
            "other_noun": noun & ~referent,
            "adjective": adjective,
            "itself": itself,
        }
        taken = torch.stack(list(masks.values())).any(dim=0)
        masks["rest"] = ~taken & (tokens != 0)
        return masks

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x, y = batch[0], batch[1]
        dm = trainer.datamodule
        rows = attention_from(pl_module.net, x, x["position"])  # (layers, B, T)
        for role, mask in self._roles(dm, x["tokens"], y, x["position"]).items():
            mass = (rows * mask.unsqueeze(0)).sum(dim=-1).sum(dim=-1).cpu()  # (layers,)
            self._sums[role] = self._sums.get(role, 0) + mass
        last = rows[-1]  # (B, T): where the last layer's attention goes, by word
        for w, mass in zip(x["tokens"].flatten().tolist(), last.flatten().tolist()):
            if w:
                self._by_word[w] = self._by_word.get(w, 0.0) + mass
        self._count += len(y)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._count or not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        per_layer = {
            role: [round(float(v) / self._count, 4) for v in s] for role, s in self._sums.items()
        }
        # "rest_total": everything but the two nouns (adjective + "it" itself + other words)
        per_layer["rest_total"] = [
            round(1.0 - r - o, 4) for r, o in zip(per_layer["referent"], per_layer["other_noun"])
        ]
        top = sorted(self._by_word.items(), key=lambda kv: -kv[1])[:10]
        summary: dict[str, Any] = {
            "examples": self._count,
            "word": self.word,
            "mean_attention_per_layer": per_layer,  # layer 1 .. last, mean over heads and examples
            "last_layer": {role: values[-1] for role, values in per_layer.items()},
            "last_layer_top_words": {dm.vocab.words[w]: round(m / self._count, 4) for w, m in top},
            "sentences": {},
        }
        model = TextModel(pl_module.net, dm.vocab, dm.max_len, list(dm.classes), {})
        training = pl_module.net.training
        pl_module.net.eval()
        for sentence in self.sentences:
            try:
                result = read_sentence(model, sentence, self.word)
            except ConfigError as e:
                summary["sentences"][sentence] = {"error": str(e)}
                continue
            labels = _labels(result.words)
            summary["sentences"][sentence] = {
                "prediction": result.prediction,
                "probability": round(result.probability, 4),
                "layers": [
                    dict(zip(labels, (round(float(v), 4) for v in row))) for row in result.rows
                ],
            }
            plot_attention(result, self.dirpath / f"attention_{'_'.join(result.words[:4])}.png")
        pl_module.net.train(training)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        (self.dirpath / "attention_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        last = summary["last_layer"]
        log.info(
            'attention from "%s", last layer, test mean: referent %.2f, other noun %.2f, rest %.2f',
            self.word,
            last["referent"],
            last["other_noun"],
            last["rest_total"],
        )
