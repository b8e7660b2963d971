import json
import wave

import numpy as np
import pytest

from adaptwin.evaluate import Score, align, normalize, wer_counts


def test_normaliser_matches_whisper_conventions():
    assert normalize("Hello, World!") == "hello world"
    assert normalize("Mr. Smith's colour") == "mister smith is color"  # OpenAI's rule: 's -> is
    assert normalize("Then twenty five.") == "then 25"


@pytest.mark.parametrize(
    "ref,hyp,s,d,i",
    [
        ("a b c d", "a b c d", 0, 0, 0),
        ("a b c d", "a x c d", 1, 0, 0),
        ("a b c d", "a c d", 0, 1, 0),
        ("a b c d", "a b y c d", 0, 0, 1),
        ("a b c d", "", 0, 4, 0),
        ("", "x y", 0, 0, 2),
        ("the cat sat", "cat sat down", 0, 1, 1),
    ],
)
def test_alignment_counts(ref, hyp, s, d, i):
    a = align(ref.split(), hyp.split())
    assert (a.substitutions, a.deletions, a.insertions) == (s, d, i)


def test_corpus_wer_is_total_errors_over_total_words():
    score = Score()
    score.add(wer_counts("we all went home", "we all went home"))  # 0 / 4
    score.add(wer_counts("the quick brown fox", "the quick brown box"))  # 1 / 4
    score.add(wer_counts("hello there", "hello"))  # 1 / 2
    assert score.words == 10 and score.wer == pytest.approx(20.0)  # not the mean of per-utterance rates


def _tokenizer_or_skip():
    try:
        import adaptwin

        return adaptwin.load_whisper("tiny.en").processor
    except FileNotFoundError as exc:
        pytest.skip(f"needs the tiny.en tokenizer from the models extra: {exc}")


def test_eval_end_to_end_on_a_tiny_random_model(tmp_path):
    """Three generated clips through `adaptwin eval` on a random model sharing tiny.en's tokenizer."""
    import torch
    from conftest import tiny_config
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    import adaptwin
    from adaptwin.cli import main

    processor = _tokenizer_or_skip()
    torch.manual_seed(0)
    cfg = tiny_config(
        vocab_size=51864,
        num_mel_bins=80,
        max_source_positions=1500,
        decoder_start_token_id=50257,
        eos_token_id=50256,
        pad_token_id=50256,
        bos_token_id=50256,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    model.generation_config.max_length = 12
    processor.feature_extractor = WhisperFeatureExtractor(feature_size=80)
    adaptwin.save(model, tmp_path / "model", processor)
    rows = []
    for i, text in enumerate(["hello world", "the cat sat on the mat", "a red fox"]):
        with wave.open(str(tmp_path / f"{i}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes((np.random.default_rng(i).normal(0, 2000, 16000 * (i + 1))).astype("<i2").tobytes())
        rows.append({"audio": f"{i}.wav", "text": text, "speaker": f"s{i % 2}", "split": "test"})
    rows.append({"audio": "missing.wav", "text": "gone", "speaker": "s0", "split": "test"})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code = main(
        [
            "eval",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(tmp_path / "m.jsonl"),
            "--json",
            str(tmp_path / "r.json"),
            "--per-utterance",
            str(tmp_path / "u.jsonl"),
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_utterances"] == 3 and report["n_words"] == 2 + 6 + 3
    assert len(report["skipped"]) == 1 and "missing.wav" in report["skipped"][0]
    assert set(report["per_speaker"]) == {"s0", "s1"}
    per_utt = [json.loads(line) for line in (tmp_path / "u.jsonl").read_text().splitlines()]
    errors = sum(u["errors"] for u in per_utt)
    assert report["wer"] == pytest.approx(100 * errors / 11, abs=1e-3)
    assert report["rtf"] > 0 and report["peak_rss_mb"] > 0


def test_backend_interface(tmp_path, capsys):
    from adaptwin.cli import main
    from adaptwin.runtime import get_backend

    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("tflite", "base")
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "x"}\n')
    assert main(["eval", "--model", "base", "--data", str(tmp_path / "m.jsonl"), "--backend", "ort"]) == 2
    assert "adaptwin-export base --out base-onnx" in capsys.readouterr().err
