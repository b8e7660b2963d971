"""The helpers the benchmark scripts share (benchmarks/pages.py, scoring.py, and streaming.py's
--means): where results are written, which utterances a limit takes, the error bars every table
prints, the means over repeated streaming runs, and validation_wer's split by kind of voice."""

import json
import sys
from pathlib import Path

import pytest

# the scripts import each other by name; the folder leaves the path again so that none of its
# names (memory, compression, ...) shadows another module for the rest of the session
BENCHMARKS = str(Path(__file__).resolve().parent.parent / "benchmarks")
sys.path.insert(0, BENCHMARKS)
try:
    from pages import result_file, store_and_publish
    from scoring import paired, resampled_se, spread
    from streaming import means
    from validation_wer import render as render_validation
finally:  # the scripts put their folder on the path too
    sys.path[:] = [entry for entry in sys.path if not entry or Path(entry).resolve() != Path(BENCHMARKS)]


@pytest.mark.parametrize(
    "stem, ext, expected",
    [
        ("runs/streaming-conf0.5-unsure0.8", ".json", "runs/streaming-conf0.5-unsure0.8.json"),
        ("runs/streaming-conf0.3-unsure0", ".md", "runs/streaming-conf0.3-unsure0.md"),
        ("runs/quantization.json", ".md", "runs/quantization.md"),  # a result extension is not doubled
        ("runs/base-c0.5", ".png", "runs/base-c0.5.png"),
    ],
)
def test_a_results_stem_keeps_its_dots(stem, ext, expected):
    assert result_file(stem, ext) == Path(expected)


def test_runs_whose_names_differ_after_a_dot_do_not_overwrite_each_other(tmp_path, capsys):
    def table(result):
        return f"| wer | {result['wer']} |"

    for name, wer in (("conf0.5-unsure0.8", 10.45), ("conf0.5-unsure0.5", 10.14)):
        store_and_publish(tmp_path / name, {"wer": wer}, "a note", table, page=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conf0.5-unsure0.5.json",
        "conf0.5-unsure0.5.md",
        "conf0.5-unsure0.8.json",
        "conf0.5-unsure0.8.md",
    ]
    assert json.loads((tmp_path / "conf0.5-unsure0.8.json").read_text()) == {"wer": 10.45, "note": "a note"}
    # --render redraws from the stored result, a second note is appended
    store_and_publish(tmp_path / "conf0.5-unsure0.8", None, "later", table, page=None)
    assert json.loads((tmp_path / "conf0.5-unsure0.8.json").read_text())["note"] == "a note later"
    assert (tmp_path / "conf0.5-unsure0.8.md").read_text() == "| wer | 10.45 |"
    capsys.readouterr()


def test_resampled_error_bars():
    words = [10, 12, 8, 20, 5, 9] * 5
    same_rate = [w // 2 if w % 2 == 0 else w / 2 for w in words]  # every utterance at 50 %
    assert resampled_se(same_rate, words) == pytest.approx(0.0, abs=1e-9)
    errors = [0, 3, 1, 6, 0, 2] * 5
    se = resampled_se(errors, words)
    assert 0 < se < 100
    # more utterances of the same kind: a smaller error bar (about 1/sqrt(n))
    assert resampled_se(errors * 4, words * 4) == pytest.approx(se / 2, rel=0.2)


def test_a_paired_difference_is_surer_than_either_wer():
    a = {
        f"u{i}": [e, w] for i, (e, w) in enumerate(zip([0, 3, 1, 6, 0, 2, 4, 1] * 4, [10, 12, 8, 20, 5, 9, 15, 7] * 4))
    }
    b = {u: [max(0, e - 1 if i % 3 else e), w] for i, (u, (e, w)) in enumerate(a.items())}
    b["only-in-b"] = [5, 5]  # an utterance one side did not score is left out of the difference
    se_a, se_diff = paired(a, b)
    assert se_a == pytest.approx(paired(a)[0]) and paired(a)[1] is None
    assert 0 < se_diff < se_a  # the two models err on the same utterances
    assert paired(a, a)[1] == pytest.approx(0.0, abs=1e-9)


def test_a_limit_spreads_over_every_speaker():
    """A manifest lists its speakers in turn: 400 of 956 must reach its last speaker too."""
    utts = [f"speaker{i // 100}-{i}" for i in range(956)]
    picked = spread(utts, 400)
    assert len(picked) == len(set(picked)) == 400 and picked[0] == utts[0]
    assert {u.split("-")[0] for u in picked} == {u.split("-")[0] for u in utts}
    assert spread(utts, None) == utts and spread(utts[:5], 400) == utts[:5]


def _run(tmp_path, name, sets, rows):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"recording": {"sets": sets, "seconds": 300.0}, "rows": rows}))
    return path


