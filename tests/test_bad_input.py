"""Bad input, across commands: each case is a clear one-line error naming the problem and
its fix (exit 2), or the right empty result (exit 0); never a traceback, a hang or a
half-written output. Runs on a tiny random model that uses tiny.en's tokenizer."""

import json
import math
import os
import struct
import sys
import wave

import numpy as np
import pytest

from adaptwin.cli import main

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch
    from conftest import tiny_config
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    import adaptwin

    try:
        real = adaptwin.load_whisper("tiny.en")
    except FileNotFoundError as exc:
        pytest.skip(f"needs the tiny.en tokenizer from the models extra: {exc}")
    torch.manual_seed(0)
    cfg = tiny_config(
        vocab_size=51864,
        decoder_start_token_id=50257,
        eos_token_id=50256,
        pad_token_id=50256,
        bos_token_id=50256,
        max_target_positions=448,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    model.generation_config = real.model.generation_config
    processor = real.processor
    processor.feature_extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    return adaptwin.save(model, tmp_path_factory.mktemp("bad") / "tiny", processor)


@pytest.fixture
def run(capsys):
    """main(argv) -> (exit code, stdout, the last line of stderr); no traceback allowed."""

    def call(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        return code, out, lines[-1] if lines else ""

    return call


def _error(result, *words):
    code, _, last = result
    assert code == 2, result
    assert ": error: " in last, last
    for w in words:
        assert w.lower() in last.lower(), (w, last)


def _wav(path, audio, rate=SR, channels=1):
    audio = np.asarray(audio, np.float32).reshape(-1, channels) if channels > 1 else np.asarray(audio, np.float32)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _float_wav(path, audio):
    """IEEE-float WAV (format 3), which can hold NaN and inf."""
    data = np.asarray(audio, "<f4").tobytes()
    header = (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 3, 1, SR, SR * 4, 4, 32)
    )
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)
    return path


def _tone(seconds=1.0, rate=SR):
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * math.pi * 220 * t)


# --- audio files: transcribe ---------------------------------------------------------


def test_missing_audio_file(run, model_dir, tmp_path):
    _error(run("transcribe", tmp_path / "nope.wav", "--model", model_dir), "nope.wav", "does not exist")


def test_empty_audio_file(run, model_dir, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    _error(run("transcribe", tmp_path / "empty.wav", "--model", model_dir), "empty.wav", "0 bytes")


def test_truncated_wav(run, model_dir, tmp_path):
    data = _wav(tmp_path / "full.wav", _tone()).read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:30])
    _error(run("transcribe", tmp_path / "cut.wav", "--model", model_dir), "cut.wav", "corrupt or not audio")


def test_text_file_as_audio(run, model_dir, tmp_path):
    (tmp_path / "notes.wav").write_text("these are my notes, not audio\n" * 20)
    _error(run("transcribe", tmp_path / "notes.wav", "--model", model_dir), "notes.wav", "not audio")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(run, model_dir, tmp_path, bad):
    audio = _tone().astype(np.float32)
    audio[100] = bad
    _error(
        run("transcribe", _float_wav(tmp_path / "nan.wav", audio), "--model", model_dir), "nan.wav", "NaN or infinite"
    )


def test_bad_file_among_good_ones_fails_before_any_decoding(run, model_dir, tmp_path):
    good = _wav(tmp_path / "good.wav", _tone())
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    code, out, last = run("transcribe", good, tmp_path / "bad.wav", "--model", model_dir)
    assert code == 2 and out == "" and "bad.wav" in last


@pytest.mark.parametrize("rate", [1000, 8000, 44100, 192000])
def test_any_sample_rate_is_resampled(run, model_dir, tmp_path, rate):
    code, _, _ = run("transcribe", _wav(tmp_path / f"r{rate}.wav", _tone(rate=rate), rate=rate), "--model", model_dir)
    assert code == 0


