import json
import wave

import numpy as np
import pytest

from adaptwin.audio import load_audio
from adaptwin.data import WINDOW_SECONDS, pack_windows, read_utterances


def write_wav(path, seconds=1.0, rate=16000, channels=1, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(np.repeat(x[:, None], channels, axis=1).tobytes())
    return path


def test_load_audio_resamples_stereo_8k(tmp_path):
    audio = load_audio(write_wav(tmp_path / "a.wav", 2.0, rate=8000, channels=2, freq=300))
    assert audio.dtype == np.float32 and abs(len(audio) - 32000) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 300) < 2  # the tone survives at its frequency


def test_bad_audio_errors_name_the_file(tmp_path):
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(ValueError, match="text.wav"):
        load_audio(tmp_path / "text.wav")
    with wave.open(str(tmp_path / "empty.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    with pytest.raises(ValueError, match="no audio samples"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "missing.wav")


def test_manifest_paths_resolve_against_the_manifest(tmp_path):
    (tmp_path / "clips").mkdir()
    write_wav(tmp_path / "clips" / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "clips/a.wav", "text": "hello", "speaker": "s1"}) + "\n\n")
    (utt,) = read_utterances(manifest)
    assert utt.audio == tmp_path / "clips" / "a.wav" and utt.text == "hello" and utt.speaker == "s1"
    manifest.write_text('{"text": "no audio"}\n')
    with pytest.raises(ValueError, match="m.jsonl:1"):
        read_utterances(manifest)


def test_folder_reader_pairs_transcripts(tmp_path):
    write_wav(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("hello world\n")
    write_wav(tmp_path / "b.wav")
    utts = read_utterances(tmp_path)
    assert [(u.audio.name, u.text) for u in utts] == [("a.wav", "hello world"), ("b.wav", None)]


def test_pack_windows_bounds_length_and_skips_bad_files(tmp_path, caplog):
    files = [write_wav(tmp_path / f"{i}.wav", 7.0) for i in range(6)]
    (tmp_path / "bad.wav").write_text("corrupt")
    from adaptwin.data import Utterance

    utts = [Utterance(f, f"utt {i}") for i, f in enumerate(files)] + [Utterance(tmp_path / "bad.wav", "x")]
    windows = pack_windows(utts)
    assert len(windows) == 2  # 4 x 7 s + gaps fit in 30 s, the remaining 2 in a second window
    assert all(len(a) <= WINDOW_SECONDS * 16000 for a, _ in windows)
    assert windows[0][1] == "utt 0 utt 1 utt 2 utt 3"
    assert "skipped 1 unreadable" in caplog.text
