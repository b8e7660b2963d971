"""Time budgets: units measured on ONNX Runtime, cut where time is spent (compress/latency.py)."""

import copy
import json

import pytest
import torch

from adaptwin import AdaPTwinConfig, compress_
from adaptwin.compress.allocate import Option, Unit, allocate
from adaptwin.compress.latency import Dims, OrtTimer, unit_work


class ShapeTimer:
    """A timer in which one FFN matrix of the tiny model (width 128) runs ``factor`` times slower
    per FLOP: fc1 writes 128 features, fc2 reads them."""

    def __init__(self, slow: str, factor: float = 20.0) -> None:
        self.slow, self.factor = slow, factor

    def seconds(self, shapes):
        if not shapes:
            return 0.0
        flops = sum(2.0 * b * m * k * n for b, m, k, n in shapes) * 1e-9
        hit = shapes[-1][3] == 128 if self.slow == "fc1" else shapes[0][2] == 128
        return flops * (self.factor if hit else 1.0)


def ffn_ranks(report):
    out = {}
    for m in report.modules:
        if m.kind == "ffn":
            rank = m.ranks["ffn"]
            out[m.name] = m.full["ffn"] if rank is None else rank
    return out


@pytest.mark.parametrize("slow", ["fc1", "fc2"])
def test_a_unit_measured_slow_gets_cut_first(model, slow):
    # fc1 and fc2 hold equal parameters, so only the measured time tells them apart
    fast = {"fc1": "fc2", "fc2": "fc1"}[slow]
    cfg = AdaPTwinConfig(scope="encoder", budget=0.15, budget_by="time", ffn=True, ffn_rank_step=8)
    report = compress_(model, cfg, timer=ShapeTimer(slow))
    ranks = ffn_ranks(report)
    # the same model and errors in both cases: the measured time alone picks the matrix to cut
    pairs = [(ranks[f"model.encoder.layers.{i}.{slow}"], ranks[f"model.encoder.layers.{i}.{fast}"]) for i in range(2)]
    assert all(s <= f for s, f in pairs) and any(s < f for s, f in pairs)
    before, after = report.time_ms
    assert after <= 0.85 * before + 1e-9


def test_allocator_spends_seconds_not_parameters():
    # two units with the same parameters and errors; one saves ten times more time per step
    def options(sec):
        return [Option(r, p, e, s * sec) for r, p, e, s in ((8, 10, 0.3, 1.0), (16, 20, 0.1, 2.0), (None, 30, 0, 3.0))]

    units = [Unit("slow", options(10.0)), Unit("fast", options(1.0))]
    assert allocate(units, 5.0, "seconds") == {"slow": 16, "fast": None}
    with pytest.raises(ValueError):
        allocate(units, 100.0, "seconds")


@pytest.fixture(scope="module")
def long_window():
    """A small model with Whisper's 1500 encoder positions and base's head width: on the
    50-position toy every matmul is too small for a thinner one to run clearly faster, which
    is true, but would make what a budget can reach depend on the CPU."""
    from conftest import tiny_config
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = tiny_config(max_source_positions=1500, d_model=256, encoder_ffn_dim=1024, decoder_ffn_dim=1024)
    return WhisperForConditionalGeneration(config).eval()


def test_measured_time_budget_and_max_ms_on_ort(long_window):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    timer = OrtTimer(threads=1, repeats=3, min_seconds=0.002)
    cfg = AdaPTwinConfig(scope="encoder", budget=0.3, budget_by="time", ffn=True)
    before, after = compress_(copy.deepcopy(long_window), cfg, timer=timer).time_ms
    assert before > 0 and after <= 0.7 * before + 1e-9
    # the same measurements (cached by shape) decide a budget in milliseconds
    limit = 0.6 * before
    report = compress_(copy.deepcopy(long_window), AdaPTwinConfig(max_ms=limit, ffn=True), timer=timer)
    assert report.time_ms[1] <= limit + 1e-9 and report.params_after["encoder"] < report.params_before["encoder"]
    # a limit already met cuts nothing
    report = compress_(copy.deepcopy(long_window), AdaPTwinConfig(max_ms=2 * before, ffn=True), timer=timer)
    assert report.params_after == report.params_before
    with pytest.raises(ValueError, match="time budget cannot be met"):
        compress_(copy.deepcopy(long_window), AdaPTwinConfig(max_ms=1e-6 * before), timer=timer)


def test_unit_work_at_full_rank_is_the_dense_work(model):
    dims = Dims.of(model)
    attn = model.model.encoder.layers[0].self_attn

    def flops(work):
        return sum(b * m * k * n for b, m, k, n in work.window + work.step)

    for kind, side, module in (
        ("encoder_self", "encoder", attn),
        ("decoder_self", "decoder", model.model.decoder.layers[0].self_attn),
        ("cross", "decoder", model.model.decoder.layers[0].encoder_attn),
    ):
        for twin in ("qk", "vo"):
            dense = unit_work(kind, side, twin, None, module, dims)
            full = unit_work(kind, side, twin, module.head_dim, module, dims)
            lower = unit_work(kind, side, twin, module.head_dim // 2, module, dims)
            assert flops(full) == flops(dense) and flops(lower) < flops(dense)
    # the decoder's work is per token, the encoder's per window
    assert not unit_work("ffn", "decoder", "ffn", 8, model.model.decoder.layers[0].fc1, dims).window
    assert not unit_work("ffn", "encoder", "ffn", 8, model.model.encoder.layers[0].fc1, dims).step


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(budget=0.2, budget_by="seconds"), "budget_by"),
        (dict(max_ms=0.0), "positive number"),
        (dict(max_ms=5.0, budget=0.2), "either budget"),
        (dict(max_ms=5.0, rank_qk=8), "either a budget"),
        (dict(budget=0.2, tokens_per_window=0), "tokens_per_window"),
    ],
)
def test_bad_time_budgets_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaPTwinConfig(**kwargs)


def test_cli_time_budget(long_window, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import adaptwin
    from adaptwin.cli import main

    dense = adaptwin.save(long_window, tmp_path / "dense")
    args = ["compress", "--model", str(dense), "--ffn", "--budget", "0.25", "--budget-by", "time"]
    assert main(args + ["--out", str(tmp_path / "c"), "--json", str(tmp_path / "r.json")]) == 0
    before, after = json.loads((tmp_path / "r.json").read_text())["time_ms"]
    assert after <= 0.75 * before + 1e-9
    assert "ms per window" in capsys.readouterr().out
    saved = json.loads((tmp_path / "c" / "config.json").read_text())["adaptwin"]["config"]
    assert saved["budget_by"] == "time"


def test_a_split_head_step_runs_its_kept_rows_and_the_thin_pair():
    head = torch.nn.Linear(64, 120, bias=False)
    dims = Dims(64, 50, 8)
    split = unit_work("head", "decoder", "head", 8, head, dims, kept=30).step
    assert sorted(split) == sorted(((1, 1, 64, 30), (1, 1, 64, 8), (1, 1, 8, 90), (1, 1, 8, 64)))
    assert unit_work("head", "decoder", "head", None, head, dims, kept=30).step == ((1, 1, 64, 120),)
