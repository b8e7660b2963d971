"""Memory of a long stream: does RSS stay flat and the buffer bounded over an hour of audio?

    python benchmarks/memory.py --engine ort:EXPORT_DIR --recording WAV [--hours 1] [--chunk 5]

Loops the recording (e.g. the one benchmarks/streaming.py builds) through the same
``OnlineProcessor`` as fast as the engine allows (``--chunk`` seconds of audio per step;
the buffer logic is the same at any chunk size), sampling resident memory and the buffer
length along the way. Reports RSS after 5 minutes and after the whole stream, the peak, the
longest buffer and the words committed. Writes benchmarks/results/memory.{json,md}.
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
from pages import result_file  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    """Current resident memory (the peak is ``adaptwin.evaluate.peak_rss_mb``)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--engine", required=True, help="torch:MODEL or ort:EXPORT_DIR")
    p.add_argument("--recording", required=True)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--chunk", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--reference",
        help="the recording's JSON (benchmarks/streaming.py writes it beside the WAV): "
        "score the committed text against the looped transcript",
    )
    p.add_argument("--out", default=str(RESULTS / "memory"))
    args = p.parse_args(argv)

    from adaptwin.audio import SAMPLE_RATE, load_audio
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.heap import peak_rss_mb
    from adaptwin.runtime.streaming import OnlineProcessor
    from adaptwin.runtime.vad import load_vad

    kind, _, where = args.engine.partition(":")
    backend = get_backend(kind, where, threads=args.threads)
    online = OnlineProcessor(backend, min_chunk=args.chunk, vad=load_vad("auto"))
    audio = load_audio(args.recording)
    step = int(args.chunk * SAMPLE_RATE)
    total = args.hours * 3600
    samples, words, fed, longest, said = [], 0, 0.0, 0.0, []
    start = time.perf_counter()
    next_sample = 0.0
    while fed < total:
        for i in range(0, len(audio), step):
            online.insert_audio(audio[i : i + step])
            new = online.process()
            words += len(new)
            said += [e.word.text for e in new]
            fed += min(step, len(audio) - i) / SAMPLE_RATE
            longest = max(longest, len(online.buffer) / SAMPLE_RATE)
            if fed >= next_sample:
                samples.append(
                    {
                        "stream_s": round(fed, 1),
                        "rss_mb": round(rss_mb(), 1),
                        "buffer_s": round(len(online.buffer) / SAMPLE_RATE, 2),
                        "words": words,
                        "wall_s": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(samples[-1]), flush=True)
                next_sample += 60.0
            if fed >= total:
                break
    last = online.finish()
    words += len(last)
    said += [e.word.text for e in last]
    at5 = next(s for s in samples if s["stream_s"] >= 300)
    final = {
        "stream_s": round(fed, 1),
        "rss_mb": round(rss_mb(), 1),
        "buffer_s": 0.0,
        "words": words,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    samples.append(final)
    # one sample is noisy (RSS moves by a decode's activations): also the median of the samples
    # in minutes 5-10 and in the last 5 minutes of the stream
    early = statistics.median(s["rss_mb"] for s in samples if 300 <= s["stream_s"] <= 600)
    late = statistics.median(s["rss_mb"] for s in samples if s["stream_s"] >= fed - 300)
    result = {
        "engine": args.engine,
        "chunk": args.chunk,
        "hours": args.hours,
        "rss_at_5min_mb": at5["rss_mb"],
        "rss_median_5_10min_mb": early,
        "rss_median_last_5min_mb": late,
        "median_growth": late / early - 1,
        "rss_at_end_mb": final["rss_mb"],
        "growth": final["rss_mb"] / at5["rss_mb"] - 1,
        "peak_rss_mb": peak_rss_mb(),
        "longest_buffer_s": longest,
        "words": words,
        "decodes": online.decodes,
        "wall_s": final["wall_s"],
        "loops_caught": online.loops,
        "samples": samples,
    }
    if args.reference:
        from adaptwin.evaluate import wer_counts

        utts = json.loads(Path(args.reference).read_text())["utterances"]
        spoken = " ".join(u["text"] for u in utts)
        length = len(audio) / SAMPLE_RATE
        whole = int(fed // length)
        # whole loops, then the utterances of the last, partial loop that ended before the stream did
        partial = [u["text"] for u in utts if u["end"] <= fed - whole * length]
        reference = " ".join([spoken] * whole + partial)
        a = wer_counts(reference, "".join(said))
        result["wer"] = {
            "loops": whole,
            "ref_words": a.ref_words,
            "substitutions": a.substitutions,
            "deletions": a.deletions,
            "insertions": a.insertions,
            "wer": round(100 * a.errors / a.ref_words, 2),
        }
    info = machine_info()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps({"machine": info, "args": vars(args), **result}, indent=1))
    text = (
        f"Machine: {machine_line(info)}\n\n{args.engine.split('/')[-1]}, {fed / 3600:.2f} h of audio "
        f"(recording looped), {args.chunk} s per step, {online.decodes} decodes in {final['wall_s']:.0f} s:\n\n"
        f"| RSS after 5 min (MB) | RSS at the end (MB) | change | peak RSS (MB) | longest buffer (s) | words |\n"
        f"|---|---|---|---|---|---|\n| {at5['rss_mb']:.0f} | {final['rss_mb']:.0f} | {result['growth']:+.1%} "
        f"| {result['peak_rss_mb']:.0f} | {longest:.1f} | {words} |\n"
        f"\nMedian RSS of the samples (one a minute) in minutes 5-10: {early:.0f} MB; in the last 5 minutes: "
        f"{late:.0f} MB ({result['median_growth']:+.1%}).\n"
    )
    if "wer" in result:
        w = result["wer"]
        text += (
            f"\nCommitted text against the looped transcript ({w['ref_words']} words): WER {w['wer']:.2f} % "
            f"(S {w['substitutions']}, D {w['deletions']}, I {w['insertions']}); decoding loops caught and "
            f"re-decoded: {result['loops_caught']}.\n"
        )
    result_file(out, ".md").write_text(text)
    if out == RESULTS / "memory":
        from streaming import publish  # the hour is a section of the streaming page

        publish()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
