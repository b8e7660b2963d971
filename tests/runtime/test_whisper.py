"""The facade: ``Whisper(model).transcribe(audio) -> (segments, info)`` and ``.stream()``."""

import numpy as np
import pytest
from fake_whisper import HALLUCINATION, FakeBackend, script_audio

import adaptwin
from adaptwin.audio import SAMPLE_RATE
from adaptwin.data.tts import write_wav
from adaptwin.runtime.mic import simulate


def test_transcribe_a_file_lazily_with_info(tmp_path):
    write_wav(tmp_path / "talk.wav", script_audio(40, pause_every=9))
    backend = FakeBackend()
    segments, info = adaptwin.Whisper(backend).transcribe(tmp_path / "talk.wav")
    assert backend.calls == []  # nothing decoded before the first segment is asked for
    assert info.duration == pytest.approx(len(script_audio(40, pause_every=9)) / SAMPLE_RATE, abs=1e-3)
    assert info.backend == "fake" and info.no_speech_gate
    words = " ".join(s.text for s in segments).split()
    assert words == [f"w{k}" for k in range(40)]


def test_silence_gives_no_segment_and_the_gate_can_be_turned_off():
    silence_and_noise = np.concatenate([np.zeros(5 * SAMPLE_RATE), np.full(5 * SAMPLE_RATE, -0.5)]).astype(np.float32)
    segments, _ = adaptwin.Whisper(FakeBackend(hallucinate=True)).transcribe(silence_and_noise)
    assert list(segments) == []
    segments, info = adaptwin.Whisper(FakeBackend(hallucinate=True), gate=None).transcribe(silence_and_noise)
    assert f"w{HALLUCINATION - 10}" in " ".join(s.text for s in segments) and not info.no_speech_gate


def test_options_fail_before_decoding():
    with pytest.raises(ValueError, match="beam_size"):
        adaptwin.Whisper(FakeBackend()).transcribe(np.zeros(16000, np.float32), beams=0)


def test_initial_prompt_reaches_the_first_window_and_conditioning_carries_it_on():
    """openai/whisper's initial prompt: the previous text of the first window; with
    condition_on_previous_text the windows after it see it too, followed by their text."""
    from fake_whisper import FakeTokenizer

    audio = script_audio(120, pause_every=8)  # several 30 s windows
    prompt = FakeTokenizer().encode("w500 w501")
    for condition in (True, False):
        backend = FakeBackend()
        segments, _ = adaptwin.Whisper(backend, gate=None).transcribe(
            audio, initial_prompt=" w500 w501 ", condition_on_previous_text=condition
        )
        assert " ".join(s.text for s in segments).split() == [f"w{k}" for k in range(120)]
        assert len(backend.previous) > 2 and backend.previous[0] == prompt
        later = [p for p in backend.previous[1:] if p]
        assert (later and all(p[:2] == prompt for p in later)) if condition else not later


def test_translation_needs_a_multilingual_model_and_fails_before_decoding():
    backend = FakeBackend()  # English-only
    with pytest.raises(ValueError, match="English-only model cannot translate"):
        adaptwin.Whisper(backend).transcribe(script_audio(3), task="translate")
    with pytest.raises(ValueError, match="task='summarise'"):
        adaptwin.Whisper(backend).transcribe(script_audio(3), task="summarise")
    assert backend.calls == []


def test_stream_commits_every_word_once():
    online = adaptwin.Whisper(FakeBackend()).stream(chunk=0.5, vad="none")
    words = [e.word.key for e, _ in simulate(online, script_audio(20, pause_every=5))]
    assert words == [f"w{k}" for k in range(20)]
