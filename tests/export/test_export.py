"""ONNX export of tiny random models: parity with PyTorch, KV cache, int8, atomicity, TensorRT readiness."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from adaptwin import AdaPTwinConfig, compress_  # noqa: E402
from adaptwin.export import ExportOptions, export  # noqa: E402
from adaptwin.models.checkpoint import LoadedWhisper  # noqa: E402
from adaptwin.runtime.decoding import DecodingOptions, Vocab, decode  # noqa: E402
from adaptwin.runtime.ort import OrtWhisper  # noqa: E402


class TinyProcessor:
    """A feature extractor for the tiny models' 16 mel bins and 1 s window (no tokenizer)."""

    def __init__(self):
        from transformers import WhisperFeatureExtractor

        self.feature_extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=1)

    def save_pretrained(self, path):
        self.feature_extractor.save_pretrained(path)


def tiny_loaded(model) -> LoadedWhisper:
    return LoadedWhisper(model, TinyProcessor(), Path("tiny"))


@pytest.fixture(scope="module")
def compressed(tiny_dense, calibration):
    model = copy.deepcopy(tiny_dense)
    compress_(
        model,
        AdaPTwinConfig(scope="all", rank_qk=8, rank_vo=8, ffn=True, rank_ffn=32, head=True, rank_head=32, head_keep=0),
    )
    return model


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_dense, compressed):
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, model in (("dense", tiny_dense), ("compressed", compressed)):
        for precision in ("fp32", "int8"):
            out[name, precision] = export(
                tiny_loaded(model), root / f"{name}-{precision}", ExportOptions(precision=precision)
            )
    out["dense", "fp16"] = export(tiny_loaded(tiny_dense), root / "dense-fp16", ExportOptions(precision="fp16"))
    return out


def test_fp16_export_runs_on_cpu_within_its_tolerance(exports):
    import onnx

    report = exports["dense", "fp16"]
    assert report.validation.ok and all(c.enforced for c in report.validation.checks)
    graph = onnx.load(str(report.out / "encoder_model.onnx"), load_external_data=False).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert report.files["model.onnx_data"] < 0.6 * exports["dense", "fp32"].files["model.onnx_data"]


def test_folder_layout_and_shared_weights(exports):
    report = exports["compressed", "fp32"]
    names = set(report.files)
    assert {
        "encoder_model.onnx",
        "decoder_model.onnx",
        "decoder_with_past_model.onnx",
        "decoder_model_merged.onnx",
        "model.onnx_data",
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "adaptwin_export.json",
    } <= names
    # The three decoders share one copy of their weights: the data file is far smaller than three copies.
    data = report.files["model.onnx_data"]
    import onnx

    per_graph = {}
    for g in ("encoder_model", "decoder_model", "decoder_with_past_model"):
        proto = onnx.load(str(report.out / f"{g}.onnx"), load_external_data=False)
        per_graph[g] = sum(
            int(next(e.value for e in t.external_data if e.key == "length"))
            for t in proto.graph.initializer
            if t.external_data
        )
    assert data < per_graph["encoder_model"] + 1.2 * per_graph["decoder_model"]


@pytest.mark.parametrize("name", ["dense", "compressed"])
def test_fp32_logits_match_pytorch(exports, tiny_dense, compressed, inputs, name):
    model = tiny_dense if name == "dense" else compressed
    report = exports[name, "fp32"]
    assert report.validation.ok and all(c.enforced for c in report.validation.checks)
    assert len(report.validation.token_agreement) == 3  # greedy tokens compared on the bundled clips
    engine = OrtWhisper(report.out)
    feats, ids = inputs
    with torch.no_grad():
        ref = model(input_features=feats, decoder_input_ids=ids).logits.numpy()
    cross, past = engine.encode(feats.numpy())
    full, _ = engine.step(ids.numpy(), (cross, past))
    assert np.abs(full - ref).max() <= 1e-4
    # only the positions asked for are projected (a prompt's prefill asks for one or two)
    at = np.array([1, ids.shape[1] - 1])
    picked, _ = engine.step(ids.numpy(), (cross, past), at=at)
    assert engine.positions and picked.shape[1] == 2 and np.abs(picked - ref[:, at]).max() <= 1e-4
    # merged decoder, token by token through the KV cache
    steps, state = [], (cross, past)
    for t in range(ids.shape[1]):
        logits, state = engine.step(ids[:, t : t + 1].numpy(), state)
        steps.append(logits)
    assert np.abs(np.concatenate(steps, 1) - ref).max() <= 1e-4


