import json

import pytest
from fake_whisper import FakeBackend, script_audio

from adaptwin.cli import main
from adaptwin.data.tts import write_wav
from adaptwin.runtime.streaming import DYNAMIC_CONTEXT_POLICY


@pytest.fixture
def fake_backend(monkeypatch):
    import adaptwin.cli.common as common

    monkeypatch.setattr(common, "backend", lambda args: FakeBackend())


def test_transcribe_long_file_to_srt_and_json(tmp_path, fake_backend, capsys):
    write_wav(tmp_path / "long.wav", script_audio(120, pause_every=8))
    assert main(["transcribe", str(tmp_path / "long.wav"), "--output", "srt"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1\n00:00:00,000 --> ") and " --> 00:01:" in out
    words = [w for line in out.splitlines() for w in line.split() if w.startswith("w")]
    assert words == [f"w{k}" for k in range(120)]
    assert (
        main(
            [
                "transcribe",
                str(tmp_path / "long.wav"),
                str(tmp_path / "long.wav"),
                "--output",
                "json",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "out" / "long.json").read_text())
    assert len(data["segments"]) >= 40 and not list((tmp_path / "out").glob(".*part"))


def test_transcribe_language_auto_detects_it(tmp_path, monkeypatch, capsys):
    import adaptwin.cli.common as common

    backend = FakeBackend()
    monkeypatch.setattr(common, "backend", lambda args: backend)
    write_wav(tmp_path / "a.wav", script_audio(6))
    assert main(["transcribe", str(tmp_path / "a.wav"), "--language", "auto"]) == 0
    assert capsys.readouterr().out.split() == [f"w{k}" for k in range(6)] and backend.detected == 1
    assert main(["transcribe", str(tmp_path / "a.wav"), "--language", "en"]) == 0 and backend.detected == 1


def test_transcribe_checks_every_file_first(tmp_path, fake_backend, capsys):
    write_wav(tmp_path / "ok.wav", script_audio(3))
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    assert main(["transcribe", str(tmp_path / "ok.wav"), str(tmp_path / "bad.wav")]) == 2
    captured = capsys.readouterr()
    assert "bad.wav" in captured.err and captured.out == ""


def test_stream_simulate_end_to_end(tmp_path, fake_backend, capsys):
    write_wav(tmp_path / "talk.wav", script_audio(25, pause_every=6))
    assert main(["stream", "--simulate", str(tmp_path / "talk.wav"), "--fast", "--vad", "none"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [f"w{k}" for k in range(25)]
    assert "median" in captured.err and "p90" in captured.err


class DynamicBackend(FakeBackend):
    def frames(self, audios, margin=None):
        return 200  # a model that learnt a dynamic context: a short clip gets a cut context


def _stream_options(monkeypatch, tmp_path, args) -> dict:
    """The policy of the processor ``adaptwin stream --simulate`` builds with ``args``."""
    import adaptwin.cli.stream as stream

    made = []
    real = stream.mic.simulate
    monkeypatch.setattr(stream.mic, "simulate", lambda online, *a, **kw: made.append(online) or real(online, *a, **kw))
    write_wav(tmp_path / "talk.wav", script_audio(10, pause_every=5))
    assert main(["stream", "--simulate", str(tmp_path / "talk.wav"), "--fast", "--vad", "none", *args]) == 0
    keys = ("min_chunk", "silence_flush", "forget", "trim_after", "hold", "confidence", "unsure_hold", "pad")
    return {k: getattr(made[0], k) for k in keys}


def test_stream_policy_options_reach_the_processor(tmp_path, fake_backend, monkeypatch, capsys):
    args = ["--chunk", "0.3", "--silence-flush", "0.4", "--forget", "2", "--trim-after", "6", "--hold", "0.2"]
    options = _stream_options(
        monkeypatch, tmp_path, [*args, "--confidence", "0.4", "--unsure-hold", "0.5", "--pad", "1"]
    )
    assert capsys.readouterr().out.split() == [f"w{k}" for k in range(10)]
    assert options == {
        "min_chunk": 0.3, "silence_flush": 0.4, "forget": 2.0, "trim_after": 6.0, "hold": 0.2, "confidence": 0.4,
        "unsure_hold": 0.5, "pad": 1.0,
    }  # fmt: skip


def test_stream_defaults_follow_the_model(tmp_path, monkeypatch, capsys):
    import adaptwin.cli.common as common

    monkeypatch.setattr(common, "backend", lambda args: FakeBackend())
    full = _stream_options(monkeypatch, tmp_path, [])
    assert full == {
        "min_chunk": 0.5,
        "silence_flush": 0.6,
        "forget": 0.6,
        "trim_after": 10.0,
        "hold": 0.0,
        "confidence": 0.0,
        "unsure_hold": 0.0,
        "pad": 5.0,
    }
    monkeypatch.setattr(common, "backend", lambda args: DynamicBackend())
    dynamic = _stream_options(monkeypatch, tmp_path, [])
    assert dynamic == {**full, **DYNAMIC_CONTEXT_POLICY}
    # a flush longer than the measured forget: the audio is forgotten at the flush
    assert _stream_options(monkeypatch, tmp_path, ["--silence-flush", "3"])["forget"] == 3.0
    assert _stream_options(monkeypatch, tmp_path, ["--chunk", "0.5"])["min_chunk"] == 0.5
    assert capsys.readouterr().out.split()[:10] == [f"w{k}" for k in range(10)]


def test_stream_mic_without_portaudio_is_a_clear_error(monkeypatch, capsys):
    import adaptwin.runtime.mic as mic

    def missing():
        from adaptwin.errors import MissingDependency

        raise MissingDependency("sounddevice cannot find the PortAudio library: apt-get install libportaudio2")

    monkeypatch.setattr(mic, "import_sounddevice", missing)
    assert main(["stream", "--mic"]) == 2
    assert "libportaudio2" in capsys.readouterr().err
