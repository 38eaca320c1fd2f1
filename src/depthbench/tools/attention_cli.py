"""``depthbench attention``: print and draw a trained transformer's attention from one word.

    depthbench attention CKPT "the cat sat on the mat because it was tired" --word it

loads a checkpoint of a transformer trained on text (``data=coreference`` or ``data=text_csv``),
prints the attention from ``--word`` to every word of the sentence, per layer and averaged over
heads (each row sums to 1), in the lesson's format ("it" -> cat 0.82, mat 0.11, sat 0.07), and
writes a heat map. The vocabulary comes from the checkpoint (the text data module's
``state_dict``); words outside it are read as ``<unk>`` and named in a warning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthbench.core import layout
from depthbench.data.text import UNK
from depthbench.errors import CheckpointError, DepthbenchError
from depthbench.tools.attention import (
    format_attention,
    load_text_model,
    plot_attention,
    read_sentence,
)


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
            found = sorted(ckpt.glob(f"**/{layout.LAST_CKPT}")) or sorted(ckpt.glob("**/*.ckpt"))
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
