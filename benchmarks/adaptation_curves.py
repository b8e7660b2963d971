"""Does validation predict unseen speakers? One adaptation run, every validated checkpoint also
scored on the test sets (target test split, unseen synthetic voices, unseen real speakers).

    python benchmarks/adaptation_curves.py --data DIR --model COMPRESSED --teacher base --target allison \\
        [--minutes 20] [--limit 60] [--set lr=5e-5 replay=0.5 ...] [--tag NAME] [--max-windows N]

Runs ``adapt_`` in this process with the canary of DIR, saves the trained weights at each
validation, then decodes each saved checkpoint. Writes
benchmarks/results/adaptation-curves[-TAG].{json,md}. The test sets are never seen by training
or validation (``adaptwin data build`` guarantees it); this script only reads them after training.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import result_file  # noqa: E402
from scoring import TEST_SETS, score_sets  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, help="the compressed model folder")
    p.add_argument("--teacher", default="base")
    p.add_argument("--target", default="allison", help="allison or joe (DIR/NAME.jsonl)")
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--limit", type=int, default=60, help="test utterances per set")
    p.add_argument("--set", nargs="*", default=[], help="AdaptConfig fields, e.g. lr=5e-5 replay=0.5")
    p.add_argument("--tag", default="")
    p.add_argument("--work", default="adaptation-curves-work")
    args = p.parse_args(argv)
    import torch

    import adaptwin
    import adaptwin.adapt.core as core
    from adaptwin.adapt import AdaptConfig, adapt_

    data, work = Path(args.data), Path(args.work) / (args.tag or "default")
    work.mkdir(parents=True, exist_ok=True)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    config = AdaptConfig(minutes=args.minutes, **{k: parse_value(v) for k, v in overrides.items()})
    student, teacher = adaptwin.load_whisper(args.model), adaptwin.load_whisper(args.teacher)
    saved = []

    class Recording(core.Validator):  # also keeps the weights of every validated checkpoint
        def __call__(self):
            path = work / f"step{len(saved):03d}.pt"
            torch.save({n: p.detach().clone() for n, p in self.student.named_parameters() if p.requires_grad}, path)
            saved.append(path)
            return super().__call__()

    core.Validator = Recording
    start = time.perf_counter()
    report = adapt_(
        student,
        teacher,
        data / f"{args.target}.jsonl",
        data / "general.jsonl",
        config,
        canary=data / "canary.jsonl",
        progress=True,
    )
    seconds = time.perf_counter() - start
    rows = []
    sets = {"target": data / f"{args.target}.jsonl", **{k: data / v for k, v in TEST_SETS.items()}}
    for e, path in zip(report.validation, saved):
        model = copy.deepcopy(student.model)
        state = torch.load(path, weights_only=True)  # the trained parameters; the rest never change
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in state:
                    p.copy_(state[n])
        wers = score_sets(adaptwin.LoadedWhisper(model, student.processor, student.path), sets, args.limit)
        rows.append({**e, **{k: v["wer"] for k, v in wers.items()}, "kept": e == report.kept})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": machine_info(),
        "config": config.to_dict(),
        "dense_validation": report.dense,
        "seconds": round(seconds, 1),
        "steps": report.steps,
        "stopped_by": report.stopped_by,
        "rows": rows,
    }
    stem = RESULTS / ("adaptation-curves" + (f"-{args.tag}" if args.tag else ""))
    result_file(stem, ".json").write_text(json.dumps(result, indent=1))
    cols = [
        "step",
        "epoch",
        "target_ce",
        "canary_ce",
        "canary_kl",
        "canary_encoder",
        "score",
        "target",
        "test-tts",
        "test-real",
    ]
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['machine']['command']}`",
        f"Dense teacher validation: {report.dense}; {report.steps} steps, {seconds:.0f} s, stopped by "
        f"{report.stopped_by or 'the last epoch'}",
        "",
        "| " + " | ".join(cols) + " | kept |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + f" | {'yes' if r['kept'] else ''} |")
    result_file(stem, ".md").write_text("\n".join(lines) + "\n")
    print(result_file(stem, ".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
