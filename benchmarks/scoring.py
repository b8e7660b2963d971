"""Scoring shared by the benchmarks: WER of a model on test splits, per-utterance errors, the
share of utterances a model gets worse on than a reference model, and the standard error of a
WER (or of a paired difference) from resampling utterances."""

from __future__ import annotations

from pathlib import Path

# general test sets written by `adaptwin data build`: speakers never used in training,
# replay, calibration or validation
TEST_SETS = {"test-tts": "test-tts.jsonl", "test-real": "test-real.jsonl"}


RESAMPLES = 2000


def resampled_se(errors, words, baseline=None) -> float:
    """Standard error (points) of the WER, or of its difference from ``baseline``'s errors on the
    same utterances, over utterances drawn with replacement (errors cluster within an utterance,
    so resampling words would understate it)."""
    import numpy as np

    errors, words = np.asarray(errors, float), np.asarray(words, float)
    diff = errors - np.asarray(baseline, float) if baseline is not None else errors
    picks = np.random.default_rng(0).integers(0, len(words), (RESAMPLES, len(words)))
    return float(100 * (diff[picks].sum(1) / words[picks].sum(1)).std())


def utterance_errors(results) -> dict[str, list[int]]:
    """``evaluate``'s per-utterance results as {audio: [errors, words]}, for ``resampled_se``."""
    return {r.audio: [r.errors, r.words] for r in results}


def paired(a: dict, b: dict | None = None) -> tuple[float, float | None]:
    """The standard error of the WER of per-utterance errors ``a`` ({audio: [errors, words]},
    as ``utterance_errors`` writes them) and, given ``b``, of the difference a − b over the
    utterances both scored."""
    utts = sorted(set(a) & set(b)) if b is not None else sorted(a)
    errors, words = [a[u][0] for u in utts], [a[u][1] for u in utts]
    diff = None if b is None else resampled_se(errors, words, [b[u][0] for u in utts])
    return resampled_se(errors, words), diff


def spread(utts: list, limit: int | None) -> list:
    """``limit`` of ``utts`` spread evenly from the first to the last (all of them without a
    limit): a manifest lists its speakers in turn, so its head alone may leave some out."""
    if not limit or len(utts) <= limit:
        return list(utts)
    return [utts[int(i * len(utts) / limit)] for i in range(limit)]


def manifest_split(data: Path, spec: str, limit: int | None) -> list:
    """``MANIFEST[:SPLIT]`` under ``data`` (the test split by default), spread to ``limit``."""
    from adaptwin.data import read_utterances

    name, _, split = spec.partition(":")
    return spread([u for u in read_utterances(Path(data) / name) if u.split == (split or "test")], limit)


def test_split(path: Path, limit: int | None) -> list:
    """The manifest's test split, spread to ``limit``."""
    return manifest_split(Path(path).parent, Path(path).name + ":test", limit)


def general_test(data: Path, limit: int | None = None) -> list:
    """Both general test sets (unseen synthetic voices, then unseen real speakers), each limited."""
    return [u for path in TEST_SETS.values() for u in test_split(Path(data) / path, limit)]


# How test sets are scored; cells carry the version and `benchmarks/adaptation.py --rescore`
# brings old ones up to date. The text of each version is printed on the results page.
SCORINGS = {
    1: "greedy `eval`, faster-whisper without its temperature fallback",
    2: "`eval` decodes a looping or unlikely clip again with beam search",
    3: "as 2, on test sets without lines of invented words (`adaptwin data build` leaves them out), "
    "faster-whisper with its default temperature fallback",
    4: "`eval` decodes a looping or unlikely clip again with beam search and keeps a loop that "
    "survives every attempt once; general test sets hold English lines only (`adaptwin data build` "
    "leaves out gibberish, invented-language and foreign lines); faster-whisper with its default "
    "temperature fallback",
}
SCORING = max(SCORINGS)


def score_sets(loaded, sets: dict[str, Path], limit: int | None, gate=None) -> dict[str, dict]:
    """{set: {"wer", "utterances", "errors": [per utterance], "words": [per utterance]}}.
    The no-speech gate is off by default: these sets hold only speech, and cached cells
    scored before the gate existed stay comparable (benchmarks/no_speech.py measures it)."""
    from adaptwin.evaluate import evaluate

    out = {}
    for name, path in sets.items():
        results = []
        report = evaluate(loaded, test_split(path, limit), batch_size=8, results=results, gate=gate)
        out[name] = {
            "wer": report.wer,
            "utterances": report.n_utterances,
            "errors": [r.errors for r in results],
            "words": [r.words for r in results],
            "audio": [Path(r.audio).name for r in results],
        }
    return out


def worse_share(scored: dict, reference: dict) -> float | None:
    """Percent of utterances with more errors than under ``reference`` (same utterances)."""
    if scored.get("audio") != reference.get("audio") or not scored.get("errors"):
        return None
    worse = sum(a > b for a, b in zip(scored["errors"], reference["errors"]))
    return round(100.0 * worse / len(scored["errors"]), 1)


class FasterWhisper:
    """faster-whisper as an evaluation backend (greedy with its default temperature fallback,
    as its users get it; no timestamps, no VAD)."""

    name = "faster-whisper"

    def __init__(self, ct2_dir: str, threads: int, seed: int = 0) -> None:
        import ctranslate2
        from faster_whisper import WhisperModel

        # its temperature fallback samples: unseeded, two runs on the same utterances differed by
        # points (docs/experiments/runtime.md); seeded, a run repeats
        ctranslate2.set_random_seed(seed)
        self.model = WhisperModel(ct2_dir, device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe_batch(self, audios, *, language="en", num_beams=1, gate=None):  # its own no-speech rule is on
        out = []
        for audio in audios:
            segments, _ = self.model.transcribe(
                audio,
                language=language,
                beam_size=num_beams,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            out.append(" ".join(s.text.strip() for s in segments))
        return out


class WhisperCpp:
    """whisper.cpp (pywhispercpp) as an evaluation backend, with its own defaults (greedy, its
    temperature fallback), on a model file from `adaptwin-export --engine ggml`."""

    name = "whisper.cpp"

    def __init__(self, ggml_file: str, threads: int) -> None:
        from pywhispercpp.model import Model

        self.model = Model(ggml_file, n_threads=threads, redirect_whispercpp_logs_to=None, print_progress=False)

    def transcribe_batch(self, audios, *, language="en", num_beams=1, gate=None):  # its own no-speech rule is on
        return [" ".join(s.text.strip() for s in self.model.transcribe(audio, language=language)) for audio in audios]
