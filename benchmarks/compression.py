"""Parameters, reconstruction error and compression time for tiny.en and base.

    python benchmarks/compression.py [--models tiny.en base] [--budgets 0.3 0.5]

Writes benchmarks/results/compression.{json,md} and the page docs/results/compression.md (with the
results of benchmarks/wer_vs_size.py; `--render` redraws the page). Calibration: the four bundled LibriVox
clips that are not the demo clip; the demo clip's transcript is shown before and after
as a sanity check (WER comes from the evaluation benchmark, not from one clip).
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
from pages import result_file, write_page  # noqa: E402

import adaptwin  # noqa: E402
from adaptwin.audio import load_audio  # noqa: E402
from adaptwin.compress import build_calibration  # noqa: E402
from adaptwin.data import bundled_clips  # noqa: E402


def transcribe(loaded, audio) -> str:
    segments, _ = adaptwin.Whisper(loaded).transcribe(audio)
    return " ".join(s.text for s in segments)


RESULTS = Path(__file__).parent / "results"
ABOUT = """
`python benchmarks/compression.py` (`benchmarks/results/compression.{json,md}`, with the
per-module ranks): parameters, encoder-output error and compression time. Calibration: four
bundled LibriVox clips (one 30 s window); the "demo clip unchanged" column compares the
transcript of a fifth, held-out clip with the dense model's: a sanity check, not a WER
measurement. Below it, accuracy against size for every method, from `python
benchmarks/wer_vs_size.py --data DIR --models MODEL --limit N`
(`benchmarks/results/wer_vs_size_MODEL.{json,md,png}`): encoder-only compression, no
fine-tuning, calibration on `calib.jsonl`, WER on every k-th utterance of the test splits.
Methods at equal encoder size: twin SVD data-aware with FFN (ours); twin data-free with FFN;
independent per-matrix SVD with FFN at exactly the ranks the data-aware allocator chose;
twin data-aware on attention alone; and a LiteASR re-implementation from the paper's
description (`benchmarks/liteasr.py`: PCA of each linear layer's outputs, smallest multiple
of 16 above an energy threshold, dense caps, one threshold searched to hit the size). A
method whose WER passed 100 % on both sets is not decoded again at larger budgets. WER above
100 % means hallucinated insertions. What the runs showed: [../experiments/compression.md](../experiments/compression.md).
"""


def publish() -> None:
    """docs/results/compression.md from the stored compression and WER-against-size results."""
    sections = []
    if (RESULTS / "compression.md").is_file():
        sections.append("## Size, error and time\n\n" + (RESULTS / "compression.md").read_text())
    for md in sorted(RESULTS.glob("wer_vs_size_*.md")):
        model = md.stem.removeprefix("wer_vs_size_")
        text = f"## Accuracy against size: {model}\n\n" + md.read_text()
        if md.with_suffix(".png").is_file():
            text += f"\n![WER against encoder parameters, {model}](../../benchmarks/results/{md.stem}.png)\n"
        sections.append(text)
    write_page("compression", "Compression results", "compression.py", ABOUT, "\n".join(sections))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    p.add_argument("--budgets", nargs="+", type=float, default=[0.3, 0.5])
    p.add_argument("--out", default=str(RESULTS / "compression"))
    p.add_argument("--render", action="store_true", help="only redraw the page from the stored results")
    args = p.parse_args(argv)
    if args.render:
        publish()
        return 0
    import transformers

    transformers.logging.set_verbosity_error()
    clips = bundled_clips()
    demo, calib_clips = clips[0], clips[1:]
    rows = []
    for name in args.models:
        loaded = adaptwin.load_whisper(name)
        audio = load_audio(demo.audio)
        dense_text = transcribe(loaded, audio)
        calib = build_calibration(loaded, calib_clips)
        for budget in args.budgets:
            for mode in ("data-aware", "data-free"):
                model = copy.deepcopy(loaded.model)
                config = adaptwin.AdaPTwinConfig(scope="encoder", budget=budget, ffn=True)
                start = time.perf_counter()
                report = adaptwin.compress_(model, config, calib if mode == "data-aware" else None)
                seconds = time.perf_counter() - start
                if report.output_error is None:  # data-free: measure on the same calibration windows
                    from adaptwin.compress.calibrate import relative_error, run

                    out_err = relative_error(run(model, calib, False), run(loaded.model, calib, False))
                else:
                    out_err = report.output_error
                text = transcribe(adaptwin.LoadedWhisper(model, loaded.processor, loaded.path), audio)
                rows.append(
                    {
                        "model": name,
                        "budget": budget,
                        "mode": mode,
                        "seconds": round(seconds, 2),
                        "params_before": report.params_before,
                        "params_after": report.params_after,
                        "encoder_removed": round(report.removed("encoder"), 4),
                        "encoder_output_rel_error": round(out_err, 4),
                        "modules": [
                            {"name": m.name, "ranks": m.ranks, "rel_error": m.rel_error} for m in report.modules
                        ],
                        "demo_dense": dense_text,
                        "demo_compressed": text,
                    }
                )
                print(
                    f"{name} {budget} {mode}: {report.removed('encoder'):.1%} removed, "
                    f"encoder error {out_err:.3f}, {seconds:.1f} s | {text}",
                    flush=True,
                )
    info = machine_info()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    lines = [
        f"Machine: {machine_line(info)}",
        "",
        "| model | budget | mode | encoder params | decoder params | total params | encoder output rel. error | compress time (s) | demo clip unchanged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["params_before"], r["params_after"]
        lines.append(
            f"| {r['model']} | {r['budget']} | {r['mode']} | {b['encoder']:,} → {a['encoder']:,} (−{r['encoder_removed']:.1%}) "
            f"| {b['decoder']:,} → {a['decoder']:,} | {b['total']:,} → {a['total']:,} | {r['encoder_output_rel_error']:.3f} "
            f"| {r['seconds']:.1f} | {'yes' if r['demo_compressed'] == r['demo_dense'] else 'no: ' + r['demo_compressed'][:60]} |"
        )
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    publish()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