def test_merged_decoder_equals_split_decoders(exports, inputs):
    engine = OrtWhisper(exports["compressed", "fp32"].out)
    first, with_past = engine.session("decoder_model.onnx"), engine.session("decoder_with_past_model.onnx")
    feats, ids = inputs
    cross, empty = engine.encode(feats.numpy())
    head, *present = first.run(None, engine.feed(ids[:, :4].numpy(), cross, []))
    tail, *_ = with_past.run(None, engine.feed(ids[:, 4:].numpy(), cross, present))
    merged_head, (_, merged_present) = engine.step(ids[:, :4].numpy(), (cross, empty))
    merged_tail, _ = engine.step(ids[:, 4:].numpy(), (cross, merged_present))
    assert np.abs(head - merged_head).max() <= 1e-5 and np.abs(tail - merged_tail).max() <= 1e-5


def test_no_dense_attention_weight_in_compressed_graphs(exports, compressed):
    import onnx

    d = compressed.config.d_model
    out = exports["compressed", "fp32"].out
    for g in ("encoder_model", "decoder_model_merged"):
        proto = onnx.load(str(out / f"{g}.onnx"), load_external_data=False)
        shapes = [tuple(t.dims) for t in proto.graph.initializer]
        if g == "encoder_model":  # one cross key/value matmul per decoder layer: [D, H*(r_qk + r_vo)]
            for layer in compressed.model.decoder.layers:
                a = layer.encoder_attn
                shapes.remove((d, a.k_proj.out_features + a.v_proj.out_features))
        assert (d, d) not in shapes, f"{g} rebuilds a dense {d}x{d} matrix"
        # one fused q/k/v matmul per self-attention: [D, H*(2*r_qk + r_vo)] with H = 4, r = 8
        assert shapes.count((d, 4 * (8 + 8 + 8))) == 2  # two layers on each side


def test_greedy_through_ort_equals_pytorch_generate(exports, compressed):
    engine = OrtWhisper(exports["compressed", "fp32"].out)
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(2, 16, 100, generator=g)
    vocab = Vocab.from_generation_config(engine.generation_config)
    hyps = decode(engine, engine.encode(feats.numpy()), 2, vocab.prompt(), vocab, DecodingOptions(max_new_tokens=20))
    with torch.no_grad():
        ref = compressed.generate(feats, max_new_tokens=20, do_sample=False, num_beams=1)
    for h, row in zip(hyps, ref.tolist()):
        row = row[1:] if row[0] == compressed.config.decoder_start_token_id else row  # generate() may drop the prompt
        row = [t for t in row if t not in (compressed.config.eos_token_id, compressed.config.pad_token_id)]
        assert h.tokens == row


def test_beam_search_through_ort(exports):
    engine = OrtWhisper(exports["dense", "fp32"].out)
    feats = torch.randn(2, 16, 100, generator=torch.Generator().manual_seed(6)).numpy()
    vocab = Vocab.from_generation_config(engine.generation_config)
    greedy = decode(engine, engine.encode(feats), 2, vocab.prompt(), vocab, DecodingOptions(max_new_tokens=12))
    beam1 = decode(
        engine, engine.encode(feats), 2, vocab.prompt(), vocab, DecodingOptions(beam_size=1, max_new_tokens=12)
    )
    beam4 = decode(
        engine, engine.encode(feats), 2, vocab.prompt(), vocab, DecodingOptions(beam_size=4, max_new_tokens=12)
    )
    assert [h.tokens for h in greedy] == [h.tokens for h in beam1]
    for g, b in zip(greedy, beam4):
        if len(g.tokens) == len(b.tokens):  # same length: the beam's total log-probability is at least greedy's
            assert b.logprob >= g.logprob - 1e-4


