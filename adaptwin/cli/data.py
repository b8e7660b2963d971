"""``adaptwin data build``: the speaker-disjoint data sets."""

from __future__ import annotations

import argparse

from ..data.build import build_standard_sets


def register(sub) -> None:
    p = sub.add_parser("data", help="speech data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    b = data_sub.add_parser("build", help="build the target-speaker, general, canary, calibration and test sets")
    b.add_argument("--out", required=True)
    b.add_argument(
        "--fotaq",
        help="folder of the FOTAQ voice-acted clips (manifest.jsonl); default: "
        "$ADAPTWIN_FOTAQ or a shared/speech/fotaq nearby",
    )
    b.add_argument("--per-voice", type=int, default=180, help="sentences per replay voice")
    b.add_argument("--canary-per-voice", type=int, default=30, help="sentences per canary (validation) voice")
    b.add_argument("--test-per-voice", type=int, default=60, help="sentences per test voice")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=2)
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = build_standard_sets(
        args.out,
        per_voice=args.per_voice,
        canary_per_voice=args.canary_per_voice,
        test_per_voice=args.test_per_voice,
        fotaq_root=args.fotaq,
        seed=args.seed,
        workers=args.workers,
        progress=True,
    )
    for name, counts in report.counts.items():
        print(f"{name + '.jsonl':<14} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for speaker, mins in sorted(report.minutes.items()):
        print(f"  {speaker:<18} " + ", ".join(f"{k} {v:.1f} min" for k, v in sorted(mins.items())))
    if report.failed:
        print(f"{len(report.failed)} item(s) failed and were left out (listed in provenance.json)")
    print(f"built {args.out} in {report.seconds:.0f} s")
    return 0
