"""Speaker adaptation: WER on the target speaker and on general speech, before compression,
after compression and after adapting on 5, 10 and 20 minutes of the target speaker.

    python benchmarks/adaptation.py --data DIR --work WORK [--models base tiny.en] [--budgets 0.3 0.5]
        [--minutes 5 10 20] [--time-budget 10m] [--limit N] [--only base:0.5:5,20]
        [--adapt-args "--lr 3e-4 --layerwise-lr 5e-4" --tag lr3e-4]

DIR is the output of `adaptwin data build` (target.jsonl: Allison's prompts, adapt/test split by
a fixed rule; general.jsonl: LibriVox + synthetic voices; calib.jsonl). Every step runs the real
commands (`adaptwin compress`, `adaptwin adapt`) in a subprocess, so wall time and peak memory
are those of the command a user runs; finished cells are kept in WORK and not redone.
Writes benchmarks/results/adaptation.{json,md,png}; `--render` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def cell(work: Path, name: str, make):
    """Run ``make()`` once; its JSON result is kept in WORK/cells/NAME.json."""
    path = work / "cells" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def command(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "adaptwin", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"adaptwin {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - start, 1)


def test_split(path: Path, limit: int | None) -> list:
    """The manifest's test split; with ``limit``, every k-th utterance so that ``limit`` remain."""
    from adaptwin.data import read_utterances

    utts = [u for u in read_utterances(path) if u.split == "test"]
    if limit and len(utts) > limit:
        utts = [utts[int(i * len(utts) / limit)] for i in range(limit)]
    return utts


def wers(model: str, data: Path, limit: int | None) -> dict:
    import adaptwin
    from adaptwin.evaluate import evaluate

    loaded = adaptwin.load_whisper(model)
    out = {}
    for name in ("target", "general"):
        utts = test_split(data / f"{name}.jsonl", limit)
        out[name] = evaluate(loaded, utts, batch_size=8).wer
        out[f"{name}_utterances"] = len(utts)
    return out


def run(args) -> list[dict]:
    data, work = Path(args.data), Path(args.work)
    rows = []
    for model in args.models:
        dense = cell(work, f"{model}-dense", lambda: wers(model, data, args.limit))
        rows.append({"model": model, "budget": 0.0, "minutes": None, "stage": "dense", **dense})
        only = {}  # (model, budget) -> minutes to run, from --only MODEL:BUDGET[:M1,M2]
        for item in args.only or []:
            name, b, *mins = item.split(":")
            only[(name, float(b))] = [float(m) for m in mins[0].split(",")] if mins else args.minutes
        for budget in args.budgets:
            if only and (model, budget) not in only:
                continue
            comp = work / f"{model}-c{int(budget * 100)}"

            def compress():
                secs = command(["compress", "--model", model, "--budget", str(budget), "--ffn", "--calib",
                                str(data / "calib.jsonl"), "--out", str(comp)])
                return {"compress_seconds": secs, **wers(str(comp), data, args.limit)}

            rows.append({"model": model, "budget": budget, "minutes": 0, "stage": "compressed",
                         **cell(work, comp.name, compress)})
            for minutes in only.get((model, budget), args.minutes):
                out = work / f"{comp.name}-a{minutes:g}{'-' + args.tag if args.tag else ''}"

                report = out.parent / f"{out.name}.report.json"  # not with_suffix: "tiny.en-c50" has a dot

                def adapt():
                    wall = command(["adapt", "--model", str(comp), "--teacher", model, "--target",
                                    str(data / "target.jsonl"), "--general", str(data / "general.jsonl"),
                                    "--minutes", str(minutes), "--time-budget", args.time_budget, "--out", str(out),
                                    "--json", str(report), *shlex.split(args.adapt_args)])
                    r = json.loads(report.read_text())
                    return {"wall_seconds": wall, "adapt_seconds": r["seconds"]["total"], "peak_rss_mb": r["peak_rss_mb"],
                            "steps": r["steps"], "stopped_early": r["stopped_early"],
                            "target_minutes": r["data"]["target"]["minutes"], "windows": r["data"]["target"]["windows"],
                            # what training used of the windows (a time budget can stop the teacher pass early)
                            "used": r["data"].get("used"), "losses": r["losses"], **wers(str(out), data, args.limit)}

                row = {"model": model, "budget": budget, "minutes": minutes, "stage": "adapted", **cell(work, out.name, adapt)}
                if "used" not in row and report.is_file():  # cells kept by earlier versions of this script
                    row["used"] = json.loads(report.read_text())["data"].get("used")
                rows.append(row)
                print(json.dumps(rows[-1]), flush=True)
    return rows


