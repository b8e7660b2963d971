"""FLOP counts of the exported graphs (adaptwin.models.cost): a dense tiny model matches the
formula written out by hand; compression lowers exactly the stages it touches."""

import copy

from adaptwin import AdaPTwinConfig, compress_
from adaptwin.models.cost import stage_flops


def test_dense_counts_match_the_formula(tiny_dense):
    cfg = tiny_dense.config  # D 64, 2+2 layers, 4 heads, FFN 128, 16 mels, 50 positions, vocab 120
    d, f, h, v, mels = cfg.d_model, cfg.encoder_ffn_dim, cfg.encoder_attention_heads, cfg.vocab_size, cfg.num_mel_bins
    frames, s = 100, 50
    layer = 2 * s * (4 * d * d + 2 * d * f) + 2 * h * s * s * (2 * d // h)
    encoder = 2 * frames * mels * d * 3 + 2 * s * d * d * 3 + 2 * layer + 2 * (2 * s * 2 * d * d)
    past = 7

    def token(p):  # self q/k/v/out, cross q/out, FFN; self scores over p + 1 keys, cross over s
        return 2 * (6 * d * d + 2 * d * f) + 2 * h * (p + 1) * (2 * d // h) + 2 * h * s * (2 * d // h)

    got = stage_flops(tiny_dense, prompt=3, past=past)
    assert got.encoder == encoder
    assert got.logits == 2 * d * v
    assert got.step == 2 * token(past)
    assert got.prefill == sum(2 * token(t) + 2 * d * v for t in range(3))
    assert stage_flops(tiny_dense, frames=40).encoder < encoder  # a shorter context costs less


def test_compression_lowers_the_stages_it_touches(tiny_dense):
    dense = stage_flops(tiny_dense)
    encoder_only = copy.deepcopy(tiny_dense)
    compress_(encoder_only, AdaPTwinConfig(scope="encoder", rank_qk=4, rank_vo=4))
    e = stage_flops(encoder_only)
    assert e.encoder < dense.encoder and e.step == dense.step and e.logits == dense.logits
    whole = copy.deepcopy(tiny_dense)
    compress_(
        whole,
        AdaPTwinConfig(scope="all", rank_qk=4, rank_vo=4, ffn=True, rank_ffn=16, head=True, rank_head=8, head_keep=0),
    )
    w = stage_flops(whole)
    assert w.step < dense.step and w.logits == 2 * 8 * (120 + 64) < dense.logits


def test_a_split_heads_logits_count_its_kept_rows_and_its_pair(tiny_dense):
    whole = copy.deepcopy(tiny_dense)
    whole.config.eos_token_id = 100  # ids 100.. special: 10 from the prior + 20 special rows kept
    compress_(
        whole,
        AdaPTwinConfig(scope="decoder", rank_qk=4, head=True, rank_head=8, head_keep=10),
        token_prior=list(range(3, 100)),
    )
    assert stage_flops(whole).logits == 2 * (30 * 64 + 8 * (120 - 30) + 8 * 64)