def _row(stream_wer, words, p90, confidence=0.0, unsure_hold=0.0):
    policy = {"chunk": 0.35, "agreement": 2, "silence_flush": 0.3, "hold": 0.1, "pad": 5.0, "forget": 2.0}
    policy |= {"trim_after": 6.0, "prompt_chars": 400, "confidence": confidence, "unsure_hold": unsure_hold}
    return {
        "engine": "ort:/x/dyn-int8",
        **policy,
        "offline_wer": 10.0,
        "stream_wer": stream_wer,
        "reference_words": words,
        "latency_median": 0.6,
        "latency_p90": p90,
        "end_of_speech_median": 0.4,
    }


def test_streaming_means_sum_words_over_recordings_and_runs(tmp_path):
    joe = _run(tmp_path, "joe", ["joe.jsonl:adapt"], [_row(12.0, 700, 1.2), _row(10.0, 700, 2.0)])
    # without a confidence the unsure hold does nothing: one policy with the rows above
    real = _run(tmp_path, "real", ["canary.jsonl:validation"], [_row(8.0, 300, 1.0, unsure_hold=0.5)])
    other = _run(tmp_path, "other", ["joe.jsonl:adapt"], [_row(9.0, 700, 1.5, confidence=0.5, unsure_hold=0.8)])
    table = means([joe, real, other]).splitlines()
    assert len(table) == 2 + 3 + 1  # header, 2 recordings + their sum for one policy, 1 row for the other
    joe_row, real_row, both = table[2:5]
    assert "| 2 | 10.00 | 11.00 ± 1.41 (1.00), +1.00 | 0.60 | 1.60 (2.00) | 0.40 |" in joe_row
    assert "| 1 | 10.00 | 8.00, -2.00 | 0.60 | 1.00 (1.00) | 0.40 |" in real_row
    # (mean of 84 and 70 errors = 77, plus 24) over 1000 words; offline 10 %
    assert "| 2 / 1 | 10.00 | 10.10 (+0.10 over offline) |" in both
    assert "| 0.5 | 0.8 |" in table[5] and "9.00" in table[5]


def test_validation_wer_splits_real_and_synthetic_voices():
    kinds = {"r1": "real", "r2": "real", "s1": "synthetic", "s2": "synthetic"}
    first = {"r1": [1, 10], "r2": [1, 10], "s1": [4, 10], "s2": [4, 10]}
    second = {"r1": [3, 10], "r2": [3, 10], "s1": [1, 10], "s2": [1, 10]}
    row = lambda u: {"wer": 25.0, "errors": 10, "n_words": 40, "per_speaker": {}, "utterances": u, "kinds": kinds}  # noqa: E731
    machine = dict.fromkeys(("cpu", "cores", "torch_threads", "torch", "transformers", "commit", "date"), "x")
    text = render_validation(
        {"machine": machine, "command": "x", "models": {"a": row(first), "b": row(second)}, "versus": None}
    )
    table = text.split("By kind of voice")[1]
    assert "| a | 10.00 ± 0.00 |  | 40.00 ± 0.00 |  |" in table
    assert "| b | 30.00 ± 0.00 | +20.00 ± 0.00 | 10.00 ± 0.00 | -30.00 ± 0.00 |" in table
