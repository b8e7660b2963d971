"""whisper.cpp model files: names, shapes, types and values read back; q8_0 blocks; the export
folder; on the real tiny.en (slow), whisper.cpp itself transcribes what PyTorch transcribes."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest

from adaptwin import AdaPTwinConfig, compress_
from adaptwin.errors import InvalidInput
from adaptwin.export import ExportOptions, export
from adaptwin.export.ggml import F16, F32, Q8_0, dequantize_q8_0, ggml_name, quantize_q8_0, read_ggml, write_ggml
from adaptwin.models.checkpoint import LoadedWhisper


class TinyProcessor:
    """16 mel bins and a byte-level vocabulary of 100 single-byte tokens (no real tokenizer)."""

    def __init__(self, n_tokens=100):
        from transformers import WhisperFeatureExtractor

        from adaptwin.models.tokenizer import byte_to_unicode

        self.feature_extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=1)
        chars = byte_to_unicode()
        vocab = {chars[b]: i for i, b in enumerate(range(n_tokens))}
        self.tokenizer = SimpleNamespace(backend_tokenizer=SimpleNamespace(get_vocab=lambda with_added_tokens: vocab))

    def save_pretrained(self, path):
        self.feature_extractor.save_pretrained(path)


@pytest.mark.parametrize("file_type", ["f32", "f16", "q8_0"])
def test_every_tensor_reads_back_with_openai_names_shapes_and_types(tiny_dense, tmp_path, file_type):
    path = write_ggml(tiny_dense, TinyProcessor(), tmp_path / "m.bin", file_type)
    g = read_ggml(path)
    c = tiny_dense.config
    assert g.hparams["n_vocab"] == c.vocab_size and g.hparams["n_audio_ctx"] == c.max_source_positions
    assert g.hparams["n_text_layer"] == c.decoder_layers and g.hparams["n_mels"] == c.num_mel_bins
    assert g.hparams["ftype"] == {"f32": 0, "f16": 1, "q8_0": 2007}[file_type]
    assert g.filters.shape == (16, 201) and g.vocab == [bytes([b]) for b in range(100)]
    state = {ggml_name(k): v for k, v in tiny_dense.state_dict().items() if ggml_name(k)}
    assert set(g.tensors) == set(state) and "decoder.proj.weight" not in g.tensors  # the head is tied
    for name, (kind, shape, values) in g.tensors.items():
        ref = state[name].float().numpy()
        if name.startswith("encoder.conv") and name.endswith("bias"):
            assert shape == (ref.shape[0], 1)
        else:
            assert shape == ref.shape
        if file_type == "f32" or ref.ndim == 1 or "positional" in name:
            assert kind == F32
        elif file_type == "q8_0" and ref.ndim == 2:
            assert kind == Q8_0
        else:
            assert kind == F16  # f16 files, and the convolutions of q8_0 files
        rel = np.sqrt(((values.reshape(ref.shape) - ref) ** 2).mean() / (ref**2).mean())
        assert rel <= {F32: 0.0, F16: 1e-3, Q8_0: 2e-2}[kind], name


def test_names_are_openai_whispers():
    assert ggml_name("model.encoder.layers.3.self_attn.q_proj.weight") == "encoder.blocks.3.attn.query.weight"
    assert ggml_name("model.decoder.layers.0.encoder_attn.k_proj.weight") == "decoder.blocks.0.cross_attn.key.weight"
    assert ggml_name("model.decoder.layers.1.fc2.bias") == "decoder.blocks.1.mlp.2.bias"
    assert ggml_name("model.encoder.layer_norm.weight") == "encoder.ln_post.weight"
    assert ggml_name("model.decoder.embed_tokens.weight") == "decoder.token_embedding.weight"
    assert ggml_name("model.encoder.conv2.weight") == "encoder.conv2.weight"
    assert ggml_name("proj_out.weight") is None


def test_q8_0_blocks_are_ggmls():
    x = np.zeros((2, 32), dtype=np.float32)
    x[0, :3] = [127.0, 2.5, -2.5]  # scale 1: 2.5 rounds half away from zero, to 3 (not to even)
    x[1] = np.linspace(-4.0, 2.0, 32)  # scale 4/127
    data = quantize_q8_0(x)
    assert len(data) == 2 * 34  # one float16 scale and 32 int8 per block
    blocks = np.frombuffer(data, dtype=[("d", "<f2"), ("qs", "i1", (32,))])
    assert blocks["d"][0] == 1.0 and list(blocks["qs"][0][:4]) == [127, 3, -3, 0]
    assert blocks["d"][1] == np.float16(4.0 / 127) and blocks["qs"][1][0] == -127
    assert np.abs(dequantize_q8_0(data, x.shape)[1] - x[1]).max() <= 0.5 * 4.0 / 127 + 1e-3  # half a step
    zero = np.frombuffer(quantize_q8_0(np.zeros((1, 32))), dtype=blocks.dtype)
    assert zero["d"][0] == 0 and not zero["qs"].any()  # an all-zero block: scale 0, no NaN


def test_export_folder_is_validated_and_refuses_compressed_models(tiny_dense, tmp_path):
    loaded = LoadedWhisper(copy.deepcopy(tiny_dense), TinyProcessor(), tmp_path / "src")
    report = export(loaded, tmp_path / "out", ExportOptions(engine="ggml", precision="int8"))
    meta = json.loads((tmp_path / "out" / "adaptwin_export.json").read_text())
    assert meta["ggml_type"] == "q8_0" and meta["validation"]["ok"] and meta["validation"]["worst"] > 0
    assert set(report.files) == {"ggml-model.bin", "adaptwin_export.json"}
    assert "every tensor read back" in report.format() and "opset" not in report.format()
    compressed = copy.deepcopy(tiny_dense)
    compress_(compressed, AdaPTwinConfig(scope="encoder", rank_qk=8, rank_vo=8))
    with pytest.raises(InvalidInput, match="dense weights only"):
        export(
            LoadedWhisper(compressed, TinyProcessor(), tmp_path / "c"), tmp_path / "c-out", ExportOptions(engine="ggml")
        )
    assert not (tmp_path / "c-out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_whisper_cpp_transcribes_our_file_like_pytorch(tmp_path, precision):
    pywhispercpp = pytest.importorskip("pywhispercpp.model")
    import adaptwin
    from adaptwin.audio import load_audio
    from adaptwin.data import bundled_clips
    from adaptwin.evaluate import wer_counts

    loaded = adaptwin.load_whisper("tiny.en")
    export(loaded, tmp_path / "g", ExportOptions(engine="ggml", precision=precision))
    model = pywhispercpp.Model(str(tmp_path / "g" / "ggml-model.bin"), n_threads=2, redirect_whispercpp_logs_to=None)
    for clip in bundled_clips()[:3]:
        audio = load_audio(clip.audio)
        ours = " ".join(s.text for s in adaptwin.Whisper(loaded).transcribe(audio)[0])
        theirs = " ".join(s.text for s in model.transcribe(audio))
        a = wer_counts(ours, theirs)
        assert a.errors <= max(1, a.ref_words // 10), (ours, theirs)


def test_a_file_outside_its_tolerance_is_never_written(tiny_dense, tmp_path, monkeypatch):
    import adaptwin.export as export_module
    from adaptwin.export.validate import ValidationError

    monkeypatch.setitem(export_module.GGML_TOLERANCE, "q8_0", 1e-6)  # q8_0 cannot hold the weights this closely
    loaded = LoadedWhisper(copy.deepcopy(tiny_dense), TinyProcessor(), tmp_path / "src")
    with pytest.raises(ValidationError, match="nothing was written"):
        export(loaded, tmp_path / "out", ExportOptions(engine="ggml", precision="int8"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("*.partial"))
