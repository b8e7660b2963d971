"""Streaming latency and accuracy on a long real recording, per engine, side by side.

    python benchmarks/streaming.py --data DIR --engines torch:base ort:EXPORT_DIR ... [--minutes 2]
        [--chunk 0.5 [1.0 ...]] [--agreement 2 [1 3 ...]] [--silence-flush 0.6 ...] [--hold 0 0.3 ...] [--pad 0 2 ...]

An engine is KIND:WHERE (``ort:DIR@full`` forces the 30 s window on a model trained for a
dynamic audio context). Each engine streams with the policy `adaptwin stream` gives its model
(``OnlineProcessor.for_backend``) unless options are given. Several values of the policy options run every engine at each
combination, and the page names, per engine, the setting with the lowest median word latency
whose streaming WER stays within the bound of its offline WER.

The recording alternates target-speaker prompts and general test utterances (0.6 s
pauses; ``--sets`` takes other manifests, e.g. validation speakers to study a policy on).
Reference word end times: each utterance's speech span (energy-trimmed) shared among its
words by character count; utterance-final words are exact to ~10 ms.

Per engine, in its own process (for an honest peak RSS): offline WER (long-form, 30 s
windows) and streaming WER (``--simulate --fast``: computation-aware, each step takes the
audio that arrived while the previous one decoded), per-word emission latency (emission
time minus the word's end) median and p90, end of speech to final text per utterance, RTF,
model bytes, and RSS: after loading (and one warm-up decode), the stream's peak (the stream
runs first), and the peak once offline long-form decoding has run too. Writes
benchmarks/results/streaming.{json,md} (or --out) and the page docs/results/streaming.md, which
also shows every other `streaming-*` result and the hour of `benchmarks/memory.py`; `--render`
redraws the page from the stored results; ``--pauses`` only counts the recording's pauses inside
utterances as the streaming VAD sees them (benchmarks/results/recording_pauses.md). One setting's
runs differ by about a point of WER, so a setting is judged on several: ``--means STEM ...``
prints each policy's means over stored runs, per recording and over them all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import result_file, verdict, write_page  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PAUSE = 0.6
# the recording's sources, taken in turn: the target speaker's and unseen real speakers' test clips
SETS = ["allison.jsonl:test", "test-real.jsonl:test"]
ABOUT = """
From `python benchmarks/streaming.py --data DIR --minutes M --engines ENGINE ...` (each run's
command is stored in its JSON under `benchmarks/results/streaming*.json`). The exports are made
as in the speed benchmark (`c30` = base with 30 % of the encoder removed, data-aware twin +
FFN, not adapted). The recording alternates target-speaker prompts and general test
utterances with 0.6 s pauses. `--simulate --fast` is computation-aware: each step takes all
audio that arrived while the previous step decoded, so a slow engine falls behind exactly as
it would live (stream RTF ≈ 1 means the engine is busy all the time). Latency = commit time
minus the word's end in the audio (each utterance's energy-trimmed speech span shared among
its words by length; utterance-final words are exact to ~10 ms); "end of speech to final" is
that latency for each utterance's last word. Each engine runs in its own process; RSS (VmHWM)
is taken after loading and one warm-up decode, after the stream (its peak), and again after
offline long-form decoding of the same recording; model MB are the graph and weight files.
"loops" counts hypotheses caught looping and decoded again. How the memory and loop
behaviour got where it is: [../experiments/streaming.md](../experiments/streaming.md).
"""
# the streaming targets of the dynamic-context issue: median/p90 word latency, end of speech
# to final text (s), streaming WER over offline (points), peak RSS of the stream (MB)
TARGETS = {"latency_median": 0.8, "latency_p90": 1.5, "end_of_speech_median": 0.5, "wer_gap": 1.0, "peak_rss_mb": 400}


# the policy options a run sweeps: (OnlineProcessor field, type, help); several values of each
# run every engine at every combination. An option not given is the engine's own default, what
# `adaptwin stream` gives its model (`OnlineProcessor.for_backend`), and the row records it.
POLICY = (
    ("min_chunk", float, "seconds of audio per step"),
    ("agreement", int, "hypotheses that must agree to commit"),
    ("silence_flush", float, "seconds of silence after which the pending words are final"),
    ("hold", float, "seconds before the audio's end in which a word is not committed yet"),
    ("confidence", float, "probability under which a word's token keeps it from being committed before a pause"),
    ("unsure_hold", float, "seconds before the audio's end in which a word under the confidence waits (0: a pause)"),
    ("pad", float, "seconds of silence a dynamic-context model hears after its buffer"),
    ("forget", float, "seconds of silence after which the buffer's audio is dropped (none: the flush)"),
    ("trim_after", float, "seconds of buffer after which it is cut at a committed segment end"),
    ("prompt_chars", int, "characters of committed text before the buffer given as the decoder's prompt"),
)
# table headers of the POLICY fields, and the values of rows stored before a field was swept
HEADERS = {
    "min_chunk": "chunk (s)",
    "agreement": "agreement",
    "silence_flush": "silence flush (s)",
    "hold": "hold (s)",
    "confidence": "confidence",
    "unsure_hold": "unsure hold (s)",
    "pad": "pad (s)",
    "forget": "forget (s)",
    "trim_after": "trim after (s)",
    "prompt_chars": "prompt (chars)",
}
BEFORE = {
    "agreement": 2,
    "silence_flush": 0.6,
    "hold": 0.0,
    "confidence": 0.0,
    "unsure_hold": 0.0,
    "pad": 0.0,
    "forget": None,
    "trim_after": 10.0,
    "prompt_chars": 400,
}


def flag(name: str) -> str:
    """The command-line flag of a POLICY field."""
    return "--chunk" if name == "min_chunk" else "--" + name.replace("_", "-")


def speech_span(audio: np.ndarray, threshold_db: float = -40.0) -> tuple[float, float]:
    """First and last 10 ms frame above ``threshold_db`` relative to the clip's peak."""
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    level = 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(1)) + 1e-10)
    loud = np.flatnonzero(level > level.max() + threshold_db)
    return (loud[0] * 0.01, (loud[-1] + 1) * 0.01) if len(loud) else (0.0, len(audio) / 16000)