@pytest.mark.parametrize("engine_kind", ["ort", "torch"])
def test_one_input_beams_share_its_cross_keys_and_values(exports, compressed, engine_kind):
    """A single input's cross keys/values are not copied per beam (the graphs' MatMuls
    broadcast them); its beams must equal the same input's beams within a batch, where
    they are copied."""
    from adaptwin.runtime.torch_engine import TorchWhisper

    folder = exports["compressed", "fp32"].out
    engine = OrtWhisper(folder) if engine_kind == "ort" else TorchWhisper(LoadedWhisper(compressed, None, folder))
    feats = torch.randn(2, 16, 100, generator=torch.Generator().manual_seed(7)).numpy()
    vocab = Vocab.from_generation_config(engine.generation_config)
    options = DecodingOptions(beam_size=4, max_new_tokens=12)
    state = engine.encode(feats[:1])
    cross = engine.reorder(state, np.zeros(4, dtype=np.int64))[0]
    assert cross[0].shape[0] == 1
    alone = decode(engine, state, 1, vocab.prompt(), vocab, options)
    batched = decode(engine, engine.encode(feats), 2, vocab.prompt(), vocab, options)
    assert alone[0].tokens == batched[0].tokens
    assert abs(alone[0].logprob - batched[0].logprob) < 1e-3


