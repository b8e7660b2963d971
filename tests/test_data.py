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


def _ffmpeg_encode(src, dst, *args):
    import subprocess

    from adaptwin.audio import ffmpeg_binary

    exe = ffmpeg_binary()
    if exe is None:
        pytest.skip("no ffmpeg")
    proc = subprocess.run([exe, "-v", "error", "-y", "-i", str(src), *args, str(dst)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode {dst.suffix}: {proc.stderr[-200:]!r}")
    return dst


def test_float_48k_wav_and_compressed_formats(tmp_path):
    src = write_wav(tmp_path / "tone.wav", 1.0, rate=16000, freq=500)
    for name, args in (
        ("f48.wav", ["-ar", "48000", "-c:a", "pcm_f32le"]),
        ("a.flac", []),
        ("a.ogg", []),
        ("a.mp3", []),
    ):
        audio = load_audio(_ffmpeg_encode(src, tmp_path / name, *args))
        assert abs(len(audio) - 16000) < 1600, name  # mp3/ogg pad a little
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
        assert abs(peak - 500) < 5, name


def test_silent_and_truncated_files(tmp_path):
    with wave.open(str(tmp_path / "silent.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(16000, "<i2").tobytes())
    silent = load_audio(tmp_path / "silent.wav")  # valid input: its transcript is empty
    assert len(silent) == 16000 and not silent.any()
    data = write_wav(tmp_path / "t.wav", 1.0).read_bytes()
    (tmp_path / "header.wav").write_bytes(data[:20])  # corrupt: header cut short
    with pytest.raises(ValueError, match="header.wav"):
        load_audio(tmp_path / "header.wav")


def test_target_split_rule_and_sentence_filter():
    from adaptwin.data.build import target_split
    from adaptwin.data.text import novel_sentences, usable

    assert [target_split(i) for i in range(8)] == ["adapt"] * 3 + ["test"] + ["adapt"] * 3 + ["test"]
    assert usable("The birch canoe slid on the smooth planks.")
    assert not usable("He paid 5 pounds for the horse today.")  # digits
    assert not usable("Mrs Weston was very glad to see them all.")  # abbreviation
    assert not usable("She would shew them the garden after dinner.")  # archaic spelling
    assert not usable("Too short.")
    sents = novel_sentences(['"I am glad," said she. Mr. Knightley came', "in later.", "", "CHAPTER I"])
    assert sents[0] == "I am glad, said she." and sents[1] == "Mr Knightley came in later."


def test_hf_datasets_reader_librispeech_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    from adaptwin.data import from_hf_dataset

    paths = [str(write_wav(tmp_path / f"src{i}.wav", 0.5, freq=300 + 100 * i)) for i in range(3)]
    ds = datasets.Dataset.from_dict({"audio": paths, "text": ["A B", "C D", "E F"], "speaker_id": [10, 10, 11]})
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=16000))
    utts = from_hf_dataset(ds, tmp_path / "out", split="test")
    assert [(u.text, u.speaker, u.split) for u in utts] == [
        ("A B", "10", "test"),
        ("C D", "10", "test"),
        ("E F", "11", "test"),
    ]
    for u, p in zip(utts, paths):
        assert np.array_equal(load_audio(u.audio), load_audio(p))
    with pytest.raises(ValueError, match="transcript"):
        from_hf_dataset(ds, tmp_path / "o2", text_column="transcript")


@pytest.mark.slow
def test_standard_sets_build_from_debian(tmp_path, monkeypatch):
    """Build a small version of the standard sets from the real Debian packages and TTS engines
    (the FOTAQ corpus is left out here: the fake-source test covers it) and check the splits."""
    from adaptwin.data import fotaq, read_utterances
    from adaptwin.data.build import TEST_SETS, TRAINING_SETS, build_standard_sets, person_of
    from adaptwin.data.tts import VOICES, available

    monkeypatch.setattr(fotaq, "find_corpus", lambda explicit=None: None)
    voices = tuple(v for v in VOICES if v.name in ("flite_slt", "espeak_en_us", "flite_rms", "flite_awb"))
    try:
        report = build_standard_sets(
            tmp_path, voices=voices, per_voice=5, canary_per_voice=2, test_per_voice=2, calib_per_voice=1
        )
    except RuntimeError as exc:
        pytest.skip(f"cannot fetch Debian packages or TTS engines here: {exc}")
    sets = {n: read_utterances(tmp_path / f"{n}.jsonl") for n in (*TRAINING_SETS, *TEST_SETS) if n != "joe"}
    assert not (tmp_path / "joe.jsonl").exists()  # no FOTAQ corpus: no second target speaker
    assert {u.speaker for u in sets["allison"]} == {"allison"} and {u.split for u in sets["allison"]} == {
        "adapt",
        "test",
    }
    assert report.counts["allison"]["test"] > 100
    heard = {person_of(u.speaker) for n in TRAINING_SETS if n in sets for u in sets[n]}
    for name in TEST_SETS:
        assert sets[name] and not {person_of(u.speaker) for u in sets[name]} & heard, name
    assert {u.speaker for u in sets["test-real"]} == {"librivox"}
    assert {u.speaker for u in sets["canary"]} == {"flite_rms"} and {u.speaker for u in sets["test-tts"]} == {
        "flite_awb"
    }
    assert {u.speaker for u in sets["general"]} == {"flite_slt", "espeak_en_us"}
    tests = {u.text.lower() for n in TEST_SETS for u in sets[n]}
    assert not tests & {u.text.lower() for n in TRAINING_SETS if n in sets for u in sets[n]}
    assert all(available(v) for v in voices) and (tmp_path / "provenance.json").is_file()


def test_pack_windows_follows_per_window_caps(tmp_path):
    from adaptwin.data import Utterance

    files = [write_wav(tmp_path / f"{i}.wav", 2.0) for i in range(8)]
    caps = {0: 1.0, 1: 7.0}  # window i holds at most caps[i] s (30 s after); a cap below one utterance takes it
    windows = pack_windows([Utterance(f, f"u{i}") for i, f in enumerate(files)], caps=lambda i: caps.get(i, 30.0))
    assert [t for _, t in windows] == ["u0", "u1 u2 u3", "u4 u5 u6 u7"]
    assert len(windows[1][0]) == int((3 * 2.0 + 2 * 0.3) * 16000)


def _fake_sources(tmp_path, monkeypatch):
    """Stand-ins for the Debian packages, the TTS engines and the FOTAQ corpus."""
    from adaptwin.data import build

    root = tmp_path / "allison"
    root.mkdir()
    prompts = [(write_wav(root / f"p{i}.wav", 0.5, freq=300 + 10 * i), f"press {i} now") for i in range(8)]
    monkeypatch.setattr(build, "allison_root", lambda: root)
    monkeypatch.setattr(build, "allison_prompts", lambda: prompts)
    monkeypatch.setattr(build, "librivox_utterances", lambda: [(write_wav(tmp_path / "l0.wav", 0.5), "a book line")])
    monkeypatch.setattr(
        build, "corpus_sentences", lambda: [("x", f"synthetic sentence {i} is here.") for i in range(400)]
    )
    monkeypatch.setattr(build, "_install_voices", lambda voices: None)
    vocabulary = frozenset("fotaq bob joe line a book synthetic sentence is here".split())  # the fake texts' words
    monkeypatch.setattr(build, "english_words", lambda: vocabulary)
    monkeypatch.setattr(build, "available", lambda voice: True)

    def synthesize(voice, text, out):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_wav(out, 0.4, freq=200 + len(voice.name) * 10)
        return 0.4

    monkeypatch.setattr(build, "synthesize", synthesize)
    corpus = tmp_path / "fotaq"
    (corpus / "clips").mkdir(parents=True)
    rows = []
    for speaker, split, n in (
        ("fotaq_joe", "adapt", 4),
        ("fotaq_joe", "test", 2),
        ("fotaq_ape", "adapt", 3),
        ("fotaq_bud", "adapt", 2),
        ("fotaq_bob", "test", 3),
    ):
        for i in range(n):
            name = f"{speaker}_{split}_{i}.mp3"
            write_wav(corpus / "clips" / name, 0.3)  # WAV bytes under an .mp3 name: load_audio reads either
            rows.append(
                {
                    "audio": f"clips/{name}",
                    "text": f"{speaker} line {i}",
                    "speaker": speaker,
                    "split": split,
                    "duration": 0.3,
                }
            )
    rows[-1]["text"] = "fotaq_joe line 0"  # a stock line Joe also says in his adapt split: not a test line
    rows[-2]["text"] = "Frrblrt, trgn smrrldn."  # gibberish has no spelling to score against
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return corpus


def test_the_build_writes_speaker_disjoint_sets(tmp_path, monkeypatch):
    from adaptwin.data.build import TEST_SETS, TRAINING_SETS, build_standard_sets, person_of
    from adaptwin.data.tts import VOICES

    corpus = _fake_sources(tmp_path, monkeypatch)
    out = tmp_path / "out"
    build_standard_sets(
        out, per_voice=3, canary_per_voice=2, test_per_voice=2, calib_per_voice=1, calib_real=2, fotaq_root=corpus
    )
    sets = {name: read_utterances(out / f"{name}.jsonl") for name in (*TRAINING_SETS, *TEST_SETS)}
    people = {name: {person_of(u.speaker) for u in utts} for name, utts in sets.items()}
    heard = set().union(*(people[n] for n in TRAINING_SETS))
    for name in TEST_SETS:
        assert people[name] and not people[name] & heard, name
    assert not people["canary"] & (people["general"] | people["calib"])
    roles = {v.name: v.role for v in VOICES}
    assert {u.speaker for u in sets["test-tts"]} == {n for n, r in roles.items() if r == "test"}
    assert {u.speaker for u in sets["canary"]} == {n for n, r in roles.items() if r == "canary"} | {"fotaq_bud"}
    assert {"flite_slt", "festival_slt_hts", "fotaq_ape"} <= {u.speaker for u in sets["general"]}
    assert {u.speaker for u in sets["joe"]} == {"fotaq_joe"} and {u.split for u in sets["joe"]} == {"adapt", "test"}
    assert {u.speaker for u in sets["test-real"]} == {"fotaq_bob", "librivox"}
    assert "fotaq_joe line 0" not in {u.text for u in sets["test-real"]}  # the repeated line left the test set
    assert {u.split for u in sets["general"]} == {"adapt"} and {u.split for u in sets["canary"]} == {"validation"}
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["test_lines_heard_in_training_left_out"] == {"test-tts": 0, "test-real": 1}
    assert "Frrblrt, trgn smrrldn." not in {u.text for u in sets["test-real"]}
    assert provenance["test_lines_not_english_left_out"] == {"test-tts": 0, "test-real": 1}


WORDS = frozenset("why try my gym pleasure hurry sorry error strength hmm well they're rather and".split())


@pytest.mark.parametrize(
    "text, gibberish",
    [
        ("Frrblrt, trgn smrrldn.", True),
        ("Ungawa changa tu tawanga.", True),  # an invented language
        ("Hmm, well they're rather and Floda", False),  # one name in a sentence
        ("Floda, hmm", True),  # half the words: not scorable
        ("Why try my gym? My pleasure.", False),
        ("Sorry's error", False),  # possessives of known words
        ("I", False),
        ("", False),
    ],
)
def test_unscorable_lines(text, gibberish):
    from adaptwin.data.build import unscorable

    assert unscorable(text, WORDS) is gibberish
