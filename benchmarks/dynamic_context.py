"""Dynamic audio context: the encoder's cost follows the audio. One run, same audio, same threads.

    python benchmarks/dynamic_context.py --data DIR --model ADAPTED [--dense base] [--limit 100] [--work DIR]

ADAPTED is a model adapted with ``adaptwin adapt --dynamic-context`` (e.g. base, encoder -50 %,
taught on general speech alone). It is exported to ONNX Runtime int8 and run twice: with
``--context full`` (the 30 s window) and ``--context auto`` (the audio's length, bucketed, and
at least each of ``--margins`` seconds after it; the first margin's row meets the targets).
Beside it, on the same utterances: the dense model exported to ORT int8 and faster-whisper
int8 (the same dense weights in CTranslate2, its default decoding).

1. end to end on the general test sets (unseen speakers; ``test-tts.jsonl`` and
   ``test-real.jsonl``, or the manifests named by ``--sets``, ``NAME:SPLIT`` for another split
   (``canary.jsonl:validation``: the validation speakers, to choose settings), each limited to every k-th
   utterance so that N remain), one utterance at a time: WER and RTF per utterance-length bucket (< 3 s, 3-8 s, 8-30 s) and overall;
2. encoder milliseconds of the adapted model's ORT int8 export on real speech cut to 2, 5, 10
   and 30 s, at the context each gets (median of --repeats calls, lengths interleaved).

Writes benchmarks/results/dynamic_context.{json,md} and docs/results/dynamic_context.md;
``--render [--note TEXT]`` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import publish_runs, result_args, store_and_publish, verdict  # noqa: E402
from scoring import TEST_SETS, FasterWhisper, manifest_split, paired  # noqa: E402

from adaptwin.models.context import RUN_MARGIN  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BUCKETS = ((0.0, 3.0, "< 3 s"), (3.0, 8.0, "3-8 s"), (8.0, 30.01, "8-30 s"))
CLIP_SECONDS = (2.0, 5.0, 10.0, 30.0)
DYNAMIC = "ort adapted int8, dynamic context"
ABOUT = """
From `python benchmarks/dynamic_context.py` (one run; `benchmarks/results/dynamic_context.{json,md}`).
The adapted model learnt a dynamic audio context (`adaptwin adapt --dynamic-context`): its
encoder runs on the audio plus a margin, rounded up to whole buckets, instead of a 30 s
window. "full" runs the same export with `--context full`. Every row decodes the same
utterances of speakers that no training, replay, calibration or validation used, one at a
time, greedy with the fallback each engine has by default; RTF is decoding wall time over
audio time (features, encoder and decoder; audio loading excluded).
"""

# the dynamic-context issue's targets (2 cores, base compressed int8 on ORT)
TARGETS = {"wer_vs_full": 0.5, "encoder_5s_share": 0.25, "speedup_vs_fw": 3.0, "wer_vs_fw": 0.5}


def bucket_of(seconds: float) -> str:
    return next(name for lo, hi, name in BUCKETS if lo <= seconds < hi)


def prepare(args) -> dict[str, Path]:
    """ORT int8 exports of the dense and the adapted model (cached under --work)."""
    from adaptwin.export import ExportOptions, export

    folders = {}
    for label, source in (("dense", args.dense), ("adapted", args.model)):
        out = Path(args.work) / f"onnx-{Path(source).name}-int8"
        if not (out / "adaptwin_export.json").is_file():
            print(export(source, out, ExportOptions(precision="int8", threads=args.threads)).format(), flush=True)
        folders[label] = out
    return folders


def end_to_end(backend, utts) -> dict:
    """WER and RTF overall and per length bucket, one utterance at a time."""
    from adaptwin.audio import load_audio
    from adaptwin.evaluate import Score, wer_counts

    audios = [load_audio(u.audio) for u in utts]
    backend.transcribe_batch(audios[:2])  # warm-up
    scores = {name: Score() for *_, name in BUCKETS}
    total, wall, audio_s = Score(), {n: 0.0 for n in scores}, {n: 0.0 for n in scores}
    per_utterance = {}
    for u, audio in zip(utts, audios):
        start = time.perf_counter()
        text = backend.transcribe_batch([audio])[0]
        spent = time.perf_counter() - start
        seconds = len(audio) / 16000
        name = bucket_of(seconds)
        counts = wer_counts(u.text, text)
        scores[name].add(counts)
        total.add(counts)
        per_utterance[str(u.audio)] = [counts.errors, counts.ref_words]
        wall[name] += spent
        audio_s[name] += seconds
    row = {
        name: {
            "wer": round(scores[name].wer, 2),
            "utterances": scores[name].utterances,
            "rtf": round(wall[name] / max(audio_s[name], 1e-9), 4),
        }
        for name in scores
    }
    row["all"] = {
        "wer": round(total.wer, 2),
        "utterances": total.utterances,
        "rtf": round(sum(wall.values()) / sum(audio_s.values()), 4),
        "per_utterance": per_utterance,  # {audio: [errors, words]}, for standard errors
    }
    return row


def encoder_ms(folder: Path, args) -> dict[str, dict]:
    """Median encoder milliseconds on real speech cut to each of CLIP_SECONDS, at its context."""
    import numpy as np

    from adaptwin.audio import load_audio
    from adaptwin.data import bundled_clips
    from adaptwin.models.context import encoder_frames
    from adaptwin.runtime.ort import OrtWhisper

    engine = OrtWhisper(folder, threads=args.threads)
    speech = np.concatenate([load_audio(u.audio) for u in bundled_clips()])
    while len(speech) < 30 * 16000:
        speech = np.concatenate([speech, speech])
    runs = {}
    for seconds in CLIP_SECONDS:
        clip = speech[: int(seconds * 16000)]
        frames = encoder_frames(engine.config, seconds, margin=args.margins[0])
        feats = engine.features([clip], frames)
        runs[f"{seconds:g} s"] = (frames, feats)
    times = {name: [] for name in runs}
    for _, feats in runs.values():
        engine.encode(feats)  # warm-up
    for _ in range(args.repeats):  # round-robin: a shared machine's drift hits every length alike
        for name, (_, feats) in runs.items():
            start = time.perf_counter()
            engine.encode(feats)
            times[name].append(time.perf_counter() - start)
    return {
        name: {"frames": frames, "ms": round(1000 * statistics.median(times[name]), 1)}
        for name, (frames, _) in runs.items()
    }


def run(args) -> dict:
    from adaptwin.models.builtin import builtin_ct2_dir
    from adaptwin.runtime import get_backend

    folders = prepare(args)
    utts = [u for name in args.sets for u in manifest_split(Path(args.data), name, args.limit)]
    dynamic = {  # the first margin's row is the one the targets read
        DYNAMIC if i == 0 else f"{DYNAMIC}, margin {m:g} s": m for i, m in enumerate(args.margins)
    }
    engines = {
        "faster-whisper int8": lambda: FasterWhisper(str(builtin_ct2_dir(Path(args.dense).name)), args.threads),
        "ort dense int8": lambda: get_backend("ort", folders["dense"], "full", threads=args.threads),
        "ort adapted int8, full context": lambda: get_backend("ort", folders["adapted"], "full", threads=args.threads),
        **{
            name: (lambda m=m: get_backend("ort", folders["adapted"], "auto", m, threads=args.threads))
            for name, m in dynamic.items()
        },
    }
    rows = {}
    for name, make in engines.items():
        rows[name] = end_to_end(make(), utts)
        print(name, json.dumps(rows[name]), flush=True)
    encoder = encoder_ms(folders["adapted"], args)
    print("encoder", json.dumps(encoder), flush=True)
    context = json.loads((folders["adapted"] / "config.json").read_text()).get("adaptwin", {}).get("context")
    return {
        "machine": machine_info(),
        "model": args.model,
        "dense": args.dense,
        "context": context,
        "margins": list(args.margins),
        "utterances": len(utts),
        "sets": list(args.sets),
        "rows": rows,
        "encoder": encoder,
    }


def _gap(a: dict, b: dict) -> str:
    """' (+d ± se)': a's WER over b's on the same utterances, where the run kept each one's errors."""
    if "per_utterance" not in a or "per_utterance" not in b:
        return ""
    return f" ({a['wer'] - b['wer']:+.2f} ± {paired(a['per_utterance'], b['per_utterance'])[1]:.2f})"