@pytest.mark.parametrize("channels", [2, 6])
def test_many_channels_are_mixed_down(run, model_dir, tmp_path, channels):
    audio = np.repeat(_tone()[:, None], channels, axis=1)
    code, _, _ = run("transcribe", _wav(tmp_path / "multi.wav", audio, channels=channels), "--model", model_dir)
    assert code == 0


def test_one_millisecond_clip_is_an_empty_transcript(run, model_dir, tmp_path):
    code, out, _ = run("transcribe", _wav(tmp_path / "blip.wav", _tone(0.001)), "--model", model_dir)
    assert code == 0 and out.strip() == ""


def test_ten_minutes_of_digital_silence(run, model_dir, tmp_path, caplog):
    path = _wav(tmp_path / "silence.wav", np.zeros(10 * 60 * SR))
    code, out, _ = run("transcribe", path, "--model", model_dir, "--output", "json")
    assert code == 0 and json.loads(out)["segments"] == [] and "silent" in caplog.text


def test_silent_file_in_eval_scores_as_empty(run, model_dir, tmp_path):
    path = _wav(tmp_path / "quiet.wav", np.zeros(SR))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": str(path), "text": "hello there"}) + "\n")
    code, out, _ = run("eval", "--model", model_dir, "--data", manifest, "--per-utterance", tmp_path / "u.jsonl")
    assert code == 0 and "WER 100.00 %" in out
    assert json.loads((tmp_path / "u.jsonl").read_text())["hypothesis"] == ""


def test_clipped_audio_is_accepted(run, model_dir, tmp_path):  # (real speech, clipped: tests/test_real_runtime.py)
    code, _, _ = run("transcribe", _wav(tmp_path / "clipped.wav", np.clip(20 * _tone(), -1, 1)), "--model", model_dir)
    assert code == 0


# --- streaming -------------------------------------------------------------------------


def test_stream_missing_file(run, model_dir, tmp_path):
    _error(run("stream", "--simulate", tmp_path / "gone.wav", "--model", model_dir), "gone.wav", "does not exist")


def test_stream_silent_file_commits_nothing(run, model_dir, tmp_path, capsys):
    code, out, _ = run(
        "stream", "--simulate", _wav(tmp_path / "s.wav", np.zeros(5 * SR)), "--model", model_dir, "--vad", "none"
    )
    assert code == 0 and out.strip() == ""


@pytest.mark.parametrize(
    "option",
    [
        ["--chunk", "0"],
        ["--chunk", "45"],
        ["--agreement", "0"],
        ["--silence-flush", "0"],
        ["--forget", "0.1"],
        ["--trim-after", "0"],
    ],
)
def test_stream_impossible_options(run, model_dir, tmp_path, option):
    _error(run("stream", "--simulate", _wav(tmp_path / "t.wav", _tone()), "--model", model_dir, *option))


def test_negative_run_margin(run, model_dir, tmp_path):
    _error(run("transcribe", _wav(tmp_path / "t.wav", _tone()), "--model", model_dir, "--run-margin", "-1"), "margin")


