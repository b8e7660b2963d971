"""Real OpenAI weights from the `models` extra (marked slow: about two minutes on 2 cores)."""

import copy
import shutil

import numpy as np
import pytest
import torch

import adaptwin
from adaptwin.audio import load_audio
from adaptwin.data import bundled_clips
from adaptwin.runtime import get_backend

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["tiny.en", "base"])
def real(request):
    try:
        return request.param, adaptwin.load_whisper(request.param)
    except FileNotFoundError as exc:
        pytest.skip(f"weights not installed: {exc}")


def _ct2_dir(name, tmp_path):
    from adaptwin.models.builtin import read_verified

    data, support = read_verified(name)
    for f in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copy(support / f, tmp_path / f)
    (tmp_path / "model.bin").write_bytes(data)
    return tmp_path


def test_builtin_import_matches_ctranslate2_greedy(real, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    name, loaded = real
    tok = loaded.processor.tokenizer
    reference = ctranslate2.models.Whisper(str(_ct2_dir(name, tmp_path)), device="cpu", compute_type="float32")
    multilingual = loaded.model.generation_config.is_multilingual
    prompt = ["<|startoftranscript|>"] + (["<|en|>", "<|transcribe|>"] if multilingual else []) + ["<|notimestamps|>"]
    backend = get_backend("torch", loaded)  # our decoding loop (NumPy rules over the exported graphs)
    for clip in bundled_clips():
        audio = load_audio(clip.audio)
        feats = loaded.processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        ours = backend.generate([audio])[0].tokens
        theirs = reference.generate(ctranslate2.StorageView.from_array(feats.numpy()), [prompt], beam_size=1)[0]
        eot = tok.convert_tokens_to_ids("<|endoftext|>")
        assert [t for t in ours if t < eot] == [t for t in theirs.sequences_ids[0] if t < eot], clip.audio.name
        enc = reference.encode(ctranslate2.StorageView.from_array(feats.numpy()))
        with torch.no_grad():
            hf = loaded.model.get_encoder()(feats).last_hidden_state.numpy()
        assert np.abs(np.array(enc) - hf).max() < 5e-3


def test_tokenizer_encodes_like_openai(real):
    tiktoken = pytest.importorskip("tiktoken")
    from adaptwin.models.assets import openai_asset
    from adaptwin.models.tokenizer import read_ranks

    name, loaded = real
    ranks = read_ranks(openai_asset("gpt2.tiktoken" if name == "tiny.en" else "multilingual.tiktoken"))
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    enc = tiktoken.Encoding(
        name="w", pat_str=pat, mergeable_ranks={k: v for k, v in ranks.items() if k}, special_tokens={}
    )
    tok = loaded.processor.tokenizer
    for text in [" the cat sat on the mat", "Hello world, it's 2026!", " Mister John Dashwood, ça va?"]:
        assert tok.encode(text, add_special_tokens=False) == enc.encode(text)


def test_twin_beats_independent_svd_on_real_weights(real):
    from adaptwin.compress import factorize as fz

    _, loaded = real
    attn = loaded.model.model.encoder.layers[1].self_attn
    for a, b in (
        fz.heads_qk(attn.q_proj.weight, attn.q_proj.bias, attn.k_proj.weight, None, attn.num_heads),
        fz.heads_vo(attn.v_proj.weight, attn.out_proj.weight, attn.num_heads),
    ):
        truth = a.double() @ b.double().transpose(-1, -2)
        joint = fz.twin_factorize(a, b)
        for r in (16, 32):
            ja, jb = joint.factors(r, torch.float64)
            ia, ib = fz.independent_factors(a, b, r)
            assert (ja @ jb.transpose(-1, -2) - truth).norm() < (
                ia.double() @ ib.double().transpose(-1, -2) - truth
            ).norm()


def test_data_aware_compression_keeps_the_transcript(real):
    from adaptwin.compress import build_calibration

    name, loaded = real
    clips = bundled_clips()
    model = copy.deepcopy(loaded.model)
    compressed = adaptwin.LoadedWhisper(model, loaded.processor, loaded.path)
    report = adaptwin.compress_(
        model, adaptwin.AdaPTwinConfig(scope="encoder", budget=0.2, ffn=True), build_calibration(loaded, clips[1:])
    )
    assert 0.2 <= report.removed("encoder") < 0.23
    audio = load_audio(clips[0].audio)
    texts = [get_backend("torch", m).transcribe_batch([audio])[0] for m in (compressed, loaded)]
    assert texts[0] == texts[1]
