import pytest
import torch

from adaptwin import AdaPTwinConfig, compress_
from adaptwin.models.modules import LowRankLinear, TwinAttention


def logits(model, feats, ids):
    with torch.no_grad():
        return model(input_features=feats, decoder_input_ids=ids, use_cache=False).logits


def stepwise_logits(model, feats, ids):
    """Decode one token at a time through the KV cache (self- and cross-attention caches)."""
    with torch.no_grad():
        enc = model.get_encoder()(feats)
        out = model(encoder_outputs=enc, decoder_input_ids=ids[:, :1], use_cache=True)
        steps, cache = [out.logits], out.past_key_values
        for t in range(1, ids.shape[1]):
            out = model(encoder_outputs=enc, decoder_input_ids=ids[:, t : t + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
            cache = out.past_key_values
    return torch.cat(steps, dim=1)


@pytest.mark.parametrize("kind", ["encoder_self", "decoder_self", "cross"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_full_rank_reproduces_dense_logits(model, inputs, kind, batch, impl):
    model.config._attn_implementation = impl
    feats, ids = inputs[0][:batch], inputs[1][:batch]
    ref = logits(model, feats, ids)
    ref_cached = stepwise_logits(model, feats, ids)
    compress_(model, AdaPTwinConfig(scope="all", attention=(kind,), rank_qk=16, rank_vo=16))
    assert any(isinstance(m, TwinAttention) for m in model.modules())
    assert (logits(model, feats, ids) - ref).abs().max() <= 1e-4
    assert (stepwise_logits(model, feats, ids) - ref_cached).abs().max() <= 1e-4
    assert (ref_cached - ref).abs().max() <= 1e-4  # the cache itself is consistent


@pytest.mark.parametrize("r_qk,r_vo", [(8, 12), (12, 8)])
def test_unequal_head_widths_sdpa_matches_eager(model, inputs, r_qk, r_vo):
    """q/k and v heads of different widths: SDPA (q/k/v zero-padded to one width for its fused
    kernel) gives the eager result, logits, cached logits and gradients."""
    compress_(model, AdaPTwinConfig(scope="all", rank_qk=r_qk, rank_vo=r_vo))
    widths = {(m.r_qk, m.r_vo) for m in model.modules() if isinstance(m, TwinAttention)}
    assert widths == {(r_qk, r_vo)}
    feats, ids = inputs

    def run(impl):
        model.config._attn_implementation = impl
        model.zero_grad()
        out = model(input_features=feats, decoder_input_ids=ids, use_cache=False).logits
        out.pow(2).mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if "self_attn" in n and p.grad is not None}
        return out.detach(), stepwise_logits(model, feats, ids), grads

    (a, a_cached, ga), (b, b_cached, gb) = run("eager"), run("sdpa")
    assert (a - b).abs().max() <= 1e-4 and (a_cached - b_cached).abs().max() <= 1e-4
    assert ga.keys() == gb.keys() and len(ga) > 0
    for n in ga:
        assert torch.allclose(ga[n], gb[n], atol=1e-5, rtol=1e-3), n


def test_full_rank_ffn_reproduces_dense_logits(model, inputs):
    ref = logits(model, *inputs)
    compress_(model, AdaPTwinConfig(scope="all", ffn=True, rank_ffn=64, rank_qk=16, rank_vo=16))
    assert sum(isinstance(m, LowRankLinear) for m in model.modules()) == 8
    assert (logits(model, *inputs) - ref).abs().max() <= 1e-4


def test_full_rank_head_reproduces_dense_logits_cached_and_uncached(model, inputs, tmp_path):
    import adaptwin

    ref = logits(model, *inputs)
    full = min(model.config.vocab_size, model.config.d_model)
    report = compress_(
        model, AdaPTwinConfig(scope="decoder", rank_qk=16, rank_vo=16, head=True, rank_head=full, head_keep=0)
    )
    assert isinstance(model.proj_out, LowRankLinear) and report.modules[-1].kind == "head"
    assert (logits(model, *inputs) - ref).abs().max() <= 1e-4
    assert (stepwise_logits(model, *inputs) - ref).abs().max() <= 1e-4
    adaptwin.save(model, tmp_path / "m")
    again = adaptwin.load_whisper(tmp_path / "m").model
    assert torch.equal(logits(again, *inputs), logits(model, *inputs))


def test_the_head_factors_serve_lookup_and_logits_stored_once(model, inputs, calibration):
    from adaptwin.models.modules import FactoredEmbedding

    dense_head = model.proj_out.weight.numel()
    report = compress_(
        model,
        AdaPTwinConfig(scope="decoder", rank_qk=16, rank_vo=16, head=True, rank_head=24, head_keep=0),
        calibration,
    )
    embed, head = model.model.decoder.embed_tokens, model.proj_out
    assert isinstance(embed, FactoredEmbedding) and embed.head is head
    names = [n for n in model.state_dict() if "embed_tokens" in n or "proj_out" in n]
    assert sorted(names) == ["proj_out.down.weight", "proj_out.up.weight"]  # one copy, under the head
    assert report.params_before["decoder"] - report.params_after["decoder"] > dense_head - 24 * (120 + 64) - 64 * 16
    embed(inputs[1]).sum().backward()  # the lookup trains the same factors the logits use
    assert head.up.weight.grad is not None and head.down.weight.grad is not None


def test_the_head_needs_the_decoder_side():
    from adaptwin.errors import InvalidInput

    with pytest.raises(InvalidInput, match="decoder"):
        AdaPTwinConfig(scope="encoder", budget=0.3, head=True)
    with pytest.raises(InvalidInput, match="head=True"):
        AdaPTwinConfig(scope="all", rank_qk=8, rank_head=8)


def test_cached_and_uncached_greedy_agree_after_lossy_compression(model, inputs, calibration):
    compress_(model, AdaPTwinConfig(scope="all", budget=0.3, ffn=True, ffn_rank_step=8), calibration)
    feats = inputs[0]
    with torch.no_grad():
        a = model.generate(feats, max_new_tokens=12, do_sample=False, use_cache=True)
        b = model.generate(feats, max_new_tokens=12, do_sample=False, use_cache=False)
    assert torch.equal(a, b)
    ids = inputs[1]
    assert (stepwise_logits(model, feats, ids) - logits(model, feats, ids)).abs().max() <= 1e-4


@pytest.mark.parametrize(
    "scope,ffn,budget",
    [
        ("encoder", False, 0.1),
        ("encoder", True, 0.1),
        ("encoder", True, 0.25),
        ("decoder", True, 0.1),
        ("decoder", True, 0.25),
        ("all", True, 0.1),
        ("all", True, 0.25),
        ("all", False, 0.1),
        ("decoder", "head", 0.25),
        ("all", "head", 0.25),
    ],
)
def test_budget_met_within_one_rank_step(model, calibration, scope, ffn, budget):
    cfg = AdaPTwinConfig(scope=scope, budget=budget, ffn=bool(ffn), head=ffn == "head", head_keep=0, ffn_rank_step=8)
    report = compress_(model, cfg, calibration)
    part = {"encoder": "encoder", "decoder": "decoder", "all": "total"}[scope]
    removed = report.params_before[part] - report.params_after[part]
    target = budget * report.params_before[part]
    # one rank step: the largest single-step saving of any unit (an FFN step or a twin step)
    d = model.config.d_model
    step = max(8 * (d + 4 * d), 4 * 8 * 2 * d)
    assert target <= removed <= target + step
    assert report.data_aware and report.output_error is not None


def test_allocation_is_not_uniform_and_uses_sensitivity(model, calibration):
    report = compress_(model, AdaPTwinConfig(scope="all", budget=0.2, ffn=True, ffn_rank_step=8), calibration)
    ranks = {tuple(sorted((k, v) for k, v in m.ranks.items())) for m in report.modules}
    assert len(ranks) > 1


def test_data_aware_lowers_output_error(tiny_dense, calibration):
    import copy

    errors = []
    for calib in (calibration, None):
        m = copy.deepcopy(tiny_dense)
        compress_(m, AdaPTwinConfig(scope="encoder", rank_qk=4, rank_vo=8), calib)
        from adaptwin.compress.calibrate import relative_error, run

        errors.append(relative_error(run(m, calibration, False), run(tiny_dense, calibration, False)))
    assert errors[0] < errors[1]


def test_kl_error_is_the_root_mean_divergence_per_position():
    from adaptwin.compress.calibrate import kl_error, relative_error

    ref = torch.tensor([[[0.0, 0.0], [2.0, -1.0]]])  # [1, T=2, vocab=2]
    assert kl_error([ref.clone()], [ref]) == pytest.approx(0.0, abs=1e-7)
    # a constant added to every logit of a position moves no probability: the logits' error sees it
    shifted = ref + torch.tensor([[[5.0], [-3.0]]])
    assert kl_error([shifted], [ref]) == pytest.approx(0.0, abs=1e-6) and relative_error([shifted], [ref]) > 1
    # position 0 to (0.8, 0.2), position 1 unchanged: KL(0.5, 0.5 || 0.8, 0.2) over two positions
    out = ref.clone()
    out[0, 0] = torch.tensor([0.8, 0.2]).log()
    expected = (0.5 * (torch.tensor(0.5 / 0.8).log() + torch.tensor(0.5 / 0.2).log()) / 2).sqrt()
    assert kl_error([out], [ref]) == pytest.approx(float(expected), rel=1e-5)


def test_kl_probe_allocates_to_the_budget_and_is_kept_in_the_config(tiny_dense, model, calibration):
    import copy
    import dataclasses

    cfg = AdaPTwinConfig(scope="all", budget=0.2, ffn=True, ffn_rank_step=8, probe="kl")
    report = compress_(model, cfg, calibration)
    assert report.config["probe"] == "kl"
    assert AdaPTwinConfig.from_dict(report.config) == cfg
    assert AdaPTwinConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "probe"}).probe == "logits"
    removed = report.params_before["total"] - report.params_after["total"]
    assert removed >= 0.2 * report.params_before["total"]
    logits_report = compress_(copy.deepcopy(tiny_dense), dataclasses.replace(cfg, probe="logits"), calibration)
    # the two probes weigh the units differently, so the same budget lands on other ranks
    assert [m.ranks for m in report.modules] != [m.ranks for m in logits_report.modules]


def test_explicit_per_module_ranks(model):
    cfg = AdaPTwinConfig(scope="encoder", rank_qk=8, rank_vo=8, ranks={"encoder.layers.0.self_attn": {"qk": 12}})
    report = compress_(model, cfg)
    by_name = {m.name: m.ranks for m in report.modules}
    assert by_name["model.encoder.layers.0.self_attn"] == {"qk": 12, "vo": 8}
    assert by_name["model.encoder.layers.1.self_attn"] == {"qk": 8, "vo": 8}
    assert model.model.encoder.layers[0].self_attn.q_proj.weight.shape == (4 * 12, 64)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rank_qk=0), "positive integer"),
        (dict(budget=1.0), "must lie in"),
        (dict(budget=0.0), "must lie in"),
        (dict(scope="middle", budget=0.2), "unknown scope"),
        (dict(), "nothing to do"),
        (dict(budget=0.2, rank_qk=8), "either a budget"),
        (dict(rank_ffn=8, rank_qk=8), "ffn=False"),
        (dict(twins=("qv",), rank_qk=8), "twins"),
        (dict(scope="all", budget=0.2, probe="cosine"), "probe"),
        (dict(scope="encoder", budget=0.2, probe="kl"), "scope='all'"),
    ],
)
def test_bad_config_is_a_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaPTwinConfig(**kwargs)


