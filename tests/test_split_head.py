"""The split vocabulary head: frequent tokens' rows dense, the others one low-rank pair
(``compress/vocab.py``, ``SplitHead``), on a tiny random model whose ids 100..119 are special."""

import copy
import json

import pytest
import torch
from test_compress import logits, stepwise_logits

import adaptwin
from adaptwin import AdaPTwinConfig, Calibration, compress_
from adaptwin.compress.vocab import kept_tokens, token_prior
from adaptwin.errors import InvalidInput
from adaptwin.models.modules import FactoredEmbedding, SplitHead

PRIOR = list(range(60, 3, -1))  # a made-up frequency ranking: token 60 first
SPECIAL = 100  # the tiny model's end-of-text id: every id from it on is special


@pytest.fixture
def split_model(tiny_dense):
    model = copy.deepcopy(tiny_dense)
    model.config.eos_token_id = SPECIAL  # ids from 100 on count as special, so a split keeps few rows
    return model


@pytest.fixture(scope="module")
def calib():
    g = torch.Generator().manual_seed(2)
    ids = [torch.tensor([SPECIAL + 1, 70, 71, 72, 73]) for _ in range(4)]  # the user's own words: 70..73
    return Calibration(torch.randn(4, 16, 100, generator=g), ids)


def split(model, rank, keep=10, calibration=None, **kw):
    config = AdaPTwinConfig(scope="decoder", rank_qk=16, rank_vo=16, head=True, rank_head=rank, head_keep=keep, **kw)
    return compress_(model, config, calibration, token_prior=PRIOR)


def test_kept_rows_are_the_prior_and_the_special_tokens():
    kept = kept_tokens(PRIOR, 3, 120, SPECIAL)
    assert kept.tolist() == sorted([60, 59, 58, *range(SPECIAL, 120)])


def test_full_rank_split_head_reproduces_dense_logits_cached_uncached_and_reloaded(split_model, calib, tmp_path):
    feats, ids = torch.randn(2, 16, 100), torch.randint(3, 120, (2, 9))
    ref = logits(split_model, feats, ids)
    report = split(split_model, 64, calibration=calib)
    head = split_model.proj_out
    # the calibration words (70..73) stay factored, so the head's probe on those windows sees its error
    assert isinstance(head, SplitHead) and head.num_kept == 10 + 20
    assert (head.order[70:74] >= head.num_kept).all()
    assert (logits(split_model, feats, ids) - ref).abs().max() <= 1e-4
    assert (stepwise_logits(split_model, feats, ids) - ref).abs().max() <= 1e-4
    assert split_model.config.adaptwin["head_kept"] == head.num_kept and report.modules[-1].ranks == {"head": 64}
    assert report.modules[-1].params_after == 34 * 64 + 64 * (64 + 120 - 34)  # kept rows + the pair
    adaptwin.save(split_model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())["adaptwin"]
    assert meta["format_version"] == adaptwin.FORMAT_VERSION >= 3
    again = adaptwin.load_whisper(tmp_path / "m").model
    assert isinstance(again.proj_out, SplitHead) and torch.equal(again.proj_out.order, head.order)
    assert torch.equal(logits(again, feats, ids), logits(split_model, feats, ids))


def test_kept_rows_stay_exact_at_low_rank_and_lookup_and_logits_share_one_copy(split_model, tiny_dense):
    dense = tiny_dense.proj_out.weight
    split(split_model, 4)
    head, embed = split_model.proj_out, split_model.model.decoder.embed_tokens
    kept = [60, 59, 58, 57, 56, 55, 54, 53, 52, 51, *range(SPECIAL, 120)]
    other = [3, 30, 99]
    weight = head.dense_weight()
    assert torch.equal(weight[kept], dense[kept])
    assert not torch.allclose(weight[other], dense[other])  # rank 4 of 64: the other rows are approximated
    ids = torch.tensor([kept[:3] + other])
    assert torch.allclose(embed(ids)[0], weight[ids[0]], atol=1e-6)  # the lookup reads the same rows
    assert isinstance(embed, FactoredEmbedding) and embed.head is head
    names = sorted(n for n in split_model.state_dict() if "embed_tokens" in n or "proj_out" in n)
    assert names == ["proj_out.kept.weight", "proj_out.order", "proj_out.rest.down.weight", "proj_out.rest.up.weight"]
    embed(ids).sum().backward()  # the lookup trains both parts
    assert head.kept.weight.grad is not None and head.rest.up.weight.grad is not None


def test_a_budget_counts_the_kept_rows(split_model, calib):
    # only the cross-attention queries/keys and the head are selected: they cannot meet the
    # budget without cutting the head, so its options' parameters (kept rows included) count
    config = AdaPTwinConfig(
        scope="decoder", budget=0.1, attention=("cross",), twins=("qk",), head=True, head_keep=10, ffn_rank_step=8
    )
    report = compress_(split_model, config, calib, token_prior=PRIOR)
    removed = report.params_before["decoder"] - report.params_after["decoder"]
    target = 0.1 * report.params_before["decoder"]
    kept = 10 + 20
    assert target <= removed <= target + 8 * (64 + 120 - kept)  # the largest single step: the head's
    head = report.modules[-1]
    assert head.ranks["head"] is not None and isinstance(split_model.proj_out, SplitHead)
    assert head.params_after == kept * 64 + head.ranks["head"] * (64 + 120 - kept)


def test_keeping_rows_needs_a_ranking_and_fewer_rows_than_the_vocabulary(split_model):
    with pytest.raises(InvalidInput, match="token_prior"):
        compress_(split_model, AdaPTwinConfig(scope="decoder", rank_qk=16, head=True, rank_head=8, head_keep=10))
    with pytest.raises(InvalidInput, match="every row"):
        config = AdaPTwinConfig(scope="decoder", rank_qk=16, head=True, rank_head=8, head_keep=500)
        compress_(split_model, config, token_prior=list(range(120)))
    with pytest.raises(InvalidInput, match="head_keep"):
        AdaPTwinConfig(scope="all", budget=0.3, head=True, head_keep=-1)


def test_older_configs_read_back_as_one_low_rank_pair():
    d = AdaPTwinConfig(scope="all", budget=0.3, head=True).to_dict()
    assert d["head_keep"] == 12000
    d.pop("head_keep")
    assert AdaPTwinConfig.from_dict({**d, "format_version": 2}).head_keep == 0


class _Tokenizer:
    """Every character is one token: its code point."""

    def __call__(self, texts, add_special_tokens=False):
        class Out:
            input_ids = [[ord(c) for c in t] for t in texts]

        return Out()


def test_token_prior_ranks_tokens_by_the_words_that_use_them(tmp_path):
    words = tmp_path / "words.tsv"
    words.write_text("ab\t0.5\nb\t0.3\nc\t0.01\n", encoding="utf-8")
    ranked = token_prior(_Tokenizer(), words)
    assert ranked[:3] == [ord(" "), ord("b"), ord("a")]  # a space opens most words; b is in two of them
    assert ranked.index(ord("c")) > ranked.index(ord("a")) and ord("z") not in ranked


def test_the_shipped_word_list_holds_at_least_head_keep_words():
    from adaptwin.compress.vocab import WORDS

    lines = WORDS.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= AdaPTwinConfig.head_keep and all(len(line.split("\t")) == 2 for line in lines[:100])
