"""The real decoding path (timestamp rules, forced prefix, KV cache) on a tiny random model,
through PyTorch and through its ONNX export: both engines must stream the same words."""

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adaptwin.errors import InvalidInput
from adaptwin.models.checkpoint import LoadedWhisper
from adaptwin.runtime.backends import StepperBackend
from adaptwin.runtime.streaming import OnlineProcessor

NO_TS = 60  # timestamps are ids 61..119 (0.00 .. 1.16 s): the tiny model's window is 1 s


class Tokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(f" t{i}" for i in ids if 3 <= i < NO_TS)

    def encode(self, text, add_special_tokens=False):
        return [int(w[1:]) for w in text.split() if w[1:].isdigit()]

    def batch_decode(self, batch, skip_special_tokens=True):
        return [self.decode(ids) for ids in batch]


@pytest.fixture(scope="module")
def tiny_ts(tiny_dense):
    from transformers import WhisperFeatureExtractor

    model = copy.deepcopy(tiny_dense)
    gen = model.generation_config
    gen.no_timestamps_token_id, gen.decoder_start_token_id, gen.eos_token_id = NO_TS, 1, 2
    gen.prev_sot_token_id, gen.suppress_tokens, gen.begin_suppress_tokens = 0, [], []
    processor = SimpleNamespace(
        feature_extractor=WhisperFeatureExtractor(feature_size=16, chunk_length=1), tokenizer=Tokenizer()
    )
    processor.save_pretrained = processor.feature_extractor.save_pretrained
    return LoadedWhisper(model, processor, Path("tiny"))


