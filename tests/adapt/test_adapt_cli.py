"""``adaptwin adapt`` end to end on a tiny random model that shares tiny.en's tokenizer."""

import json

import pytest
import tiny_run
import torch


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from conftest import tiny_config
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    import adaptwin

    try:
        processor = adaptwin.load_whisper("tiny.en").processor
    except FileNotFoundError as exc:
        pytest.skip(f"needs the tiny.en tokenizer from the models extra: {exc}")
    root = tmp_path_factory.mktemp("adapt-cli")
    torch.manual_seed(0)
    cfg = tiny_config(
        vocab_size=51864, decoder_start_token_id=50257, eos_token_id=50256, pad_token_id=50256, bos_token_id=50256
    )
    teacher = WhisperForConditionalGeneration(cfg).eval()
    processor.feature_extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    adaptwin.save(teacher, root / "teacher", processor)
    adaptwin.compress_(teacher, adaptwin.AdaPTwinConfig(scope="encoder", rank_qk=8, rank_vo=8))
    adaptwin.save(teacher, root / "student", processor)
    tiny_run.write_data(root / "data")
    return root


def _args(root, *extra):
    return [
        "adapt",
        "--model",
        str(root / "student"),
        "--teacher",
        str(root / "teacher"),
        "--target",
        str(root / "data" / "target.jsonl"),
        "--general",
        str(root / "data" / "general.jsonl"),
        "--layerwise-epochs",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--out",
        str(root / "adapted"),
        *extra,
    ]


def test_adapt_command_writes_a_loadable_model_that_records_its_data(folders, capsys):
    import adaptwin
    from adaptwin.cli import main

    assert main(_args(folders, "--json", str(folders / "report.json"), "--checkpoint-every", "0")) == 0
    assert not (folders / "adapted.partial").exists()  # the checkpoint goes once the model is written
    loaded = adaptwin.load_whisper(folders / "adapted")
    record = loaded.model.config.adaptwin["adaptation"]
    assert record["data"]["target"]["utterances"] == 9 and record["data"]["target"]["source"].endswith("target.jsonl")
    assert loaded.model.config.adaptwin["attention"]  # still the compressed structure
    student = adaptwin.load_whisper(folders / "student").model
    changed = [n for n, p in loaded.model.named_parameters() if not torch.equal(p, student.get_parameter(n))]
    assert changed and all(".self_attn." in n for n in changed)  # only the factors were trained
    report = json.loads((folders / "report.json").read_text())
    assert report["steps"] > 0 and "saved" in capsys.readouterr().out


def test_adapt_command_refuses_to_overwrite_an_interrupted_run(folders, capsys):
    from adaptwin.cli import main

    (folders / "adapted.partial").mkdir(exist_ok=True)
    (folders / "adapted.partial" / "state-rank0.pt").write_bytes(b"x")
    assert main(_args(folders)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(_args(folders, "--resume")) == 2  # not a checkpoint of this run: said, not crashed
    (folders / "adapted.partial" / "state-rank0.pt").unlink()


def test_adapt_command_checks_its_options(folders, capsys):
    from adaptwin.cli import main

    assert main(_args(folders, "--replay", "1.5")) == 2
    assert "replay" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(folders, "--time-budget", "ten minutes"))
    args = _args(folders)
    args[args.index("--target") + 1] = str(folders / "nope.jsonl")
    assert main(args) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_adapt_on_general_speech_alone_teaches_a_dynamic_context(folders, capsys):
    """No --target: the general speech is the training data (no replay); --dynamic-context is
    recorded in the saved model, and `info` says so."""
    import adaptwin
    from adaptwin.cli import main

    args = _args(folders, "--dynamic-context", "0.5", "--context-bucket", "0.2", "--context-margin", "0.1")
    at = args.index("--target")
    del args[at : at + 2]
    args[args.index("--out") + 1] = str(folders / "dynamic")
    assert main(args) == 0
    meta = adaptwin.load_whisper(folders / "dynamic").model.config.adaptwin
    assert meta["context"] == {"dynamic": True, "bucket": 0.2, "margin": 0.1}
    assert meta["adaptation"]["data"]["target"]["source"].endswith("general.jsonl")
    assert meta["adaptation"]["data"]["general"] is None and meta["adaptation"]["config"]["replay"] == 0.0
    assert meta["adaptation"]["config"]["target_distill"] == 0.0  # the general speech learns its transcripts
    capsys.readouterr()
    assert main(["info", str(folders / "dynamic")]) == 0
    assert "audio context: dynamic (the audio + 0.1 s, in 0.2 s buckets)" in capsys.readouterr().out
    without = _args(folders)
    del without[without.index("--target") : without.index("--target") + 2]
    del without[without.index("--general") : without.index("--general") + 2]
    assert main(without) == 2
    assert "--target" in capsys.readouterr().err