def _set_tag(spec: str) -> str:
    """A recording's file-name part for one ``--sets`` source: the manifest, and the speaker if one."""
    name, _, rest = spec.partition(":")
    speaker = rest.partition(":")[2]
    return Path(name).stem + (f"_{speaker}" if speaker else "")


def build_recording(data: Path, minutes: float, out: Path, sets: list[str] = SETS) -> dict:
    """Concatenate the utterances of ``sets`` ("MANIFEST:SPLIT[:SPEAKER]", taken in turn) into
    one WAV: by default target-speaker (Allison) and unseen real-speaker test utterances."""
    from adaptwin.audio import load_audio
    from adaptwin.data import read_utterances
    from adaptwin.data.tts import write_wav
    from adaptwin.evaluate import normalize

    meta = out.with_suffix(".json")
    if meta.is_file() and out.is_file():
        return json.loads(meta.read_text())
    pools = []
    for spec in sets:
        name, split, speaker = (spec.split(":") + ["", ""])[:3]
        pools.append(
            [
                u
                for u in read_utterances(data / name)
                if (not split or u.split == split) and (not speaker or u.speaker == speaker)
            ]
        )
        if not pools[-1]:
            raise SystemExit(f"--sets {spec}: no utterance of {data / name} matches (MANIFEST:SPLIT[:SPEAKER])")
    order = [u for group in zip(*pools) for u in group]
    pieces, utts, at = [], [], 0.0
    for u in order:
        if at >= minutes * 60:
            break
        audio = load_audio(u.audio)
        start, end = speech_span(audio)
        words = normalize(u.text).split()
        if not words:
            continue
        chars = np.cumsum([len(w) for w in words]) / sum(len(w) for w in words)
        ends = [round(at + start + c * (end - start), 3) for c in chars]
        utts.append(
            {
                "text": u.text,
                "speaker": u.speaker,
                "start": round(at + start, 3),
                "end": round(at + end, 3),
                "words": words,
                "word_ends": ends,
            }
        )
        pieces += [audio, np.zeros(int(PAUSE * 16000), np.float32)]
        at += len(audio) / 16000 + PAUSE
    write_wav(out, np.concatenate(pieces))
    info = {"seconds": round(at, 2), "sets": list(sets), "utterances": utts}
    meta.write_text(json.dumps(info))
    return info