def tone_bursts() -> np.ndarray:
    """A generated 6 s "file": a 220 Hz tone switched on and off, under noise."""
    rng = np.random.default_rng(0)
    t = np.arange(6 * 16000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    return (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def stream(backend, audio):
    windows = []
    generate = backend.generate

    def recording(audios, **kwargs):
        windows.append(len(audios[0]) / 16000)
        return generate(audios, **kwargs)

    backend.generate = recording
    # no pad: the tiny model's window is 1 s, any silence after its buffer would fill it
    online = OnlineProcessor(backend, min_chunk=0.2, trim_after=0.5, max_buffer=0.9, pad=0.0)
    emitted = []  # fixed 0.2 s steps (not the computation-aware clock), so both engines see the same windows
    for i in range(0, len(audio), 3200):
        online.insert_audio(audio[i : i + 3200])
        emitted += online.process()
    return emitted + online.finish(), windows


def test_online_processor_on_a_tiny_model_torch_and_ort_agree(tiny_ts, tmp_path):
    pytest.importorskip("onnxruntime")
    from adaptwin.export import ExportOptions, export
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.ort import OrtWhisper

    audio = tone_bursts()
    torch.manual_seed(0)
    emitted_torch, windows = stream(get_backend("torch", tiny_ts), audio)
    assert windows and max(windows) <= 0.9 + 1e-6  # the decoded window stays bounded
    assert [e.stream_time for e in emitted_torch] == sorted(e.stream_time for e in emitted_torch)
    # (the tokens-vs-generate() check needs a real vocabulary: parity is pinned in tests/export)
    folder = export(tiny_ts, tmp_path / "onnx", ExportOptions(validate=False)).out
    ort_backend = StepperBackend(OrtWhisper(folder, processor=tiny_ts.processor), "ort")
    emitted_ort, _ = stream(ort_backend, audio)
    assert [e.word.text for e in emitted_ort] == [e.word.text for e in emitted_torch]
    assert len(emitted_torch) > 0


@pytest.mark.parametrize("positions", [False, True])
def test_long_prompts_are_fed_in_chunks_or_projected_at_two_positions(tiny_ts, monkeypatch, positions):
    """A stepper that projects every position gets a prompt longer than PREFILL_CHUNK in
    several calls (never logits for the whole prompt at once); one that projects only the
    positions asked for (``positions``) gets it in one call and returns one or two positions.
    Either way the last logits, the kept position's and the decoded tokens equal a one-call
    prefill of all positions."""
    from adaptwin.runtime import decoding
    from adaptwin.runtime.torch_engine import TorchWhisper

    engine = TorchWhisper(tiny_ts)
    engine.positions = positions
    rng = np.random.default_rng(1)
    state = engine.encode(engine.features([(0.1 * rng.standard_normal(16000)).astype(np.float32)]))
    prompt = [int(t) for t in rng.integers(3, NO_TS, decoding.PREFILL_CHUNK + 5)]
    calls, projected = [], []
    step = engine.step

    def counted(tokens, st, **kw):
        logits, after = step(tokens, st, **kw)
        calls.append(tokens.shape[1])
        projected.append(logits.shape[1])
        return logits, after

    engine.step = counted
    first, after = decoding.prefill(engine, state, np.asarray([prompt]))
    assert after[1][0].shape[2] == len(prompt)
    assert (calls, projected) == (([len(prompt)], [1]) if positions else ([decoding.PREFILL_CHUNK, 5],) * 2)
    whole, _ = step(np.asarray([prompt]), state)
    np.testing.assert_allclose(first, whole[:, -1], atol=1e-5)
    at = decoding.PREFILL_CHUNK + 2  # the logits of one position inside a later chunk (the no-speech probability's)
    calls.clear(), projected.clear()
    last, _, kept = decoding.prefill(engine, state, np.asarray([prompt]), at=at)
    assert projected == ([2] if positions else [decoding.PREFILL_CHUNK, 5])
    np.testing.assert_allclose(kept, whole[:, at], atol=1e-5)
    np.testing.assert_allclose(last, whole[:, -1], atol=1e-5)

    vocab = decoding.Vocab(eot=2, sot_prompt=(1,), no_timestamps=NO_TS, timestamp_begin=NO_TS + 1)
    calls.clear()
    engine.step = lambda tokens, st, **kw: (calls.append(tokens.shape), step(tokens, st, **kw))[1]
    decoding.decode(engine, state, 1, prompt, vocab, decoding.DecodingOptions(beam_size=3, max_new_tokens=2))
    once = [(1, len(prompt)), (3, 1)] if positions else [(1, decoding.PREFILL_CHUNK), (1, 5), (3, 1)]
    assert calls[: len(once)] == once  # the prompt once, then 3 beams
    results, chunk = {}, decoding.PREFILL_CHUNK
    for size in (chunk, 10**6):
        monkeypatch.setattr(decoding, "PREFILL_CHUNK", size)
        results[size] = [
            [
                h.tokens
                for h in decoding.decode(
                    engine,
                    state,
                    1,
                    prompt[:-1],
                    vocab,
                    decoding.DecodingOptions(beam_size=beams, max_new_tokens=3),
                    prefix=prompt[-1:],
                )
            ]
            for beams in (1, 3)
        ]
    assert results[chunk] == results[10**6] and all(results[chunk])


@pytest.mark.parametrize("positions", [False, True])
def test_no_speech_probability_is_read_after_the_start_token(tiny_ts, positions):
    """openai/whisper's measure: softmax of the logits at <|startoftranscript|>'s position,
    wherever the previous-text prompt puts it, at P(<|nospeech|>) = id of <|notimestamps|> - 1."""
    from adaptwin.runtime import decoding
    from adaptwin.runtime.torch_engine import TorchWhisper

    engine = TorchWhisper(tiny_ts)
    engine.positions = positions
    vocab = decoding.Vocab.from_generation_config(engine.generation_config)
    assert vocab.no_speech == NO_TS - 1
    rng = np.random.default_rng(2)
    state = engine.encode(engine.features([(0.1 * rng.standard_normal(16000)).astype(np.float32)] * 2))
    prompt = vocab.prompt(False, [int(t) for t in rng.integers(3, NO_TS - 1, decoding.PREFILL_CHUNK - 1)], 0)
    hyps = decoding.decode(engine, state, 2, prompt, vocab, decoding.DecodingOptions(max_new_tokens=3))
    logits, _ = engine.step(np.tile(np.asarray(prompt), (2, 1)), state)
    sot = prompt.index(vocab.sot_prompt[0])
    assert sot >= decoding.PREFILL_CHUNK  # read from a later prefill chunk (without ``positions``)
    expect = np.exp(decoding._log_softmax(logits[:, sot])[:, vocab.no_speech])
    np.testing.assert_allclose([h.no_speech_prob for h in hyps], expect, rtol=1e-4)
    assert hyps[0].avg_logprob == pytest.approx(hyps[0].logprob / (len(hyps[0].tokens) + 1))


def dynamic(loaded, bucket=0.2, margin=0.1):
    """A copy of ``loaded`` whose config says it was adapted for a dynamic audio context."""
    from adaptwin.models.context import AudioContext

    model = copy.deepcopy(loaded.model)
    model.config.adaptwin = {"context": AudioContext(bucket, margin).to_dict()}
    return LoadedWhisper(model, loaded.processor, loaded.path)


def recording_encoder(backend):
    frames = []
    encode = backend.engine.encode
    backend.engine.encode = lambda feats: (frames.append(feats.shape[-1]), encode(feats))[1]
    return frames


def test_the_encoder_sees_the_audio_length_only_with_a_dynamic_context(tiny_ts):
    """The tiny window is 1 s (100 frames): a dynamic model's encoder gets the batch's longest
    clip plus its margin, in whole buckets; every other model (or --context full) the window."""
    from adaptwin.runtime import get_backend

    rng = np.random.default_rng(2)
    short, longer = (0.1 * rng.standard_normal(int(s * 16000)).astype(np.float32) for s in (0.3, 0.65))
    plain = get_backend("torch", tiny_ts)
    seen = recording_encoder(plain)
    plain.generate([short], max_new_tokens=2)
    assert seen == [100]
    auto = get_backend("torch", dynamic(tiny_ts), margin=0.0)  # the model's own margin
    full, wide = get_backend("torch", dynamic(tiny_ts), "full"), get_backend("torch", dynamic(tiny_ts), margin=0.3)
    seen, seen_full, seen_wide = recording_encoder(auto), recording_encoder(full), recording_encoder(wide)
    auto.generate([short], max_new_tokens=2)  # 0.3 s + 0.1 s -> 0.4 s
    auto.generate([short, longer], max_new_tokens=2)  # 0.65 s + 0.1 s -> 0.8 s
    auto.generate([np.concatenate([longer, longer])], max_new_tokens=2)  # longer than the window
    full.generate([short], max_new_tokens=2)
    wide.generate([short], max_new_tokens=2)  # 0.3 s + a run margin of 0.3 s -> 0.6 s
    assert seen == [40, 80, 100] and seen_full == [100] and seen_wide == [60]


def test_streaming_with_a_dynamic_context_commits_every_word_once(tiny_ts, tmp_path):
    """Each decode's encoder sees the buffer, not the window; PyTorch and the ONNX export (its
    frame axis dynamic) stream the same words; no word is committed twice."""
    pytest.importorskip("onnxruntime")
    from adaptwin.export import ExportOptions, export
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.ort import OrtWhisper

    loaded = dynamic(tiny_ts)
    audio = tone_bursts()
    backend = get_backend("torch", loaded)
    frames = recording_encoder(backend)
    emitted, windows = stream(backend, audio)
    assert emitted and min(frames) < 100 and set(frames) <= {20, 40, 60, 80, 100}
    assert len({(e.word.text, e.word.start) for e in emitted}) == len(emitted)  # each word once
    assert [e.stream_time for e in emitted] == sorted(e.stream_time for e in emitted)
    folder = export(loaded, tmp_path / "onnx", ExportOptions(validate=False)).out
    ort_backend = StepperBackend(OrtWhisper(folder, processor=tiny_ts.processor), "ort")
    ort_frames = recording_encoder(ort_backend)
    emitted_ort, _ = stream(ort_backend, audio)
    assert ort_frames == frames
    assert [e.word.text for e in emitted_ort] == [e.word.text for e in emitted]


def test_previous_text_gives_way_so_prompt_prefix_and_new_tokens_fit(tiny_ts):
    """The decoder has max_target_positions slots (40 here, 448 in Whisper) for the previous
    text, the start sequence, the forced prefix and the new tokens: a long context is cut from
    the left instead of overflowing the positional table; a prefix that leaves no room is a
    clear error."""
    from adaptwin.errors import InvalidInput
    from adaptwin.runtime import get_backend

    backend = get_backend("torch", tiny_ts)
    positions = tiny_ts.model.config.max_target_positions
    audio = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    seen = []
    step = backend.engine.step
    backend.engine.step = lambda tokens, st, **kw: (
        seen.append((st[1][0].shape[2] if st[1] else 0) + tokens.shape[1]),  # positions used after this call
        step(tokens, st, **kw),
    )[1]
    previous, prefix = list(range(3, 40)) * 3, [5, 6, 7] * 6  # 111 + 18 tokens: more than 40 positions
    (hyp,) = backend.generate([audio], timestamps=True, previous=previous, prefix=prefix, max_new_tokens=30)
    assert hyp.tokens[: len(prefix)] == prefix
    assert max(seen) <= positions  # every step stayed inside the positional table
    with pytest.raises(InvalidInput, match="prefix"):
        backend.generate([audio], timestamps=True, prefix=[5] * positions)


def test_ort_sessions_do_not_spin(tiny_ts, tmp_path):
    """Idle pool threads of the encoder and decoder sessions must not spin: beside Python's
    thread they outnumber a small CPU's cores and slow every step."""
    pytest.importorskip("onnxruntime")
    from adaptwin.export import ExportOptions, export
    from adaptwin.runtime.ort import OrtWhisper

    engine = OrtWhisper(export(tiny_ts, tmp_path / "onnx", ExportOptions(validate=False)).out, threads=2)
    for session in (engine.encoder, engine.decoder, engine.session("decoder_model.onnx")):
        assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


LANGUAGES = {"<|en|>": 50, "<|de|>": 51, "<|fr|>": 52}


@pytest.fixture(scope="module")
def tiny_multi(tiny_ts):
    """``tiny_ts`` with a multilingual vocabulary: three language tokens and the task tokens."""
    model = copy.deepcopy(tiny_ts.model)
    gen = model.generation_config
    gen.is_multilingual, gen.lang_to_id, gen.task_to_id = True, dict(LANGUAGES), {"transcribe": 53, "translate": 54}
    return LoadedWhisper(model, tiny_ts.processor, tiny_ts.path)


def noise_clips(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(12000)).astype(np.float32) for _ in range(n)]


def test_language_detection_reads_the_language_tokens_after_the_start_token(tiny_multi, tiny_ts):
    """openai/whisper's detection: softmax over the language tokens alone of the decoder's
    logits after <|startoftranscript|>; an English-only model says English."""
    from adaptwin.runtime import decoding, get_backend

    backend = get_backend("torch", tiny_multi)
    clips = noise_clips(2)
    state = backend.engine.encode(backend.engine.features(clips))
    logits, _ = backend.engine.step(np.asarray([[1], [1]]), state)
    probs = np.exp(decoding._log_softmax(logits[:, -1, list(LANGUAGES.values())]))
    names = [c[2:-2] for c in LANGUAGES]
    expect = [(names[int(p.argmax())], float(p.max())) for p in probs]
    got = backend.detect_language(clips)
    assert [c for c, _ in got] == [c for c, _ in expect]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in expect], rtol=1e-5)
    assert get_backend("torch", tiny_ts).detect_language(clips) == [("en", 1.0)] * 2


