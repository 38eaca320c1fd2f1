"""``coreference``: generated sentences in which "it" refers to exactly one of two nouns.

The lesson's example, "the cat sat on the mat because it was tired", as a data set: each
sentence holds one animate noun (cat, dog, ...) and one inanimate noun (mat, box, ...) in a
frame ("the {a} sat on the {i} because it was {adj}", "the {i} was under the {a} because it was
{adj}", ...), and ends with an adjective that fits only one kind of noun (tired, hungry, asleep:
animals; broken, heavy, empty: things). So exactly one noun can be "it".

The label is the referent's *identity* (class k = ``nouns[k]``, animals first), not "first or
second noun". Naming the noun forces the model to copy it from the noun's position into the
pronoun's, so with ``model.pool=token`` (classify from "it") the answer can only come through the
attention row of "it": its weight on the referent is the mechanism, not a side effect. (A
first/second label can be read off the adjective and the word order without looking at the noun.)

Generalisation, not memory: a seeded ``heldout_fraction`` of the (noun, frame) pairs never occur
in training or validation; the test set holds only sentences with at least one such pair.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from depthbench.data.text import TokenDataModule, tokenize
from depthbench.errors import ConfigError

ANIMATE = ("cat", "dog", "bird", "horse", "rabbit", "mouse", "fox", "goat")
INANIMATE = ("mat", "box", "chair", "table", "rug", "bed", "basket", "bucket")
# Adjectives that fit one kind only (by construction of this data set).
ANIMATE_ADJECTIVES = ("tired", "hungry", "asleep", "scared", "thirsty", "sleepy")
INANIMATE_ADJECTIVES = ("soft", "heavy", "broken", "empty", "wooden", "dusty")
# {a}: the animal, {i}: the thing; "it" appears once, then the adjective ({adj}) at the end.
FRAMES = (
    "the {a} sat on the {i} because it was {adj}",
    "the {a} slept on the {i} because it was {adj}",
    "the {a} jumped off the {i} because it was {adj}",
    "the {a} did not like the {i} because it was {adj}",
    "the {a} looked at the {i} since it was {adj}",
    "the {a} pushed the {i} because it was {adj}",
    "when the {a} saw the {i} it was {adj}",
    "the {i} was under the {a} because it was {adj}",
    "the {i} was next to the {a} and it was {adj}",
    "the {i} fell near the {a} because it was {adj}",
    "the {i} belonged to the {a} but it was {adj}",
    "the {i} stood beside the {a} and it looked {adj}",
)
PRONOUN = "it"


@dataclass(frozen=True)
class Sentence:
    """One generated example: its words, the referent and the other noun, where "it" is."""

    words: tuple[str, ...]
    referent: str
    other: str
    frame: int
    position: int  # index of "it" in words


def heldout_pairs(
    nouns: Sequence[str], n_frames: int, fraction: float, seed: int
) -> set[tuple[str, int]]:
    """A seeded ``fraction`` of the (noun, frame) pairs, at most ``n_frames - 1`` per noun (every
    noun keeps a training frame) and at most ``len(nouns) - 2`` per frame."""
    rng = random.Random(seed)
    pairs = [(n, f) for n in nouns for f in range(n_frames)]
    rng.shuffle(pairs)
    want = round(fraction * len(pairs))
    chosen: set[tuple[str, int]] = set()
    per_noun: dict[str, int] = {}
    per_frame: dict[int, int] = {}
    for noun, frame in pairs:
        if len(chosen) == want:
            break
        if per_noun.get(noun, 0) < n_frames - 1 and per_frame.get(frame, 0) < len(nouns) - 2:
            chosen.add((noun, frame))
            per_noun[noun] = per_noun.get(noun, 0) + 1
            per_frame[frame] = per_frame.get(frame, 0) + 1
    return chosen


def make_sentence(
    frame: str, frame_id: int, animal: str, thing: str, referent_is_animal: bool, adjective: str
) -> Sentence:
    """Fill ``frame``; the adjective must fit the referent (the caller picks it from its list)."""
    words = tuple(tokenize(frame.format(a=animal, i=thing, adj=adjective)))
    referent, other = (animal, thing) if referent_is_animal else (thing, animal)
    return Sentence(words, referent, other, frame_id, words.index(PRONOUN))


def generate(
    n: int,
    *,
    heldout: set[tuple[str, int]],
    want_heldout: bool,
    seed: int,
    animate: Sequence[str] = ANIMATE,
    inanimate: Sequence[str] = INANIMATE,
    animate_adjectives: Sequence[str] = ANIMATE_ADJECTIVES,
    inanimate_adjectives: Sequence[str] = INANIMATE_ADJECTIVES,
    frames: Sequence[str] = FRAMES,
    random_referent: bool = False,
) -> list[Sentence]:
    """``n`` seeded sentences, each with a held-out (noun, frame) pair if ``want_heldout``,
    else with none. The referent is an animal or a thing with equal probability.

    ``random_referent``: the adjective is drawn from both lists, independently of which noun is
    labelled the referent, so nothing in the sentence says what "it" refers to (the lesson's
    placebo: the same sentences and nouns, with the cause of resolving "it" removed).
    """
    rng = random.Random(seed)
    out: list[Sentence] = []
    while len(out) < n:
        f = rng.randrange(len(frames))
        animal, thing = rng.choice(animate), rng.choice(inanimate)
        is_heldout = (animal, f) in heldout or (thing, f) in heldout
        if is_heldout != want_heldout:
            continue
        to_animal = rng.random() < 0.5
        fits_animal = rng.random() < 0.5 if random_referent else to_animal
        adjective = rng.choice(animate_adjectives if fits_animal else inanimate_adjectives)
        out.append(make_sentence(frames[f], f, animal, thing, to_animal, adjective))
    return out


class CoreferenceDataModule(TokenDataModule):
    """Generated "it" sentences; label = index of the referent noun in ``animate + inanimate``.

    Batches: ``{"tokens", "padding_mask", "position"}`` with ``position`` the index of "it".
    """

    name = "coreference"

    def __init__(
        self,
        *,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 1000,
        heldout_fraction: float = 0.15,
        animate: Sequence[str] = ANIMATE,
        inanimate: Sequence[str] = INANIMATE,
        animate_adjectives: Sequence[str] = ANIMATE_ADJECTIVES,
        inanimate_adjectives: Sequence[str] = INANIMATE_ADJECTIVES,
        frames: Sequence[str] = FRAMES,
        max_len: int = 16,
        random_referent: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_len=max_len, **kwargs)
        self.random_referent = bool(random_referent)
        for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
        if not 0 < heldout_fraction < 1:
            raise ConfigError(f"data.heldout_fraction must be in (0, 1), got {heldout_fraction!r}")
        self.vocab_words = {
            "animate": list(animate),
            "inanimate": list(inanimate),
            "animate_adjectives": list(animate_adjectives),
            "inanimate_adjectives": list(inanimate_adjectives),
        }
        for key, words in self.vocab_words.items():
            if not words:
                raise ConfigError(f"data.{key} must name at least one word")
        if set(animate) & set(inanimate) or set(animate_adjectives) & set(inanimate_adjectives):
            raise ConfigError("data: a noun or adjective is listed as both animate and inanimate")
        bad = [
            f
            for f in frames
            if not all(k in f for k in ("{a}", "{i}", "{adj}")) or len(f.split(" it ")) != 2
        ]
        if bad or not frames:
            raise ConfigError(
                f"data.frames: each frame needs {{a}}, {{i}}, {{adj}} and one ' it ', got {bad}"
            )
        self.frames = list(frames)
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.heldout_fraction = heldout_fraction
        self.classes = list(animate) + list(inanimate)
        self.heldout: set[tuple[str, int]] = set()
        self.sentences: dict[str, list[Sentence]] = {}

    def generate_splits(self) -> dict[str, list[Sentence]]:
        """The three splits of sentences (deterministic for ``seed``)."""
        self.heldout = heldout_pairs(
            self.classes, len(self.frames), self.heldout_fraction, self.seed
        )
        kinds = dict(
            heldout=self.heldout,
            frames=self.frames,
            random_referent=self.random_referent,
            **self.vocab_words,
        )
        # distinct seeds per split; val is in-distribution (no held-out pair), like train
        return {
            split: generate(n, want_heldout=split == "test", seed=self.seed * 3 + k, **kinds)
            for k, (split, n) in enumerate(self.sizes.items())
        }

    def load_text_splits(self) -> dict[str, tuple[list[list[str]], list[int], list[int]]]:
        self.sentences = self.generate_splits()
        index = {noun: k for k, noun in enumerate(self.classes)}
        return {
            split: (
                [list(s.words) for s in sents],
                [index[s.referent] for s in sents],
                [s.position for s in sents],
            )
            for split, sents in self.sentences.items()
        }