def verdicts(result: dict) -> list[tuple[str, str, str]]:
    rows, enc = result["rows"], result["encoder"]
    full, dyn = rows["ort adapted int8, full context"]["all"], rows[DYNAMIC]["all"]
    fw = rows["faster-whisper int8"]["all"]
    share = enc["5 s"]["ms"] / enc["30 s"]["ms"]
    speedup = fw["rtf"] / dyn["rtf"]
    return [
        (
            "WER at dynamic context ≤ full context + 0.5",
            f"{dyn['wer']:.2f} vs {full['wer']:.2f}{_gap(dyn, full)}",
            verdict(dyn["wer"], full["wer"] + TARGETS["wer_vs_full"]),
        ),
        (
            "encoder on a 5 s clip ≤ 25 % of a 30 s window",
            f"{100 * share:.0f} %",
            verdict(share, TARGETS["encoder_5s_share"]),
        ),
        (
            "end-to-end RTF ≥ 3× faster than faster-whisper int8",
            f"{speedup:.2f}×",
            verdict(speedup, TARGETS["speedup_vs_fw"], lower_is_better=False),
        ),
        (
            "… at WER ≤ faster-whisper's + 0.5",
            f"{dyn['wer']:.2f} vs {fw['wer']:.2f}{_gap(dyn, fw)}",
            verdict(dyn["wer"], fw["wer"] + TARGETS["wer_vs_fw"]),
        ),
    ]