@pytest.mark.parametrize("engine", ["torch", "ort"])
def test_clips_without_a_language_decode_as_with_their_detected_one(tiny_multi, monkeypatch, tmp_path, engine):
    """generate(language=None) detects each clip's language, decodes clips of one language
    together and the others from their rows of the encoder output: every hypothesis equals the
    decode of its clip alone with that language given."""
    from adaptwin.runtime import backends, get_backend

    if engine == "ort":
        pytest.importorskip("onnxruntime")
        from adaptwin.export import ExportOptions, export
        from adaptwin.runtime.ort import OrtWhisper

        folder = export(tiny_multi, tmp_path / "onnx", ExportOptions(validate=False)).out
        backend = StepperBackend(OrtWhisper(folder, processor=tiny_multi.processor), "ort")
    else:
        backend = get_backend("torch", tiny_multi)
    clips = noise_clips(3)
    # the random model hears one language in all noise: make it hear de, fr, de (in the
    # engine's order of the language tokens: a saved generation config sorts them)
    order = list(backends.language_tokens(backend.engine.generation_config))
    wanted = [{"de": 0.7, "fr": 0.2}, {"fr": 0.7, "de": 0.2}, {"de": 0.6, "fr": 0.2}]
    fixed = np.asarray([[w.get(code, 0.1) for code in order] for w in wanted])
    monkeypatch.setattr(backends, "language_probs", lambda *a, **k: fixed)
    hyps = backend.generate(clips, language=None, max_new_tokens=4)
    assert [(h.language, h.language_prob) for h in hyps] == [("de", 0.7), ("fr", 0.7), ("de", 0.6)]
    for clip, hyp in zip(clips, hyps):
        alone = backend.generate([clip], language=hyp.language, max_new_tokens=4)[0]
        assert alone.tokens == hyp.tokens and alone.language == hyp.language and alone.language_prob is None
    with pytest.raises(InvalidInput, match="not one of this model's languages"):
        backend.generate(clips, language="xx")