@pytest.mark.parametrize("name", ["dense", "compressed"])
def test_int8_within_stated_tolerance_and_smaller(exports, name):
    q, f = exports[name, "int8"], exports[name, "fp32"]
    assert q.validation.ok
    assert any(c.name.startswith("real") and c.enforced for c in q.validation.checks)
    import onnx
    from onnx import numpy_helper

    encoder = onnx.load(str(q.out / "encoder_model.onnx"))
    ops = {n.op_type for n in encoder.graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    # 7-bit weights: AVX2-only CPUs sum pairs of uint8 x int8 products in 16 bits, which
    # full-range weights overflow (255 * 127 * 2 > 32767; 255 * 64 * 2 fits)
    weights = [numpy_helper.to_array(t) for t in encoder.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64
    assert q.files["model.onnx_data"] < 0.6 * f.files["model.onnx_data"]
    # the second FFN matrix: 8-bit blocks (MatMulNBits), no float copy left
    fc2 = [n for n in encoder.graph.node if "/fc2/" in n.name and n.op_type in ("MatMul", "MatMulNBits")]
    assert fc2 and all(n.op_type == "MatMulNBits" for n in fc2)
    assert all({a.name: a.i for a in n.attribute}["bits"] == 8 for n in fc2)
    # the decoder: every weight in 8-bit blocks, the logits too, whose weight is the lookup table
    decoder = onnx.load(str(q.out / "decoder_with_past_model.onnx"), load_external_data=False).graph
    matrices = {t.name for t in decoder.initializer if len(t.dims) == 2}
    assert not [n.name for n in decoder.node if n.op_type == "MatMul" and n.input[1] in matrices]
    assert not [n.name for n in decoder.node if n.op_type == "MatMulInteger"]
    located = {t.name: {e.key: e.value for e in t.external_data}.get("offset") for t in decoder.initializer}
    lookup = [n for n in decoder.node if n.op_type == "Gather" and n.input[0].endswith("embed.q")]
    logits = [n for n in decoder.node if n.op_type == "MatMulNBits" and "layers." not in n.name][-1]
    assert lookup and located[lookup[0].input[0]] == located[logits.input[1]]  # one copy in model.onnx_data


@pytest.mark.parametrize("blocks", ["ffn", "decoder", "all"])
def test_int8_blocks_choose_which_weights_go_blockwise(exports, tmp_path, blocks):
    import onnx

    from adaptwin.export.onnx import quantize_int8

    ops = {}
    for name in ("encoder_model", "decoder_with_past_model"):
        out = quantize_int8(
            exports["compressed", "fp32"].out / f"{name}.onnx",
            tmp_path / f"{name}.onnx",
            blocks=blocks,
            decoder=name.startswith("decoder"),
        )
        graph = onnx.load(str(out), load_external_data=False).graph
        weights = {t.name for t in graph.initializer}
        assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
        ops[name] = {n.name: n.op_type for n in graph.node if n.op_type in ("MatMulNBits", "MatMulInteger")}
    blockwise = {
        "ffn": lambda graph, node: "/fc2/" in node,
        "decoder": lambda graph, node: "/fc2/" in node or graph.startswith("decoder"),
        "all": lambda graph, node: True,
    }[blocks]
    for graph, nodes in ops.items():
        assert nodes
        for node, op in nodes.items():
            assert op == ("MatMulNBits" if blockwise(graph, node) else "MatMulInteger"), (graph, node)


@pytest.mark.parametrize("blocks", ["ffn", "decoder"])
def test_int8_lookup_matches_the_float_table_in_either_layout(tiny_dense, blocks):
    from adaptwin.export.onnx import _int8_embedding
    from adaptwin.models.graphs import DecoderGraph

    graph = DecoderGraph(copy.deepcopy(tiny_dense).float().eval())
    ids = torch.tensor([[0, 3, 7], [5, 5, 1]])
    ref = graph.embed(ids)  # [B, T, D]
    _int8_embedding(graph, blockwise=blocks != "ffn")
    got = graph.embed(ids)
    assert got.shape == ref.shape
    assert (got - ref).norm() / ref.norm() < 0.02


@pytest.mark.parametrize("k", [64, 50])  # 50: the last block is padded
def test_blockwise_matches_float_with_an_outlier_channel(tmp_path, k):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from adaptwin.export.onnx import _blockwise

    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, 24)).astype(np.float32)
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="/layers.0/fc2/MatMul")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", 24])],
        [numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    _blockwise(path, [node.name])
    proto = onnx.load(str(path))
    assert [n.op_type for n in proto.graph.node] == ["MatMulNBits"]
    assert not any(
        t.data_type == TensorProto.FLOAT and len(t.dims) == 2 and t.dims[0] == k for t in proto.graph.initializer
    )
    x = rng.standard_normal((7, k)).astype(np.float32)
    x[:, 3] *= 50  # an activation outlier, as after GELU in Whisper
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ref = x @ w
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.03


def test_failed_validation_leaves_nothing(tmp_path, tiny_dense, monkeypatch):
    import adaptwin.export.validate as validate

    monkeypatch.setitem(validate.TOLERANCE, "fp32", dict(validate.TOLERANCE["fp32"], max_abs=0.0))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "adaptwin_export.json").write_text("{}")  # an earlier export, which a new one may replace
    (tmp_path / "out" / "keep.txt").write_text("previous export")
    with pytest.raises(validate.ValidationError, match="nothing was written"):
        export(tiny_loaded(tiny_dense), tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_interrupted_export_leaves_no_partial_output(tmp_path, tiny_dense, monkeypatch):
    import adaptwin.export.onnx as onnx_export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "write_shared", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(tiny_loaded(tiny_dense), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="precision"):
        ExportOptions(precision="int4")
    with pytest.raises(ValueError, match="opset"):
        ExportOptions(opset=11)
    with pytest.raises(ValueError, match="--calib"):
        ExportOptions(engine="trt", precision="int8")
    with pytest.raises(ValueError, match="int8_blocks"):
        ExportOptions(int8_blocks="encoder")


def test_ort_backend_rejects_a_non_export_folder(tmp_path):
    with pytest.raises(ValueError, match="adaptwin-export"):
        OrtWhisper(tmp_path)


def test_a_dynamic_context_export_matches_pytorch_at_several_lengths(tmp_path, compressed, monkeypatch):
    """The encoder's frame axis is dynamic: the export of a model adapted for a dynamic context is
    validated at its shortest context and a third of the window besides 30 s, with the
    encoder's query blocks (made small here: 7 blocks of 8 positions) cut from the input."""
    from adaptwin.models import graphs
    from adaptwin.models.context import AudioContext

    monkeypatch.setattr(graphs, "QUERY_BLOCK", 8)
    model = copy.deepcopy(compressed)
    model.config.adaptwin = {**model.config.adaptwin, "context": AudioContext(0.2, 0.1).to_dict()}
    report = export(tiny_loaded(model), tmp_path / "dynamic", ExportOptions())
    names = [c.name for c in report.validation.checks]
    assert report.validation.ok and any("20 frames" in n for n in names) and any("60 frames" in n for n in names)
    engine = OrtWhisper(report.out, processor=TinyProcessor())
    torch_graph = graphs.EncoderGraph(model).eval()
    assert torch_graph.layers[0].attn.blocks == 7
    feats = torch.randn(1, 16, 100)
    for frames in (20, 38, 100):
        cross, _ = engine.encode(feats[..., :frames].numpy())
        with torch.no_grad():
            ref = torch_graph(feats[..., :frames])[1:]
        assert cross[0].shape[2] == frames // 2
        for got, want in zip(cross, ref):
            np.testing.assert_allclose(got, want.numpy(), atol=1e-4)


def test_int8_blocks_auto_follows_the_model(tmp_path, compressed, exports):
    """auto: every weight in blocks for a model with a dynamic context (its encoder is short and
    cheap), the decoder's for one without."""
    import json

    import onnx

    from adaptwin.models.context import AudioContext

    meta = lambda out: json.loads((out / "adaptwin_export.json").read_text())  # noqa: E731
    assert meta(exports["compressed", "int8"].out)["int8_blocks"] == "decoder"
    model = copy.deepcopy(compressed)
    model.config.adaptwin = {**model.config.adaptwin, "context": AudioContext(0.2, 0.1).to_dict()}
    report = export(tiny_loaded(model), tmp_path / "dynamic-int8", ExportOptions(precision="int8"))
    assert report.validation.ok
    assert meta(report.out)["int8_blocks"] == "all"
    encoder = onnx.load(str(report.out / "encoder_model.onnx"), load_external_data=False).graph
    assert not [n for n in encoder.node if n.op_type == "MatMulInteger"]
    assert [n for n in encoder.node if n.op_type == "MatMulNBits" and "/fc1/" in n.name]


@pytest.fixture(scope="module")
def split_exports(tmp_path_factory):
    """A tiny model with a split vocabulary head (ids 100..119 special), exported in fp32 and int8."""
    from conftest import tiny_config
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_config(eos_token_id=100, bos_token_id=100)).eval()
    model.generation_config.max_length = 40
    config = AdaPTwinConfig(scope="all", rank_qk=8, rank_vo=8, head=True, rank_head=16, head_keep=30)
    compress_(model, config, token_prior=list(range(3, 100)))
    root = tmp_path_factory.mktemp("split")
    return model, {p: export(tiny_loaded(model), root / p, ExportOptions(precision=p)) for p in ("fp32", "int8")}


