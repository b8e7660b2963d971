import json

import pytest
from fake_whisper import FakeBackend, script_audio

from adaptwin.cli import main
from adaptwin.data.tts import write_wav
from adaptwin.runtime.streaming import OnlineProcessor


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


def test_stream_policy_options_reach_the_processor(tmp_path, fake_backend, monkeypatch, capsys):
    import adaptwin.cli.stream as stream

    made = []
    monkeypatch.setattr(stream, "OnlineProcessor", lambda *a, **kw: made.append(kw) or OnlineProcessor(*a, **kw))
    write_wav(tmp_path / "talk.wav", script_audio(10, pause_every=5))
    args = ["--silence-flush", "0.4", "--forget", "2", "--trim-after", "6", "--hold", "0.2", "--pad", "1"]
    assert main(["stream", "--simulate", str(tmp_path / "talk.wav"), "--fast", "--vad", "none", *args]) == 0
    assert capsys.readouterr().out.split() == [f"w{k}" for k in range(10)]
    options = {k: made[0][k] for k in ("silence_flush", "forget", "trim_after", "hold", "pad")}
    assert options == {"silence_flush": 0.4, "forget": 2.0, "trim_after": 6.0, "hold": 0.2, "pad": 1.0}


def test_stream_mic_without_portaudio_is_a_clear_error(monkeypatch, capsys):
    import adaptwin.runtime.mic as mic

    def missing():
        from adaptwin.errors import MissingDependency

        raise MissingDependency("sounddevice cannot find the PortAudio library: apt-get install libportaudio2")

    monkeypatch.setattr(mic, "import_sounddevice", missing)
    assert main(["stream", "--mic"]) == 2
    assert "libportaudio2" in capsys.readouterr().err
