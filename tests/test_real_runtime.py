"""The runtime on the real tiny.en weights: export + ONNX Runtime, long-form seams, streaming (slow)."""

import numpy as np
import pytest

import adaptwin
from adaptwin.audio import load_audio
from adaptwin.data import bundled_clips
from adaptwin.evaluate import wer_counts

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")


def weights(name: str):
    try:
        return adaptwin.load_whisper(name)
    except FileNotFoundError as exc:
        pytest.skip(f"weights not installed: {exc}")


@pytest.fixture(scope="module")
def tiny_en():
    return weights("tiny.en")


@pytest.fixture(scope="module")
def long_clip():
    """The five bundled clips twice, with 0.8 s pauses: ~57 s, so long-form needs two windows or more."""
    clips = bundled_clips() * 2
    pause = np.zeros(12800, np.float32)
    audio = np.concatenate([x for c in clips for x in (load_audio(c.audio), pause)])
    return audio, " ".join(c.text for c in clips)


@pytest.fixture(scope="module")
def exported(tiny_en, tmp_path_factory):
    from adaptwin.export import ExportOptions, export

    out = tmp_path_factory.mktemp("tiny-en") / "int8"
    report = export(tiny_en, out, ExportOptions(precision="int8"))
    assert report.validation.ok
    return out


def test_ort_int8_transcribes_like_pytorch(tiny_en, exported):
    from adaptwin.runtime import get_backend

    clips = [load_audio(c.audio) for c in bundled_clips()]
    texts = {
        name: get_backend(name, src).transcribe_batch(clips) for name, src in (("torch", tiny_en), ("ort", exported))
    }
    refs = [c.text for c in bundled_clips()]
    wer = {
        name: sum(wer_counts(r, h).errors for r, h in zip(refs, t)) / sum(wer_counts(r, r).ref_words for r in refs)
        for name, t in texts.items()
    }
    assert wer["torch"] < 0.2 and wer["ort"] <= wer["torch"] + 0.05, wer


def test_long_form_covers_every_window_once(tiny_en, long_clip):
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.longform import transcribe

    audio, reference = long_clip
    segments = list(transcribe(get_backend("torch", tiny_en), audio))
    text = " ".join(s.text for s in segments)
    a = wer_counts(reference, text)
    assert a.errors / a.ref_words < 0.2, text  # nothing dropped or doubled at the 30 s seam
    assert segments[-1].end > 50 and all(x.start <= y.start for x, y in zip(segments, segments[1:]))


def test_stream_simulate_on_real_speech(exported, long_clip, tmp_path, capsys):
    from adaptwin.cli import main
    from adaptwin.data.tts import write_wav

    audio, reference = long_clip
    write_wav(tmp_path / "talk.wav", audio)
    assert (
        main(
            ["stream", "--simulate", str(tmp_path / "talk.wav"), "--model", str(exported), "--backend", "ort", "--fast"]
        )
        == 0
    )
    out = capsys.readouterr()
    a = wer_counts(reference, out.out)
    assert a.errors / a.ref_words < 0.25, out.out
    assert "median" in out.err


def _noises():
    """30 s of white and pink noise at -60, -40 and -20 dBFS, and 10 minutes of digital silence."""
    rng = np.random.default_rng(0)
    n = 30 * 16000
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)
    out = {"silence-10min": np.zeros(600 * 16000, np.float32)}
    for name, x in (("white", rng.standard_normal(n)), ("pink", pink)):
        for db in (-60, -40, -20):
            out[f"{name}{db}"] = (x / np.sqrt(np.mean(x**2)) * 10 ** (db / 20)).astype(np.float32)
    return out


@pytest.mark.parametrize("engine, vad", [("torch", "auto"), ("ort", "auto"), ("ort", "none")])
def test_no_words_from_silence_or_noise(tiny_en, exported, engine, vad):
    """With the VAD off, the decoder's no-speech rule alone must keep every clip empty
    (torch runs the same decoding code: benchmarks/no_speech.py measures it there too)."""
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.gate import NoSpeechGate
    from adaptwin.runtime.longform import transcribe

    backend = get_backend(engine, tiny_en if engine == "torch" else exported)
    gate = NoSpeechGate(vad=vad)
    for name, audio in _noises().items():
        assert list(transcribe(backend, audio, gate=gate)) == [], name
        assert backend.transcribe_batch([audio[: 30 * 16000]], gate=gate) == [""], name


def test_no_speech_gate_keeps_clipped_and_quiet_speech(tiny_en):
    from adaptwin.runtime import get_backend

    backend = get_backend("torch", tiny_en)
    clip = bundled_clips()[0]
    audio = load_audio(clip.audio)
    loud = np.clip(audio * 20, -1, 1)  # hard clipping
    quiet = audio * 10 ** (-30 / 20)
    for text in backend.transcribe_batch([audio, loud, quiet]):
        assert wer_counts(clip.text, text).errors / max(1, len(clip.text.split())) < 0.5, text


@pytest.fixture(scope="module")
def base():
    return weights("base")


def test_base_detects_english_and_an_english_only_model_says_english(base, tiny_en):
    from adaptwin.runtime import Whisper

    clip = load_audio(bundled_clips()[0].audio)
    segments, info = Whisper(base, language=None).transcribe(clip)
    assert info.language == "en" and info.language_probability > 0.9
    a = wer_counts(bundled_clips()[0].text, " ".join(s.text for s in segments))
    assert a.errors / a.ref_words < 0.2
    _, info = Whisper(tiny_en, language=None).transcribe(clip)
    assert (info.language, info.language_probability) == ("en", 1.0)


def test_base_detects_german_speech(base, tmp_path):
    """espeak-ng's German voice (Debian's espeak-ng, as `adaptwin data build` uses): detected,
    then decoded in German."""
    import shutil
    import subprocess

    from adaptwin.runtime import get_backend

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    text = "Guten Morgen. Heute ist das Wetter schön, und wir gehen in den Park spazieren."
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(tmp_path / "de.wav"), text], check=True)
    backend = get_backend("torch", base)
    clip = load_audio(tmp_path / "de.wav")
    [(detected, probability)] = backend.detect_language([clip])
    assert detected == "de" and probability > 0.5
    [hyp] = backend.generate([clip], language=None)
    text = backend.engine.processor.tokenizer.decode(hyp.tokens, skip_special_tokens=True)
    assert hyp.language == "de" and "Guten Morgen" in text