def test_rank_above_head_width_is_rejected(model):
    with pytest.raises(ValueError, match="head width"):
        compress_(model, AdaPTwinConfig(rank_qk=17))


def test_unreachable_budget_suggests_ffn(model):
    with pytest.raises(ValueError, match="--ffn"):
        compress_(model, AdaPTwinConfig(scope="encoder", budget=0.5))


def test_non_whisper_model_is_rejected():
    with pytest.raises(ValueError, match="not a Whisper model"):
        compress_(torch.nn.Linear(3, 3), AdaPTwinConfig(rank_qk=8))


def test_compressing_twice_is_rejected(model):
    compress_(model, AdaPTwinConfig(rank_qk=8))
    with pytest.raises(ValueError, match="already compressed"):
        compress_(model, AdaPTwinConfig(rank_qk=8))


def test_report_counts_match_the_model(model):
    from adaptwin.compress import part_parameters

    report = compress_(model, AdaPTwinConfig(scope="all", rank_qk=8, rank_vo=8))
    assert report.params_after == part_parameters(model)
    assert report.params_after["total"] < report.params_before["total"]
    assert all(0 < m.rel_error["qk"] < 1 for m in report.modules)
    assert "removed" in report.format()


def test_twin_beats_independent_on_a_model_attention(tiny_dense):
    from adaptwin.compress import factorize as fz

    attn = tiny_dense.model.encoder.layers[0].self_attn
    a, b = fz.heads_qk(attn.q_proj.weight, attn.q_proj.bias, attn.k_proj.weight, None, attn.num_heads)
    truth = a.double() @ b.double().transpose(-1, -2)
    ja, jb = fz.twin_factorize(a, b).factors(8, torch.float64)
    ia, ib = fz.independent_factors(a, b, 8)
    assert (ja @ jb.transpose(-1, -2) - truth).norm() < (ia.double() @ ib.double().transpose(-1, -2) - truth).norm()


