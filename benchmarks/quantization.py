"""Which int8 weights to quantize in blocks: WER, speed and size per scheme, beside faster-whisper.

    python benchmarks/quantization.py --data DIR [--models base ADAPTED ...] [--blocks ffn decoder all]
        [--limit 100] [--work DIR]

Each model is exported to ONNX Runtime int8 once per ``--int8-blocks`` scheme (`adaptwin
export --precision int8 --int8-blocks B`): ``ffn`` puts only the second FFN matrices in 8-bit
blocks (the scheme of every export before this benchmark), ``decoder`` adds every decoder
weight, the logits and so the token lookup included, ``all`` every weight (``auto``, the
default, is ``all`` for a dynamic-context model and ``decoder`` otherwise). Every row decodes
the same general test utterances (unseen speakers), one at a time, as
`benchmarks/dynamic_context.py` does (a model trained for a dynamic context runs at its own
context; ``--sets canary.jsonl:validation`` scores the validation speakers instead);
faster-whisper int8 (the same dense weights in CTranslate2) runs in the same run.

Writes benchmarks/results/quantization.{json,md} (or --out) and docs/results/quantization.md;
``--render`` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from dynamic_context import end_to_end  # noqa: E402
from machine import machine_info, machine_line  # noqa: E402
from pages import publish_runs, result_args, store_and_publish  # noqa: E402
from scoring import TEST_SETS, FasterWhisper, manifest_split  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ABOUT = """
From `python benchmarks/quantization.py` (one run; `benchmarks/results/quantization.{json,md}`).
ONNX Runtime's dynamic int8 (`MatMulInteger`) quantizes each weight per output channel and
each activation tensor with one scale; `MatMulNBits` (8 bits, blocks of 32 inputs) scales
weights and activations per block, so an outlier channel only coarsens its own block. The
schemes differ in which weights go to blocks (`adaptwin export --int8-blocks`). Every row of
a run decodes the same utterances, one at a time: of the general test sets (speakers that no
training, replay, calibration or validation used) or, where the sets say `:validation`, of
the canary speakers, on which a default may be chosen. RTF is decoding wall time over audio
time.
"""


def run(args) -> dict:
    from adaptwin.export import ExportOptions, export
    from adaptwin.models.builtin import builtin_ct2_dir
    from adaptwin.runtime import get_backend

    utts = [u for spec in args.sets for u in manifest_split(Path(args.data), spec, args.limit)]
    rows = {"faster-whisper int8": dict(end_to_end(FasterWhisper(str(builtin_ct2_dir("base")), args.threads), utts))}
    print("faster-whisper int8", json.dumps(rows["faster-whisper int8"]["all"]), flush=True)
    for model in args.models:
        for blocks in args.blocks:
            out = Path(args.work) / f"onnx-{Path(model).name}-int8-{blocks}"
            if not (out / "adaptwin_export.json").is_file():
                options = ExportOptions(precision="int8", int8_blocks=blocks, threads=args.threads)
                print(export(model, out, options).format(), flush=True)
            name = f"{Path(model).name}, int8 blocks: {blocks}"
            rows[name] = dict(end_to_end(get_backend("ort", out, "auto", threads=args.threads), utts))
            rows[name]["bytes"] = sum(f.stat().st_size for f in out.iterdir() if f.suffix in (".onnx", ".onnx_data"))
            print(name, json.dumps(rows[name]["all"]), flush=True)
    return {"machine": machine_info(), "models": args.models, "sets": args.sets, "utterances": len(utts), "rows": rows}


def render(result: dict) -> str:
    fw = result["rows"]["faster-whisper int8"]["all"]
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['machine']['command']}`",
        f"Sets: {', '.join(result['sets'])} ({result['utterances']} utterances).",
        *([result["note"]] if result.get("note") else []),
        "",
        "| engine | WER (%) | RTF | faster than faster-whisper int8 | graphs and weights (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["rows"].items():
        size = f"{row['bytes'] / 1e6:.1f}" if row.get("bytes") else ""
        lines.append(
            f"| {name} | {row['all']['wer']:.2f} | {row['all']['rtf']:.3f} | {fw['rtf'] / row['all']['rtf']:.2f}× "
            f"| {size} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="output of `adaptwin data build`")
    p.add_argument("--models", nargs="+", default=["base"], help="built-in names or model folders")
    p.add_argument("--blocks", nargs="+", default=["ffn", "decoder", "all"], help="int8 block schemes to compare")
    p.add_argument("--limit", type=int, default=100, help="every k-th test utterance so that N remain (per set)")
    p.add_argument(
        "--sets",
        nargs="+",
        default=list(TEST_SETS.values()),
        help="MANIFEST[:SPLIT] under --data (default split: test), e.g. canary.jsonl:validation to choose a "
        "scheme on validation speakers",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=str(Path.home() / ".cache" / "adaptwin" / "bench-quantization"))
    result_args(p, RESULTS / "quantization")
    args = p.parse_args(argv)
    result = None
    if not args.render:
        if not args.data:
            p.error("--data is needed (or --render)")
        import transformers

        transformers.logging.set_verbosity_error()
        result = run(args)
    store_and_publish(Path(args.out), result, args.note, render, None)
    publish_runs(RESULTS, "quantization", ("quantization", "int8 schemes", "quantization.py", ABOUT), render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
