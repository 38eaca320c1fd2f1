"""``data=coreference``: seeded sentences with exactly one referent for "it", held-out pairs,
token batches, and a transformer that trains on them (plus the attention_it experiment)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FAST, compose_config

from depthbench.core import train
from depthbench.data.coreference import (
    ANIMATE,
    ANIMATE_ADJECTIVES,
    INANIMATE,
    INANIMATE_ADJECTIVES,
    CoreferenceDataModule,
)
from depthbench.errors import ConfigError

SMALL = dict(n_train=600, n_val=100, n_test=200, batch_size=32)


@pytest.fixture(scope="module")
def dm() -> CoreferenceDataModule:
    module = CoreferenceDataModule(seed=3, **SMALL)
    module.setup("fit")
    return module


def test_same_seed_same_data_other_seed_other_data(dm: CoreferenceDataModule) -> None:
    again = CoreferenceDataModule(seed=3, **SMALL)
    again.setup("fit")
    other = CoreferenceDataModule(seed=4, **SMALL)
    other.setup("fit")
    for split in ("train", "val", "test"):
        assert torch.equal(dm.splits[split][0], again.splits[split][0])
        assert torch.equal(dm.splits[split][1], again.splits[split][1])
    assert dm.vocab.words == again.vocab.words
    assert not torch.equal(dm.splits["train"][0], other.splits["train"][0])


def test_every_sentence_has_exactly_one_referent(dm: CoreferenceDataModule) -> None:
    kinds = {**dict.fromkeys(ANIMATE, "animate"), **dict.fromkeys(INANIMATE, "inanimate")}
    adjective_kind = {**dict.fromkeys(ANIMATE_ADJECTIVES, "animate"),
                      **dict.fromkeys(INANIMATE_ADJECTIVES, "inanimate")}  # fmt: skip
    for sentences in dm.sentences.values():
        for s in sentences:
            assert s.words.count("it") == 1 and s.words[s.position] == "it"
            nouns = [w for w in s.words if w in kinds]
            assert sorted(kinds[n] for n in nouns) == ["animate", "inanimate"]
            fitting = [n for n in nouns if kinds[n] == adjective_kind[s.words[-1]]]
            assert fitting == [s.referent]
            assert s.other in nouns and s.other != s.referent


def test_heldout_pairs_absent_from_training(dm: CoreferenceDataModule) -> None:
    assert dm.heldout
    nouns = set(dm.classes)

    def pairs(s):
        return {(w, s.frame) for w in s.words if w in nouns}

    for split in ("train", "val"):
        assert all(not pairs(s) & dm.heldout for s in dm.sentences[split])
    assert all(pairs(s) & dm.heldout for s in dm.sentences["test"])
    # every noun is still seen in training, so a test error is generalisation, not a new word
    assert {s.referent for s in dm.sentences["train"]} == nouns


def test_batches_are_token_dicts(dm: CoreferenceDataModule) -> None:
    x, y = next(iter(dm.train_dataloader()))
    assert set(x) == {"tokens", "padding_mask", "position"}
    tokens, mask, position = x["tokens"], x["padding_mask"], x["position"]
    assert tokens.shape == (32, dm.max_len) and tokens.dtype == torch.long
    assert torch.equal(mask, tokens == 0)
    it = dm.vocab.index["it"]
    assert torch.equal(tokens[torch.arange(32), position], torch.full((32,), it))
    # the label names a noun of its own sentence
    referent_ids = torch.tensor([dm.vocab.index[dm.classes[k]] for k in y])
    assert (tokens == referent_ids[:, None]).any(dim=1).all()
    assert dm.model_kwargs() == {"vocab_size": len(dm.vocab), "max_len": 16}
    assert dm.num_classes == len(ANIMATE) + len(INANIMATE)


def test_state_dict_round_trip(dm: CoreferenceDataModule) -> None:
    fresh = CoreferenceDataModule(seed=0, **SMALL)
    fresh.load_state_dict(dm.state_dict())
    assert fresh.vocab.words == dm.vocab.words and fresh.classes == dm.classes


@pytest.mark.parametrize(
    "bad",
    [
        dict(frames=["the {a} and the {i} were {adj}"]),  # no "it"
        dict(animate=["cat"], inanimate=["cat"]),
        dict(heldout_fraction=1.0),
        dict(n_test=0),
    ],
)
def test_bad_config_is_a_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        CoreferenceDataModule(**{**SMALL, **bad})


def test_attention_it_experiment_trains_and_measures(tmp_path) -> None:
    cfg = compose_config(
        ["experiment=attention_it", "data.n_train=400", "data.n_val=64", "data.n_test=128",
         "model.dim=16", "logger=none", "~callbacks.lr_monitor", *FAST[:-1]],
        tmp_path,
    )  # fmt: skip
    assert cfg.model.pool == "token" and cfg.model.depth == 2
    metrics = train(cfg)
    assert metrics["status"] == "ok" and 0.0 <= metrics["test/acc"] <= 1.0
    summary = json.loads((tmp_path / "attention_summary.json").read_text())
    assert summary["examples"] == 128
    last = summary["last_layer"]
    parts = ("referent", "other_noun", "adjective", "itself", "rest")
    assert sum(last[k] for k in parts) == pytest.approx(1.0, abs=1e-3)
    assert last["rest_total"] == pytest.approx(1.0 - last["referent"] - last["other_noun"], 1e-3)
    lesson = summary["sentences"]["the cat sat on the mat because it was tired"]
    for row in lesson["layers"]:
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-3)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