def test_silero_vad_without_faster_whisper(run, model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails
    _error(
        run("stream", "--simulate", _wav(tmp_path / "t.wav", _tone()), "--model", model_dir, "--vad", "silero"),
        "pip install faster-whisper",
    )


# --- model folders ---------------------------------------------------------------------


def test_unknown_model_name(run, tmp_path):
    _error(run("transcribe", _wav(tmp_path / "t.wav", _tone()), "--model", "no-such-model-xyz"), "could not find model")


def test_empty_model_folder(run, tmp_path):
    (tmp_path / "m").mkdir()
    _error(run("info", tmp_path / "m"), "neither a Hugging Face model folder")


def test_model_path_is_a_file(run, tmp_path):
    _error(run("info", _wav(tmp_path / "t.wav", _tone())), "is a file")


def test_config_is_not_json(run, model_dir, tmp_path):
    import shutil

    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{ this is not json")
    _error(run("info", broken), "config.json", "not valid JSON")


def test_truncated_weights(run, model_dir, tmp_path):
    import shutil

    broken = shutil.copytree(model_dir, tmp_path / "broken")
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    _error(run("info", broken), "model.safetensors", "truncated or corrupt")


def test_not_a_whisper_model(run, tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    _error(run("info", tmp_path / "bert"), "not Whisper")


def test_ort_backend_on_a_model_folder(run, model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    _error(
        run("transcribe", _wav(tmp_path / "t.wav", _tone()), "--model", model_dir, "--backend", "ort"),
        "adaptwin-export",
    )


def test_trt_backend_without_tensorrt(run, model_dir, tmp_path):
    if os.environ.get("CUDA_VISIBLE_DEVICES") or _has("tensorrt"):
        pytest.skip("this machine has TensorRT")
    code, _, last = run("transcribe", _wav(tmp_path / "t.wav", _tone()), "--model", model_dir, "--backend", "trt")
    assert code == 2 and ("TensorRT" in last or "CUDA" in last or "export" in last), last


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --- impossible options ----------------------------------------------------------------


@pytest.mark.parametrize(
    "option, words",
    [
        (["--budget", "1.5"], ["budget", "(0, 1)"]),
        (["--budget", "0"], ["budget"]),
        (["--rank-qk", "0"], ["rank_qk", "positive"]),
        (["--rank-qk", "999"], ["head width"]),
        (["--rank-ffn", "8"], ["--ffn"]),
    ],
)
def test_compress_impossible_options(run, model_dir, tmp_path, option, words):
    _error(run("compress", "--model", model_dir, *option, "--out", tmp_path / "out"), *words)
    assert not (tmp_path / "out").exists()


def test_compress_an_already_compressed_model(run, model_dir, tmp_path):
    assert run("compress", "--model", model_dir, "--rank-qk", "8", "--out", tmp_path / "c")[0] == 0
    _error(run("compress", "--model", tmp_path / "c", "--rank-qk", "8", "--out", tmp_path / "cc"), "already compressed")


def test_beams_must_be_positive(run, model_dir, tmp_path):
    _error(run("transcribe", _wav(tmp_path / "t.wav", _tone()), "--model", model_dir, "--beams", "0"), "beam_size")


def test_export_bad_opset(run, model_dir, tmp_path):
    pytest.importorskip("onnx")
    _error(run("export", model_dir, "--out", tmp_path / "x", "--opset", "99"), "opset")


def test_adapt_bad_duration(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse's own one-line usage error
        main(
            [
                "adapt",
                "--model",
                str(model_dir),
                "--teacher",
                str(model_dir),
                "--target",
                "t.jsonl",
                "--general",
                "g.jsonl",
                "--out",
                str(tmp_path / "a"),
                "--time-budget",
                "soon",
            ]
        )
    assert exc.value.code == 2 and "not a duration" in capsys.readouterr().err


def test_adapt_a_dense_model(run, model_dir, tmp_path):
    manifest = tmp_path / "t.jsonl"
    manifest.write_text(json.dumps({"audio": str(_wav(tmp_path / "t.wav", _tone())), "text": "hi", "split": "adapt"}))
    _error(
        run(
            "adapt",
            "--model",
            model_dir,
            "--teacher",
            model_dir,
            "--target",
            manifest,
            "--general",
            manifest,
            "--out",
            tmp_path / "a",
        ),
        "not compressed",
    )


# --- manifests -------------------------------------------------------------------------


def test_malformed_manifest_row(run, model_dir, tmp_path):
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "x"}\n{not json\n')
    _error(run("eval", "--model", model_dir, "--data", tmp_path / "m.jsonl"), "m.jsonl:2", "manifest row")


def test_manifest_row_without_audio_field(run, model_dir, tmp_path):
    (tmp_path / "m.jsonl").write_text('{"text": "x"}\n')
    _error(run("eval", "--model", model_dir, "--data", tmp_path / "m.jsonl"), "'audio' field")


def test_empty_manifest(run, model_dir, tmp_path):
    (tmp_path / "m.jsonl").write_text("\n")
    _error(run("eval", "--model", model_dir, "--data", tmp_path / "m.jsonl"), "no utterances")


def test_manifest_of_missing_files(run, model_dir, tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "gone.wav", "text": "x"}) + "\n")
    _error(run("eval", "--model", model_dir, "--data", tmp_path / "m.jsonl"), "could be scored")


def test_manifest_with_some_bad_files_skips_them(run, model_dir, tmp_path):
    good = _wav(tmp_path / "good.wav", _tone())
    rows = [{"audio": str(good), "text": "a tone"}, {"audio": "gone.wav", "text": "x"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _ = run("eval", "--model", model_dir, "--data", tmp_path / "m.jsonl", "--vad", "none")
    assert code == 0 and "on 1 utterances" in out and "skipped 1" in out


def test_folder_without_audio(run, model_dir, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "readme.txt").write_text("nothing here")
    _error(run("eval", "--model", model_dir, "--data", tmp_path / "d"), "no audio files")


def test_missing_manifest(run, model_dir, tmp_path):
    _error(run("eval", "--model", model_dir, "--data", tmp_path / "none.jsonl"), "none.jsonl")


# --- output folders ----------------------------------------------------------------------


def test_compress_refuses_a_folder_that_is_not_a_model(run, model_dir, tmp_path):
    mine = tmp_path / "my-documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    _error(run("compress", "--model", model_dir, "--rank-qk", "8", "--out", mine), "not a model or export folder")
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_compress_replaces_its_own_earlier_output(run, model_dir, tmp_path):
    assert run("compress", "--model", model_dir, "--rank-qk", "8", "--out", tmp_path / "c")[0] == 0
    assert run("compress", "--model", model_dir, "--rank-qk", "16", "--out", tmp_path / "c")[0] == 0
    assert json.loads((tmp_path / "c" / "config.json").read_text())["adaptwin"]["config"]["rank_qk"] == 16


def test_output_under_a_file(run, model_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    _error(run("compress", "--model", model_dir, "--rank-qk", "8", "--out", tmp_path / "file" / "c"), "not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_output_folder(run, model_dir, tmp_path):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        _error(run("compress", "--model", model_dir, "--rank-qk", "8", "--out", tmp_path / "ro" / "c"), "not writable")
    finally:
        os.chmod(tmp_path / "ro", 0o700)


def test_transcribe_to_an_unwritable_place_keeps_no_partial_file(run, model_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, last = run(
        "transcribe",
        _wav(tmp_path / "t.wav", _tone()),
        "--model",
        model_dir,
        "--vad",
        "none",
        "--out",
        tmp_path / "file" / "t.txt",
    )
    assert code == 2 and "error" in last and not list(tmp_path.glob("**/*.part"))


def test_interrupted_compress_leaves_nothing(run, model_dir, tmp_path, monkeypatch):
    from adaptwin.models import checkpoint

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", interrupted)
    code, _, last = run("compress", "--model", model_dir, "--rank-qk", "8", "--out", tmp_path / "c")
    assert code == 130 and "interrupted" in last and not list(tmp_path.iterdir())


# --- missing optional packages -------------------------------------------------------------


def test_export_without_onnx(run, model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    _error(run("export", model_dir, "--out", tmp_path / "x"), "pip install")
    assert not (tmp_path / "x").exists()


# --- a genuine bug is not dressed up as a user error -------------------------------------


def test_a_bug_asks_for_verbose_and_shows_its_traceback_there(model_dir, tmp_path, capsys, monkeypatch):
    import adaptwin.runtime.longform as longform

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(longform, "transcribe", broken)
    wav = str(_wav(tmp_path / "t.wav", _tone()))
    assert main(["transcribe", wav, "--model", str(model_dir)]) == 1
    err = capsys.readouterr().err
    assert "internal error (TypeError" in err and "-v" in err and "Traceback" not in err
    with pytest.raises(TypeError):
        main(["-v", "transcribe", wav, "--model", str(model_dir)])