def render(result: dict, stem: Path) -> None:
    first = result["rows"][0]
    lines = [f"Machine: {machine_line(result['machine'])}",
             f"Command: `{result['machine']['command']}`",
             f"Test utterances: target {first['target_utterances']}, general {first['general_utterances']}",
             *([result["note"]] if result.get("note") else []), "",
             "| model | encoder budget | stage | target minutes | WER target (%) | WER general (%) | adapt time (s) | "
             "peak RSS (MB) | steps |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        mins = "" if r["minutes"] is None else ("0" if r["stage"] == "compressed" else f"{r['target_minutes']:.1f}")
        if r.get("used"):  # windows the teacher pass reached within its share of the time budget
            mins += f" ({r['used']['windows']}/{r['used']['of']} windows used)"
        t = f"{r['adapt_seconds']:.0f} ({r['wall_seconds']:.0f} wall)" if r["stage"] == "adapted" else ""
        if r.get("stopped_early"):
            t += ", time budget hit"
        lines.append(f"| {r['model']} | {r['budget']:.1f} | {r['stage']} | {mins} | {r['target']:.2f} | "
                     f"{r['general']:.2f} | {t} | {r.get('peak_rss_mb', '')} | {r.get('steps', '')} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    from matplotlib.ticker import ScalarFormatter

    every_budget = sorted({r["budget"] for r in result["rows"] if r["budget"]})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("target", "general")):
        # one colour per model; dense dotted, each budget its own line style and marker
        for i, model in enumerate(dict.fromkeys(r["model"] for r in result["rows"])):
            color = f"C{i}"
            dense = next(r for r in result["rows"] if r["model"] == model and r["stage"] == "dense")
            ax.axhline(dense[key], ls=":", lw=1.2, color=color, label=f"{model} dense")
            budgets = sorted({r["budget"] for r in result["rows"] if r["model"] == model and r["budget"]})
            for budget in budgets:
                j = every_budget.index(budget)  # the same style for a budget in every model
                pts = sorted((r for r in result["rows"] if r["model"] == model and r["budget"] == budget),
                             key=lambda r: 0 if r["stage"] == "compressed" else r["target_minutes"])
                xs = [0 if r["stage"] == "compressed" else r["target_minutes"] for r in pts]
                ax.plot(xs, [r[key] for r in pts], color=color, ls=("-", "--", "-.")[j % 3], marker="os^"[j % 3],
                        label=f"{model} -{budget:.0%} encoder")
        ax.set_xlabel("minutes of target speech adapted on (0: compressed only)")
        ax.set_ylabel(f"WER {key} test (%)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 5, 10, 20 rather than 2x10^1
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data")
    p.add_argument("--work", default="adaptation-work")
    p.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    p.add_argument("--budgets", nargs="+", type=float, default=[0.3, 0.5])
    p.add_argument("--minutes", nargs="+", type=float, default=[5, 10, 20])
    p.add_argument("--time-budget", default="10m")
    p.add_argument("--limit", type=int, help="score every k-th test utterance so that N remain (per set)")
    p.add_argument("--only", nargs="*", help="what to run: MODEL:BUDGET[:MINUTES,...] (e.g. base:0.5 tiny.en:0.5:20)")
    p.add_argument("--adapt-args", default="", help="more `adaptwin adapt` options for every cell, e.g. '--lr 3e-4'")
    p.add_argument("--tag", help="suffix of the adapted cells' names (needed with --adapt-args: cells are cached by name)")
    p.add_argument("--render", action="store_true", help="only redraw the table and plot from the JSON")
    p.add_argument("--out", default=str(RESULTS / "adaptation"), help="results stem (.json/.md/.png)")
    p.add_argument("--note", help="a line of provenance for the table (e.g. which commit computed cached cells)")
    args = p.parse_args(argv)
    stem = Path(args.out)
    if args.render:
        render(json.loads(stem.with_suffix(".json").read_text()), stem)
        return 0
    if not args.data:
        p.error("--data DIR is required (the output of `adaptwin data build`)")
    if args.adapt_args and not args.tag:
        p.error("--adapt-args needs --tag NAME: adapted cells are cached by name, and another setting needs its own")
    result = {"machine": machine_info(), "rows": run(args), "note": args.note}
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    render(result, stem)
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
