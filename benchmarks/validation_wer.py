"""WER on the validation speakers, per speaker, for several models: what choices are made on.

    python benchmarks/validation_wer.py --data DIR --models base all45=FOLDER [--limit N]

DIR is the output of `adaptwin data build`; its `canary.jsonl` holds the validation speakers,
whom no training, calibration or test set hears. Each ``NAME=MODEL`` (or a bare MODEL, named
by itself) is decoded by `adaptwin eval`'s path: PyTorch, greedy, batch 8, the audio's own
length for models taught a dynamic context, the no-speech gate on. Use it to choose between
models or settings; the test sets (`runtime_speed.py`, `adaptation.py`) then run once.

The ± figures are standard errors from resampling the utterances (errors cluster within an
utterance, so resampling words would understate them): of each WER, and of each model's
difference from the first one (or `--versus NAME`) on the same utterances (paired). A second
table gives the same for the synthetic voices (`adaptwin data build`'s TTS engines) and the
real ones apart: the test sets hold both kinds.

Writes benchmarks/results/validation_wer.{json,md} (or --out) and docs/results/validation_wer.md;
``--render`` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import publish_runs, result_args, store_and_publish  # noqa: E402
from scoring import paired, utterance_errors  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ABOUT = __doc__.split("\n\n", 2)[2].rsplit("\n\nWrites", 1)[0]


def measure(model: str, data: Path, limit: int | None) -> dict:
    from adaptwin.data import read_utterances
    from adaptwin.data.tts import VOICES
    from adaptwin.evaluate import evaluate
    from adaptwin.runtime import get_backend

    utts = [u for u in read_utterances(data / "canary.jsonl") if u.split == "validation"][:limit]
    per_utterance = []
    report = evaluate(get_backend("torch", model), utts, results=per_utterance)
    synthetic = {v.name for v in VOICES}
    return {
        "kinds": {r.audio: "synthetic" if r.speaker in synthetic else "real" for r in per_utterance},
        "model": model,
        "wer": round(report.wer, 2),
        "n_words": report.n_words,
        "errors": report.substitutions + report.deletions + report.insertions,
        "per_speaker": {s: v["wer"] for s, v in report.per_speaker.items()},
        "utterances": utterance_errors(per_utterance),
    }


def render(result: dict) -> str:
    speakers = sorted({s for r in result["models"].values() for s in r["per_speaker"]})
    models = list(result["models"].items())
    first = result.get("versus") or models[0][0]
    first_row = result["models"][first]
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['command']}`",
        "",
        f"| model | WER (%) | errors / words | vs {first} (points) | " + " | ".join(speakers) + " |",
        "|---|---|---|---|" + "---|" * len(speakers),
    ]
    for name, r in models:
        cells = [f"{r['per_speaker'][s]:.2f}" if s in r["per_speaker"] else "" for s in speakers]
        se, diff = paired(r["utterances"], None if name == first else first_row["utterances"])
        vs = "" if diff is None else f"{r['wer'] - first_row['wer']:+.2f} ± {diff:.2f}"
        row = f"| {name} | {r['wer']:.2f} ± {se:.2f} | {r['errors']} / {r['n_words']} | {vs} | "
        lines.append(row + " | ".join(cells) + " |")
    if all("kinds" in r for _, r in models):  # runs since the twenty-fourth session
        lines += [
            "",
            f"By kind of voice (WER %, and the paired difference from {first} in points):",
            "",
            "| model | real voices | vs " + first + " | synthetic voices | vs " + first + " |",
            "|---|---|---|---|---|",
        ]
        for name, r in models:
            cells = []
            for kind in ("real", "synthetic"):
                mine = {a: v for a, v in r["utterances"].items() if r["kinds"].get(a) == kind}
                theirs = {a: v for a, v in first_row["utterances"].items() if a in mine}
                wer = 100 * sum(v[0] for v in mine.values()) / max(1, sum(v[1] for v in mine.values()))
                base = 100 * sum(v[0] for v in theirs.values()) / max(1, sum(v[1] for v in theirs.values()))
                se, diff = paired(mine, None if name == first else theirs)
                cells += [f"{wer:.2f} ± {se:.2f}", "" if diff is None else f"{wer - base:+.2f} ± {diff:.2f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="the output of `adaptwin data build`")
    p.add_argument("--models", nargs="*", default=[], help="NAME=MODEL or MODEL (anything `adaptwin eval` loads)")
    p.add_argument("--limit", type=int, help="only the first N validation utterances")
    p.add_argument("--versus", help="the NAME every other model is compared with (default: the first)")
    result_args(p, RESULTS / "validation_wer")
    args = p.parse_args()
    if not args.render and not (args.data and args.models):
        p.error("--data DIR and --models ... are required")
    result = None
    if not args.render:
        import transformers

        transformers.logging.set_verbosity_error()
        models = dict(m.split("=", 1) if "=" in m else (Path(m).name, m) for m in args.models)
        if args.versus and args.versus not in models:
            p.error(f"--versus {args.versus}: not one of the models' names ({', '.join(models)})")
        result = {
            "machine": machine_info(),
            "command": "python benchmarks/validation_wer.py " + " ".join(sys.argv[1:]),
            "models": {n: measure(m, Path(args.data), args.limit) for n, m in models.items()},
            "versus": args.versus,
        }
    store_and_publish(Path(args.out), result, args.note, render, None)
    page = ("validation_wer", "WER on the validation speakers", "validation_wer.py", ABOUT)
    publish_runs(RESULTS, "validation_wer", page, render)


if __name__ == "__main__":
    main()