def test_any_whisper_shape_distil_like(inputs):
    """Distil-Whisper-like: 128 mel bins, deep encoder, 2-layer decoder, different head counts."""
    from conftest import tiny_config
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(3)
    cfg = tiny_config(
        num_mel_bins=128,
        encoder_layers=3,
        decoder_layers=1,
        encoder_attention_heads=8,
        decoder_attention_heads=2,
        d_model=96,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    feats = torch.randn(2, 128, 100)
    ids = inputs[1][:2]
    ref = logits(model, feats, ids)
    full_decoder = {"qk": 48, "vo": 48}  # head widths: encoder 96/8 = 12, decoder 96/2 = 48
    ranks = {"decoder.layers.0.self_attn": full_decoder, "decoder.layers.0.encoder_attn": full_decoder}
    report = compress_(model, AdaPTwinConfig(scope="all", rank_qk=12, rank_vo=12, ranks=ranks))
    assert (logits(model, feats, ids) - ref).abs().max() <= 1e-4
    assert {m.full["qk"] for m in report.modules} == {12, 48}


def test_the_head_probe_measures_the_lookup_and_logits_together(model, calibration, monkeypatch):
    """The factored head is also the token lookup: its sensitivity must be measured with both
    replaced, or the allocator underrates it (a whole-model budget once cut the head to rank 32)."""
    from adaptwin.compress import api
    from adaptwin.models.modules import FactoredEmbedding

    seen, real = [], api.run
    lookup = model.model.decoder.embed_tokens

    def spy(m, *args, **kwargs):
        if isinstance(m.proj_out, LowRankLinear):
            embed = m.model.decoder.embed_tokens
            seen.append(isinstance(embed, FactoredEmbedding) and embed.head is m.proj_out)
        return real(m, *args, **kwargs)

    monkeypatch.setattr(api, "run", spy)
    report = compress_(
        model, AdaPTwinConfig(scope="decoder", budget=0.2, ffn=True, head=True, head_keep=0), calibration
    )
    assert seen and all(seen)
    head = next(m for m in report.modules if m.kind == "head")
    if head.ranks["head"] is None:  # the probes put the dense lookup back
        assert model.model.decoder.embed_tokens is lookup