def test_the_facade_detects_once_before_decoding_and_says_so(tiny_multi):
    from adaptwin.runtime.whisper import Whisper

    clip = noise_clips(1)[0]
    model = Whisper(tiny_multi, language=None, gate=None)
    segments, info = model.transcribe(clip)
    expect = model.backend.detect_language([clip])[0]
    assert (info.language, info.language_probability) == (expect[0], pytest.approx(expect[1]))
    list(segments)
    _, given = Whisper(tiny_multi, language="fr", gate=None).transcribe(clip)
    assert (given.language, given.language_probability) == ("fr", None)
    with pytest.raises(InvalidInput, match="not one of this model's languages"):
        Whisper(tiny_multi, language="xx")


def test_a_stream_without_a_language_keeps_the_one_its_first_words_were_heard_in(tiny_multi):
    from adaptwin.runtime import get_backend

    audio = tone_bursts()
    backend = get_backend("torch", tiny_multi)
    languages = []
    generate = backend.generate
    backend.generate = lambda audios, **kw: (languages.append(kw["language"]), generate(audios, **kw))[1]
    online = OnlineProcessor(backend, language=None, min_chunk=0.2, trim_after=0.5, max_buffer=0.9, pad=0.0)
    emitted = []
    for i in range(0, len(audio), 3200):
        online.insert_audio(audio[i : i + 3200])
        emitted += online.process()
    emitted += online.finish()
    assert emitted and online.language in {c[2:-2] for c in LANGUAGES}
    first = languages.index(online.language)  # given from the decode after the first commit on
    assert None in languages[:first] and set(languages[first:]) == {online.language}


def test_translation_puts_its_task_token_in_the_prompt(tiny_multi, monkeypatch):
    from adaptwin.runtime import backends, get_backend

    prompts = []
    decode = backends.decode

    def recording(engine, state, batch, prompt, *rest):
        prompts.append(prompt)
        return decode(engine, state, batch, prompt, *rest)

    monkeypatch.setattr(backends, "decode", recording)
    backend = get_backend("torch", tiny_multi)
    backend.generate(noise_clips(1), language="de", task="translate", max_new_tokens=2)
    backend.generate(noise_clips(1), language="de", max_new_tokens=2)
    assert prompts == [[1, LANGUAGES["<|de|>"], 54, NO_TS], [1, LANGUAGES["<|de|>"], 53, NO_TS]]
