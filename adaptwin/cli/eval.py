"""``adaptwin eval``: word error rate of a model on a manifest."""

from __future__ import annotations

import argparse
import json

from ..data import read_utterances
from ..evaluate import evaluate
from ..runtime import get_backend
from ..runtime.decoding import DecodingOptions
from .common import add_context_arg, add_gate_args, add_language_arg, gate_from, write_json


def register(sub) -> None:
    p = sub.add_parser("eval", help="word error rate of a model on a manifest")
    p.add_argument("--model", required=True, help="anything load_whisper accepts, dense or compressed")
    p.add_argument("--data", required=True, help="JSON-lines manifest or folder of audio with .txt transcripts")
    p.add_argument("--split", help="only utterances of this split (e.g. test)")
    p.add_argument("--limit", type=int, help="only the first N utterances")
    p.add_argument("--backend", default="torch", choices=["torch", "ort", "trt"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--beams", type=int, default=1, help="beam size (1: greedy)")
    add_language_arg(p)
    p.add_argument("--json", help="write the report (wer in percent, per speaker, rtf, ...) here")
    p.add_argument("--per-utterance", help="write one JSON line per utterance here")
    add_context_arg(p)
    add_gate_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    DecodingOptions(beam_size=args.beams)  # options are checked before the data and the model
    utterances = read_utterances(args.data)
    if args.split:
        utterances = [u for u in utterances if u.split == args.split]
    if args.limit:
        utterances = utterances[: args.limit]

    backend = get_backend(args.backend, args.model, args.context, args.run_margin)
    per_utt = [] if args.per_utterance else None
    report = evaluate(
        backend,
        utterances,
        batch_size=args.batch_size,
        num_beams=args.beams,
        language=args.language,
        progress=True,
        results=per_utt,
        gate=gate_from(args),
    )
    print(
        f"WER {report.wer:.2f} % on {report.n_utterances} utterances, {report.n_words} words "
        f"(S {report.substitutions}, D {report.deletions}, I {report.insertions}); RTF {report.rtf:.3f}, "
        f"peak RSS {report.peak_rss_mb:.0f} MB" + (f"; skipped {len(report.skipped)}" if report.skipped else "")
    )
    for speaker, s in report.per_speaker.items():
        print(f"  {speaker:<24} WER {s['wer']:6.2f} %  ({s['n_utterances']} utts, {s['n_words']} words)")
    report.model = str(args.model)
    if args.json:
        write_json(args.json, report.to_dict())
    if per_utt is not None:
        with open(args.per_utterance, "w", encoding="utf-8") as f:
            for r in per_utt:
                f.write(json.dumps(r.__dict__, ensure_ascii=False) + "\n")
    return 0
