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


def test_stream_commits_every_word_once():
    online = adaptwin.Whisper(FakeBackend()).stream(chunk=0.5, vad="none")
    words = [e.word.key for e, _ in simulate(online, script_audio(20, pause_every=5))]
    assert words == [f"w{k}" for k in range(20)]
