"""Real-time factor and WER of `adaptwin eval` (PyTorch backend) at several batch sizes.

    python benchmarks/eval_rtf.py --data DIR [--model base] [--batch-sizes 1 8 16]

DIR is the output of `adaptwin data build`; the whole test split of `--set` (default test-real) is decoded.
Writes benchmarks/results/eval_rtf.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import result_file  # noqa: E402

import adaptwin  # noqa: E402
from adaptwin.data import read_utterances  # noqa: E402
from adaptwin.evaluate import evaluate  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="base")
    p.add_argument("--set", default="test-real")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 16])
    p.add_argument("--out", default=str(RESULTS / "eval_rtf"))
    args = p.parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()
    utts = [u for u in read_utterances(Path(args.data) / f"{args.set}.jsonl") if u.split == "test"]
    loaded = adaptwin.load_whisper(args.model)
    evaluate(loaded, utts[:4], batch_size=4)  # warm-up
    rows = []
    for bs in args.batch_sizes:
        r = evaluate(loaded, utts, batch_size=bs)
        rows.append({"batch_size": bs, **r.to_dict()})
        print(
            f"batch {bs}: WER {r.wer:.2f} %, RTF {r.rtf:.3f}, {r.audio_seconds:.0f} s audio in {r.wall_seconds:.0f} s",
            flush=True,
        )
    info = machine_info()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=1))
    lines = [
        f"Machine: {machine_line(info)}",
        f"Model {args.model}, {args.set} test set ({len(utts)} utterances)",
        "",
        "| batch size | WER (%) | RTF | audio (s) | wall (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['batch_size']} | {r['wer']:.2f} | {r['rtf']:.3f} | {r['audio_seconds']:.0f} | {r['wall_seconds']:.0f} "
        f"| {r['peak_rss_mb']:.0f} |"
        for r in rows
    ]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