def inner_pauses(audio: np.ndarray, info: dict, vad_kind: str = "auto", frame: float = 0.1) -> dict:
    """Pauses inside the utterances of a recording as the streaming VAD sees them (frames of
    ``frame`` s, as ``OnlineProcessor`` judges them): per utterance, how many silent runs
    reach 0.3, 0.4 and 0.5 s. A pause this long inside a sentence can make words final early."""
    from adaptwin.runtime.vad import load_vad

    vad, step = load_vad(vad_kind), int(frame * 16000)
    speech = np.array([bool(vad.speech(audio[i : i + step])) for i in range(0, len(audio), step)])
    runs = []
    for u in info["utterances"]:
        run = 0
        for s in speech[int(u["start"] / frame) : int(np.ceil(u["end"] / frame))]:
            if s and run:
                runs.append(run * frame)
            run = 0 if s else run + 1
    n = max(1, len(info["utterances"]))
    return {
        "vad": type(vad).__name__,
        "utterances": len(info["utterances"]),
        **{f">= {t} s": round(sum(r >= t - frame / 2 for r in runs) / n, 3) for t in (0.3, 0.4, 0.5)},
    }


def pauses_page(data: Path, minutes: float, work: Path, sets: list[str], vad: str) -> None:
    """``--pauses``: add the recording's inner pauses to results/recording_pauses.{json,md}."""
    from adaptwin.audio import load_audio

    recording = work / f"recording-{minutes:g}min{_tag(sets)}.wav"
    info = build_recording(data, minutes, recording, sets)
    row = {"sets": list(sets), "minutes": minutes, **inner_pauses(load_audio(recording), info, vad)}
    print(json.dumps(row), flush=True)
    path = RESULTS / "recording_pauses.json"
    stored = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    stored["rows"] = [r for r in stored["rows"] if (r["sets"], r["minutes"]) != (row["sets"], minutes)] + [row]
    stored["machine"] = machine_info()
    path.write_text(json.dumps(stored, indent=1))
    lines = [
        f"Machine: {machine_line(stored['machine'])}",
        "Command: `python benchmarks/streaming.py --data DATA --pauses --minutes M --sets ...`: per utterance of a "
        "streaming recording, the silent runs inside it as the streaming VAD judges 0.1 s frames.",
        "",
        "| recording sources | minutes | VAD | utterances | pauses >= 0.3 s | >= 0.4 s | >= 0.5 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in stored["rows"]:
        lines.append(
            f"| {' '.join(r['sets'])} | {r['minutes']:g} | {r['vad']} | {r['utterances']} | {r['>= 0.3 s']:.2f} "
            f"| {r['>= 0.4 s']:.2f} | {r['>= 0.5 s']:.2f} |"
        )
    (RESULTS / "recording_pauses.md").write_text("\n".join(lines) + "\n")


def _tag(sets: list[str]) -> str:
    return "" if sets == SETS else "-" + "-".join(_set_tag(x) for x in sets)


def align_pairs(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """Index pairs of equal words on a minimum-edit alignment."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def timed(engine) -> dict:
    """Wrap ``engine``'s stages (features, encoder, decoder calls) to add up their calls and
    seconds: {stage: [calls, seconds, extra]}; prefill = decoder calls on several tokens (extra:
    tokens), step = one-token calls; encoder extra: the frames it encoded."""
    spent: dict = {}

    def wrap(name, fn, stage_of):
        def run(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            stage, extra = stage_of(*args, **kwargs)
            row = spent.setdefault(stage, [0, 0.0, {}])
            row[0] += 1
            row[1] += time.perf_counter() - t
            for key, value in extra.items():
                row[2][key] = row[2].get(key, 0) + value
            return out

        setattr(engine, name, run)

    wrap("features", engine.features, lambda audios, frames=None: ("features", {}))
    wrap("encode", engine.encode, lambda features: ("encoder", {"frames": int(features.shape[-1])}))
    wrap(
        "step",
        engine.step,
        lambda tokens, state, at=None: (
            ("step", {}) if tokens.shape[1] == 1 else ("prefill", {"tokens": int(tokens.shape[1])})
        ),
    )
    return spent


def worker(args) -> int:
    from adaptwin.audio import load_audio
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.heap import peak_rss_mb  # (imports neither PyTorch nor transformers)
    from adaptwin.runtime.longform import transcribe
    from adaptwin.runtime.mic import simulate
    from adaptwin.runtime.streaming import OnlineProcessor
    from adaptwin.runtime.vad import load_vad

    info = json.loads(Path(args.recording).with_suffix(".json").read_text())
    audio = load_audio(args.recording)
    kind, _, where = args.worker.partition(":")
    where, _, context = where.partition("@")
    if kind == "torch":
        import torch

        torch.set_num_threads(args.threads)
    backend = get_backend(kind, where, context=context or "auto", threads=args.threads)
    reference = " ".join(u["text"] for u in info["utterances"])
    backend.transcribe_batch([audio[: 16000 * 5]])  # warm-up
    rss_loaded = peak_rss_mb()

    # The stream first, so that the peak RSS is the streaming process's own (offline long-form
    # decoding runs after it, with its peak recorded separately).
    given = {name: getattr(args, name)[0] for name, *_ in POLICY if getattr(args, name)[0] is not None}
    online = OnlineProcessor.for_backend(backend, vad=load_vad(args.vad), **given)
    policy = {name: getattr(online, name) for name, *_ in POLICY}  # what ran: given or the engine's own
    chunk = policy["min_chunk"]
    spent = timed(backend.engine)
    start = time.perf_counter()
    emitted = simulate(online, audio)
    stream_seconds = time.perf_counter() - start
    stream_time = {stage: {"calls": n, "seconds": round(t, 3), **extra} for stage, (n, t, extra) in spent.items()}
    spent.clear()
    streamed = "".join(e.word.text for e, _ in emitted)
    rss = peak_rss_mb()

    start = time.perf_counter()
    offline = " ".join(s.text for s in transcribe(backend, audio))
    offline_seconds = time.perf_counter() - start
    rss_offline = peak_rss_mb()  # before scoring: the text normaliser imports transformers (and PyTorch)
    from adaptwin.evaluate import normalize, wer_counts

    ref_words = [w for u in info["utterances"] for w in u["words"]]
    ref_ends = [t for u in info["utterances"] for t in u["word_ends"]]
    final_index = np.cumsum([len(u["words"]) for u in info["utterances"]]) - 1
    hyp = [(normalize(e.word.text), at) for e, at in emitted]
    hyp_words, hyp_times = [], []
    for text, at in hyp:  # a committed "word" may normalise to several (e.g. numbers)
        for w in text.split():
            hyp_words.append(w)
            hyp_times.append(at)
    pairs = align_pairs(ref_words, hyp_words)
    lags = [hyp_times[j] - ref_ends[i] for i, j in pairs]
    matched = dict(pairs)
    finals = [hyp_times[matched[i]] - ref_ends[i] for i in final_index if i in matched]
    a_off, a_str = wer_counts(reference, offline), wer_counts(reference, streamed)
    folder = Path(where) if Path(where).is_dir() else None
    size = (
        sum(
            f.stat().st_size
            for f in folder.iterdir()
            if f.is_file() and f.suffix in (".onnx", ".onnx_data", ".safetensors", ".engine")
        )
        if folder
        else None
    )
    result = {
        "engine": args.worker,
        "audio_seconds": info["seconds"],
        "chunk": chunk,
        **{name: value for name, value in policy.items() if name != "min_chunk"},
        "vad": args.vad,
        "offline_wer": 100 * a_off.errors / max(1, a_off.ref_words),
        "stream_wer": 100 * a_str.errors / max(1, a_str.ref_words),
        "latency_median": statistics.median(lags) if lags else None,
        "latency_p90": float(np.percentile(lags, 90)) if lags else None,
        "end_of_speech_median": statistics.median(finals) if finals else None,
        "matched_words": len(pairs),
        "reference_words": len(ref_words),
        "decodes": online.decodes,
        "offline_rtf": offline_seconds / info["seconds"],
        "stream_rtf": stream_seconds / info["seconds"],
        "peak_rss_mb": rss,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_with_offline_mb": rss_offline,
        "loops": online.loops,
        "stream_time": stream_time,  # where the stream's decoding time went, per engine stage
        # each matched reference word and its latency, in order: where a tail comes from
        "word_lags": [[ref_words[i], round(lag, 3)] for (i, _), lag in zip(pairs, lags)],
        "model_bytes": size,
        "streamed_text": streamed,
        "offline_text": offline,
    }
    Path(args.result).write_text(json.dumps(result))
    return 0


def render(stored: dict) -> str:
    args, rec = stored["args"], stored.get("recording") or {}
    seconds = rec.get("seconds", stored.get("recording_seconds", 0.0))
    utterances = f", {len(rec['utterances'])} utterances" if rec.get("utterances") else ""
    lines = [
        f"Machine: {machine_line(stored['machine'])}; {args['threads']} threads",
        f"Command: `{stored['machine']['command']}`",
        *([stored["note"]] if stored.get("note") else []),
        "",
        f"Recording: {seconds:.0f} s{utterances} ({', '.join(rec.get('sets', SETS))} in turn); "
        f"LocalAgreement-n, VAD {args['vad']}",
        "",
        f"| engine | {_header()} | offline WER (%) | streaming WER (%) | latency median (s) "
        "| latency p90 (s) | end of speech to final (s) | stream RTF | loops | RSS loaded (MB) | stream peak RSS (MB) "
        "| peak with offline (MB) | model MB |",
        "|---" * (12 + len(POLICY)) + "|",
    ]
    for r in stored["rows"]:
        size = f"{r['model_bytes'] / 1e6:.0f}" if r["model_bytes"] else ""
        lines.append(
            f"| {_name(r)} | {_setting(r)} | {r['offline_wer']:.2f} | {r['stream_wer']:.2f} "
            f"| {r['latency_median']:.2f} "
            f"| {r['latency_p90']:.2f} | {r['end_of_speech_median']:.2f} | {r['stream_rtf']:.2f} "
            f"| {r['loops']} | {r['rss_loaded_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['peak_rss_with_offline_mb']:.0f} | {size} |"
        )
    lines += [
        "",
        f"Against the streaming targets (median ≤ {TARGETS['latency_median']} s, p90 ≤ {TARGETS['latency_p90']} s, "
        f"end of speech to final ≤ {TARGETS['end_of_speech_median']} s, streaming WER ≤ offline + "
        f"{TARGETS['wer_gap']}, stream peak RSS ≤ {TARGETS['peak_rss_mb']} MB):",
        "",
        f"| engine | {_header()} | median latency | p90 latency | end of speech to final | streaming WER | peak RSS |",
        "|---" * (6 + len(POLICY)) + "|",
    ]
    for r in stored["rows"]:
        cells = [
            verdict(r["latency_median"], TARGETS["latency_median"], unit=" s"),
            verdict(r["latency_p90"], TARGETS["latency_p90"], unit=" s"),
            verdict(r["end_of_speech_median"], TARGETS["end_of_speech_median"], unit=" s"),
            verdict(r["stream_wer"], r["offline_wer"] + TARGETS["wer_gap"]),
            verdict(r["peak_rss_mb"], TARGETS["peak_rss_mb"], unit=" MB"),
        ]
        lines.append(f"| {_name(r)} | {_setting(r)} | {' | '.join(cells)} |")
    chosen = choose(stored["rows"])
    if len(stored["rows"]) > len(chosen):
        lines += ["", f"Per engine, the lowest median latency at streaming WER ≤ offline + {TARGETS['wer_gap']}:", ""]
        for name, r in chosen.items():
            pick = (
                "none within the WER bound"
                if r is None
                else (
                    ", ".join(f"{HEADERS[n].replace(' (s)', '')} {v:g}" for n, v in _values(r).items())
                    + f": median {r['latency_median']:.2f} s, "
                    f"end of speech to final {r['end_of_speech_median']:.2f} s, streaming WER {r['stream_wer']:.2f} %"
                )
            )
            lines.append(f"- {name}: {pick}")
    return "\n".join(lines) + "\n"


def _header() -> str:
    return " | ".join(HEADERS[name] for name, *_ in POLICY)


def _values(row: dict) -> dict[str, float]:
    """The row's POLICY values (BEFORE for rows stored before a field was swept; an unset
    forget is the silence flush)."""
    values = {"min_chunk": row["chunk"]}
    values.update({name: row.get(name, BEFORE[name]) for name, *_ in POLICY[1:]})
    if values["forget"] is None:
        values["forget"] = values["silence_flush"]
    return values


def _setting(row: dict) -> str:
    return " | ".join(f"{v:g}" for v in _values(row).values())


def _name(row: dict) -> str:
    kind, _, where = row["engine"].partition(":")
    where, _, context = where.partition("@")
    return f"{kind}:{where.rstrip('/').split('/')[-1]}" + (f" ({context} context)" if context else "")


def choose(rows: list[dict]) -> dict[str, dict | None]:
    """Per engine, the chunk/agreement row with the lowest median word latency whose streaming
    WER is within the bound of its offline WER (None when no row is)."""
    best: dict[str, dict | None] = {}
    for r in rows:
        name = _name(r)
        best.setdefault(name, None)
        ok = r["latency_median"] is not None and r["stream_wer"] <= r["offline_wer"] + TARGETS["wer_gap"]
        if ok and (best[name] is None or r["latency_median"] < best[name]["latency_median"]):
            best[name] = r
    return best


def means(paths: list[Path]) -> str:
    """Per engine and policy, the means over stored runs (several runs of one setting differ by
    a point of WER, since each decode's timing moves the next one's window): per recording,
    then over all the recordings together, their words summed."""
    groups: dict[tuple, dict[tuple, list]] = {}
    for path in paths:
        stored = json.loads(path.read_text())
        rec = stored.get("recording") or {}
        recording = (", ".join(rec.get("sets", SETS)), round(rec.get("seconds", 0.0)))
        for r in stored["rows"]:
            values = _values(r)
            if not values["confidence"]:  # the unsure hold acts only with a confidence: the same policy
                values["unsure_hold"] = 0.0
            setting = " | ".join(f"{v:g}" for v in values.values())
            groups.setdefault((_name(r), setting), {}).setdefault(recording, []).append(r)
    lines = [
        f"| engine | {_header()} | recording | runs | offline WER (%) | streaming WER (%), mean ± sd (its standard "
        "error), over offline "
        "| latency median (s) | latency p90 (s), mean (highest) | end of speech to final (s) |",
        "|---" * (8 + len(POLICY)) + "|",
    ]
    for (name, setting), recordings in groups.items():
        errors = offline = words = 0.0
        for (sets, seconds), rows in recordings.items():
            n, mean = len(rows), statistics.mean
            wer = [r["stream_wer"] for r in rows]
            sd = f" ± {statistics.stdev(wer):.2f} ({statistics.stdev(wer) / n**0.5:.2f})" if n > 1 else ""
            sd += f", {mean(wer) - rows[0]['offline_wer']:+.2f}"
            lines.append(
                f"| {name} | {setting} | {sets} ({seconds} s) | {n} | {rows[0]['offline_wer']:.2f} "
                f"| {mean(wer):.2f}{sd} | {mean(r['latency_median'] for r in rows):.2f} "
                f"| {mean(r['latency_p90'] for r in rows):.2f} ({max(r['latency_p90'] for r in rows):.2f}) "
                f"| {mean(r['end_of_speech_median'] for r in rows):.2f} |"
            )
            words += rows[0]["reference_words"]
            errors += mean(r["stream_wer"] * r["reference_words"] for r in rows) / 100
            offline += rows[0]["offline_wer"] * rows[0]["reference_words"] / 100
        if len(recordings) > 1:
            lines.append(
                f"| {name} | {setting} | all {len(recordings)}, words summed "
                f"| {' / '.join(str(len(rows)) for rows in recordings.values())} | {100 * offline / words:.2f} "
                f"| {100 * errors / words:.2f} ({100 * (errors - offline) / words:+.2f} over offline) | | | |"
            )
    return "\n".join(lines) + "\n"


def _stored(stem: str) -> Path:
    """A stored run named by its stem under results/ or by its path."""
    path = result_file(stem if Path(stem).parent != Path(".") else RESULTS / stem, ".json")
    if not path.is_file():
        raise SystemExit(f"no stored streaming run {path}: name a results stem (streaming-...) or a .json path")
    return path


def publish() -> None:
    """docs/results/streaming.md from every stored streaming run and the memory hour."""
    sections = []
    runs = sorted(RESULTS.glob("streaming*.json"), key=lambda p: (p.stem != "streaming", p.stem))
    for path in runs:  # the default run (all engines) first, then the other stored runs
        stored = json.loads(path.read_text())
        seconds = (stored.get("recording") or {}).get("seconds", stored.get("recording_seconds", 0.0))
        engines = ", ".join(r["engine"].split("/")[-1] for r in stored["rows"])
        title = f"{engines}: {seconds / 60:.0f}-minute recording, commit {stored['machine']['commit']}"
        sections.append(f"## {title}\n\n`benchmarks/results/{path.name}`\n\n{render(stored)}")
    memory = RESULTS / "memory.md"
    if memory.is_file():
        sections.append(
            "## An hour of streaming\n\n`python benchmarks/memory.py --engine ort:C30_INT8 --recording RECORDING "
            "--reference RECORDING.json --hours 1 --chunk 5`: the streaming recording looped for an hour through the "
            "same `OnlineProcessor`, 5 s steps so that the hour fits in minutes (the buffer logic is the same at any "
            "step); RSS sampled once a minute between decodes; the committed text scored against the looped "
            "transcript.\n\n" + memory.read_text()
        )
    write_page("streaming", "Streaming: latency, accuracy, memory", "streaming.py", ABOUT, "\n".join(sections))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="the output of `adaptwin data build` (needed unless --render)")
    p.add_argument(
        "--engines", nargs="+", default=[], help="torch:MODEL or ort:EXPORT_DIR, each run in its own process"
    )
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument(
        "--sets",
        nargs="+",
        default=SETS,
        help="MANIFEST:SPLIT[:SPEAKER] sources of the recording, taken in turn (e.g. canary.jsonl:validation "
        "to study the policy on speakers no test uses)",
    )
    for name, kind, about in POLICY:
        p.add_argument(
            flag(name),
            dest=name,
            type=kind,
            nargs="+",
            default=[None],
            help=about + " (default: the engine's own policy; several: a sweep)",
        )
    p.add_argument("--vad", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=str(Path.home() / ".cache" / "adaptwin" / "bench-streaming"))
    p.add_argument("--out", default=str(RESULTS / "streaming"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--recording", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--note", help="a finding about the run, stored with it and shown on the page")
    p.add_argument("--render", action="store_true", help="only redraw the page from the stored results")
    p.add_argument(
        "--means",
        nargs="+",
        metavar="STEM",
        help="only print, per engine and policy, the means of stored runs (results/STEM.json or a path): "
        "per recording and over all of them",
    )
    p.add_argument(
        "--pauses",
        action="store_true",
        help="only count the recording's pauses inside utterances (results/recording_pauses.md)",
    )
    args = p.parse_args(argv)
    if args.render:
        publish()
        return 0
    if args.means:
        print(means([_stored(stem) for stem in args.means]))
        return 0
    if args.worker:
        return worker(args)
    if not args.data:
        p.error("--data is needed (the output of `adaptwin data build`)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.pauses:
        pauses_page(Path(args.data), args.minutes, work, args.sets, args.vad)
        return 0
    recording = work / f"recording-{args.minutes:g}min{_tag(args.sets)}.wav"
    info = build_recording(Path(args.data), args.minutes, recording, args.sets)
    print(f"recording: {info['seconds']:.0f} s, {len(info['utterances'])} utterances", flush=True)
    rows = []
    names = [name for name, *_ in POLICY]
    sweep = [
        (e, dict(zip(names, values))) for e in args.engines for values in product(*(getattr(args, n) for n in names))
    ]
    for spec, policy in sweep:
        result = work / f"stream-{len(rows)}.json"
        settings = [x for n, v in policy.items() if v is not None for x in (flag(n), str(v))]
        common = ["--data", args.data, "--vad", args.vad, "--threads", str(args.threads)]
        job = ["--worker", spec, "--recording", str(recording), "--result", str(result)]
        subprocess.run([sys.executable, __file__, *job, *common, *settings], check=True)
        rows.append(json.loads(result.read_text()))
        r = rows[-1]
        print(
            f"{spec} {_setting(r)}: offline WER {r['offline_wer']:.2f} %, stream WER {r['stream_wer']:.2f} %, latency median "
            f"{r['latency_median']:.2f} s p90 {r['latency_p90']:.2f} s, RSS {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    stored = {"machine": machine_info(), "args": vars(args), "recording": info, "rows": rows, "note": args.note}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps(stored, indent=1))
    result_file(out, ".md").write_text(render(stored))
    publish()
    print(render(stored))
    return 0


if __name__ == "__main__":
    sys.exit(main())
