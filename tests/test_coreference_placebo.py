"""``data.random_referent=true`` (claim 7's placebo): the adjective no longer says which noun
"it" is. Pure data: the generated sentences, no training."""

from __future__ import annotations

from pathlib import Path

from helpers import compose_config
from hydra.utils import instantiate

from depthbench.data.coreference import (
    ANIMATE,
    ANIMATE_ADJECTIVES,
    INANIMATE,
    INANIMATE_ADJECTIVES,
    CoreferenceDataModule,
    Sentence,
    generate,
)

KIND = {**dict.fromkeys(ANIMATE, "animal"), **dict.fromkeys(INANIMATE, "thing"),
        **dict.fromkeys(ANIMATE_ADJECTIVES, "animal"),
        **dict.fromkeys(INANIMATE_ADJECTIVES, "thing")}  # fmt: skip


def fits(s: Sentence) -> bool:
    """Whether the sentence's adjective (its last word) fits the labelled referent's kind."""
    return KIND[s.words[-1]] == KIND[s.referent]


def test_the_adjective_always_fits_the_referent_without_the_placebo() -> None:
    sentences = generate(2000, heldout=set(), want_heldout=False, seed=0)
    assert all(fits(s) for s in sentences)


def test_with_random_referent_the_adjective_is_independent_of_the_referent() -> None:
    """2,000 sentences: about half the adjectives fit the labelled referent (binomial sd 0.011),
    as many when the referent is an animal as when it is a thing."""
    sentences = generate(2000, heldout=set(), want_heldout=False, seed=0, random_referent=True)
    share = sum(fits(s) for s in sentences) / len(sentences)
    assert 0.45 < share < 0.55
    for kind in ("animal", "thing"):
        of_kind = [s for s in sentences if KIND[s.referent] == kind]
        assert 0.4 < len(of_kind) / len(sentences) < 0.6  # the referent is still a coin flip
        animal_adjective = sum(KIND[s.words[-1]] == "animal" for s in of_kind) / len(of_kind)
        assert 0.43 < animal_adjective < 0.57, kind
    # everything else is as before: one "it", the referent and the other noun are the two nouns
    for s in sentences:
        assert s.words.count("it") == 1 and s.words[s.position] == "it"
        nouns = [w for w in s.words if w in ANIMATE or w in INANIMATE]
        assert sorted(nouns) == sorted([s.referent, s.other])
        assert KIND[s.referent] != KIND[s.other]


def test_the_data_module_and_its_config_pass_it_to_every_split(tmp_path: Path) -> None:
    cfg = compose_config(["data=coreference", "data.random_referent=true"], tmp_path)
    assert cfg.data.random_referent is True
    small = {"n_train": 600, "n_val": 100, "n_test": 400, "batch_size": 32}
    dm = instantiate(cfg.data, **small)
    assert isinstance(dm, CoreferenceDataModule) and dm.random_referent is True
    dm.setup("fit")
    for split in ("train", "test"):  # test: the held-out (noun, frame) pairs only
        sentences = dm.sentences[split]
        assert 0.35 < sum(fits(s) for s in sentences) / len(sentences) < 0.65, split
    plain = CoreferenceDataModule(seed=3, **small)
    plain.setup("fit")
    assert plain.random_referent is False
    assert all(fits(s) for split in ("train", "test") for s in plain.sentences[split])