def _margin(result: dict) -> str:
    """The run margin of the targets' row (runs before it existed used the model's own)."""
    margins = result.get("margins")
    return f"{margins[0]:g} s at least" if margins else "the model's own"


def render(result: dict) -> str:
    names = [name for *_, name in BUCKETS] + ["all"]
    first = next(iter(result["rows"].values()))
    ctx = result.get("context") or {}
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['machine']['command']}`",
        f"Adapted model: `{result['model']}` (context: the audio + {ctx.get('margin', '?')} s, in "
        f"{ctx.get('bucket', '?')} s buckets; run margin: {_margin(result)}); dense: `{result['dense']}`.",
        "Test sets: " + ", ".join(f"`{n}`" for n in result.get("sets", ["test-tts.jsonl", "test-real.jsonl"])) + ". "
        "Utterances per length bucket: " + ", ".join(f"{n} {first[n]['utterances']}" for n in names) + ".",
        *([result["note"]] if result.get("note") else []),
        "",
        "| engine | "
        + " | ".join(f"WER {n} (%)" for n in names)
        + " | "
        + " | ".join(f"RTF {n}" for n in names)
        + " |",
        "|---|" + "---|" * (2 * len(names)),
    ]
    for engine, row in result["rows"].items():
        lines.append(
            f"| {engine} | "
            + " | ".join(f"{row[n]['wer']:.2f}" for n in names)
            + " | "
            + " | ".join(f"{row[n]['rtf']:.3f}" for n in names)
            + " |"
        )
    lines += ["", "Encoder of the adapted model's ORT int8 export on real speech (median):", ""]
    lines += ["| clip | encoder frames | ms | share of 30 s |", "|---|---|---|---|"]
    full_ms = result["encoder"]["30 s"]["ms"]
    for clip, e in result["encoder"].items():
        lines.append(f"| {clip} | {e['frames']} | {e['ms']:.1f} | {100 * e['ms'] / full_ms:.0f} % |")
    lines += ["", "Against the targets:", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in verdicts(result)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="output of `adaptwin data build`")
    p.add_argument("--model", help="a model adapted with --dynamic-context")
    p.add_argument("--dense", default="base", help="the dense model it was compressed from")
    p.add_argument("--limit", type=int, default=100, help="every k-th test utterance so that N remain (per set)")
    p.add_argument(
        "--sets",
        nargs="+",
        default=list(TEST_SETS.values()),
        help="manifests under --data, NAME or NAME:SPLIT (default: the general test sets' test splits)",
    )
    p.add_argument(
        "--margins",
        nargs="+",
        type=float,
        default=[RUN_MARGIN],
        help="run margins of the dynamic-context rows (seconds heard after the audio, at least); the first "
        "one's row is scored against the targets",
    )
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=str(Path.home() / ".cache" / "adaptwin" / "bench-dynamic"))
    result_args(p, RESULTS / "dynamic_context")
    args = p.parse_args(argv)
    result = None
    if not args.render:
        if not args.data or not args.model:
            p.error("--data and --model are needed (or --render)")
        import transformers

        transformers.logging.set_verbosity_error()
        result = run(args)
    store_and_publish(Path(args.out), result, args.note, render, None)
    # the page shows every stored run (one per adapted model measured)
    page = ("dynamic_context", "Dynamic audio context", "dynamic_context.py", ABOUT)
    publish_runs(RESULTS, "dynamic_context", page, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
