import json

import numpy as np
import pytest

import adaptwin
from adaptwin.cli import main
from adaptwin.data.tts import write_wav
from adaptwin.errors import InvalidInput
from adaptwin.models.context import RUN_MARGIN


@pytest.fixture
def saved_dense(model, tmp_path):
    return adaptwin.save(model, tmp_path / "dense")


def test_compress_and_info(saved_dense, tmp_path, capsys):
    out = tmp_path / "c"
    assert (
        main(
            [
                "compress",
                "--model",
                str(saved_dense),
                "--scope",
                "all",
                "--rank-qk",
                "8",
                "--rank-vo",
                "12",
                "--out",
                str(out),
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["params_after"]["total"] < report["params_before"]["total"]
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "qk=8 vo=12" in text and f"adaptwin format {adaptwin.FORMAT_VERSION}" in text
    assert "audio context: full 30 s windows" in text


def test_decoding_commands_pass_the_context_choice(monkeypatch, tmp_path):
    import adaptwin.cli.common as common

    seen = []

    def fake(name, model, context="auto", margin=None, **kwargs):
        seen.append((context, margin))
        raise InvalidInput("stop here")

    monkeypatch.setattr(common, "get_backend", fake)
    write_wav(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32))
    assert main(["transcribe", str(tmp_path / "a.wav"), "--context", "full"]) == 2
    assert main(["transcribe", str(tmp_path / "a.wav"), "--run-margin", "3"]) == 2
    assert seen == [("full", RUN_MARGIN), ("auto", 3.0)]
    with pytest.raises(SystemExit):  # streaming hears its --pad instead of a run margin
        main(["stream", "--simulate", str(tmp_path / "a.wav"), "--run-margin", "3"])
    with pytest.raises(SystemExit):
        main(["transcribe", str(tmp_path / "a.wav"), "--context", "short"])


def test_errors_are_reported_not_raised(saved_dense, tmp_path, capsys):
    assert main(["compress", "--model", str(saved_dense), "--budget", "0.6", "--out", str(tmp_path / "x")]) == 2
    assert "--ffn" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["compress", "--model", str(saved_dense), "--rank-qk", "99", "--out", str(tmp_path / "x")]) == 2
    assert "head width" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing")]) == 2