def test_a_split_head_exports_within_tolerance_and_stores_each_table_once(split_exports):
    import onnx

    model, reports = split_exports
    for report in reports.values():
        assert report.validation.ok and all(c.enforced for c in report.validation.checks if c.name.startswith("real"))
    assert max(c.max_abs for c in reports["fp32"].validation.checks) <= 1e-4
    decoder = onnx.load(str(reports["int8"].out / "decoder_with_past_model.onnx"), load_external_data=False).graph
    located = {t.name: {e.key: e.value for e in t.external_data}.get("offset") for t in decoder.initializer}
    lookups = {located[n.input[0]] for n in decoder.node if n.op_type == "Gather" and n.input[0].endswith(".q")}
    logits = {located[n.input[1]] for n in decoder.node if n.op_type == "MatMulNBits" and "layers." not in n.name}
    assert len(lookups) == 2 and lookups <= logits  # the kept and the factored table: one copy each


def test_a_split_head_int8_lookup_matches_its_float_lookup(split_exports):
    from adaptwin.export.onnx import _int8_embedding
    from adaptwin.models.graphs import DecoderGraph

    graph = DecoderGraph(copy.deepcopy(split_exports[0]).float().eval())
    ids = torch.tensor([[3, 4, 99, 100], [50, 5, 119, 1]])  # kept, other, kept special, other
    ref = graph.embed(ids)
    assert torch.allclose(ref, split_exports[0].model.decoder.embed_tokens(ids), atol=1e-6)
    _int8_embedding(graph, blockwise=True)
    assert (graph.embed(ids) - ref).norm() / ref.norm() < 0.02


def test_an_int8_top1_share_binds_only_over_enough_positions():
    """One near-tie flipped among the two positions of the logits_at check reads as 50 %: a top-1
    share over fewer than MIN_TOP1_POSITIONS is printed, and rms still bounds those logits."""
    from adaptwin.export.validate import MIN_TOP1_POSITIONS, Check

    few = Check("real: decoder, logits at two positions", "int8", 0.03, 0.03, 0.5, positions=2)
    many = Check("real: decoder, all tokens at once", "int8", 0.03, 0.03, 0.5, positions=MIN_TOP1_POSITIONS)
    far = Check("real: decoder, logits at two positions", "int8", 0.9, 0.9, 1.0, positions=2)
    assert few.ok and not many.ok and not far.ok
