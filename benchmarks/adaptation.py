"""Speaker adaptation as an outsider measures it: WER on the target speaker's test split and
on general speakers that no step ever heard (unseen synthetic voices, unseen real speakers),
for the dense model, faster-whisper int8, whisper.cpp q8_0, the compressed model and the adapted ones.

    python benchmarks/adaptation.py --data DIR --work WORK [--models base tiny.en] [--budgets 0.3 0.5]
        [--targets allison joe] [--minutes 5 10 20] [--time-budget 10m] [--limit 100]
        [--only base:0.5 tiny.en:0.5:joe:20] [--precision-cell base:0.5:allison:20]
        [--adapt-args "--lr 5e-5" --tag lr5e-5] [--heal 40]

DIR is the output of `adaptwin data build` (allison.jsonl, joe.jsonl, general.jsonl, canary.jsonl,
calib.jsonl, test-tts.jsonl, test-real.jsonl). Every step runs the real commands (`adaptwin
compress`, `adaptwin adapt --canary`) in a subprocess, so wall time and peak memory are those
of the command a user runs; finished cells are kept in WORK and not redone. "worse" is the share
of general test utterances with more errors than under the dense model (the same utterances).
`--precision-cell` adds a run of one cell at the other precision than the one `--precision
auto` chose on this machine (bf16 gets a 3x time cap, since a CPU without bf16 instructions
emulates it). `--heal N` first distils each compressed model on N minutes of the replay
speakers (no target) and adapts from that. Writes benchmarks/results/adaptation.{json,md,png}
and the page docs/results/adaptation.md; `--render` redraws them from the JSON.
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
from pages import result_file, verdict, write_page  # noqa: E402
from scoring import SCORING, SCORINGS, TEST_SETS, FasterWhisper, WhisperCpp, score_sets, worse_share  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ABOUT = """
`python benchmarks/adaptation.py --data DIR --work WORK` (DIR from `adaptwin data build`; the
exact command of this run is below) runs the real commands (`adaptwin compress --budget B --ffn
--calib calib.jsonl`, then `adaptwin adapt --minutes M --canary canary.jsonl --time-budget 10m`,
default options) and scores every model on 100 utterances of the target speaker's test split
and of each general test set. No speaker of the general test sets is used for training,
replay, calibration or validation. "worse than dense" is the share of general test utterances
with more errors than under the dense model. Wall time and peak RSS are those of the `adaptwin
adapt` process. Files: `benchmarks/results/adaptation.{json,md,png}`; the data build it used:
`benchmarks/results/data_build_provenance.json`. What was tried to protect other voices:
[../experiments/adaptation.md](../experiments/adaptation.md).
"""
TARGET_GENERAL = 1.0  # general WER may exceed dense by this many points
TARGET_WALL = 600.0  # seconds for the whole adaptation command
TARGET_PRECISION = 0.5  # fp32 and bf16 WERs within this many points
TARGETS = ("allison", "joe")


def cell(work: Path, name: str, make, rescore=None):
    """Run ``make()`` once; its JSON result is kept in WORK/cells/NAME.json. ``rescore``: a
    cached result scored by an older SCORING gets its test-set scores from ``rescore()``."""
    path = work / "cells" / f"{name}.json"
    if path.is_file():
        result = json.loads(path.read_text())
        if not rescore or result.get("scoring", 1) == SCORING:
            return result
        result.update(rescore())
    else:
        result = make()
    result["scoring"] = SCORING
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def command(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "adaptwin", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"adaptwin {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - start, 1)


def compressed_alike(folder: Path, model: str, budget: float, whole: bool) -> bool:
    """Whether FOLDER already holds MODEL compressed as this benchmark would (so a run that
    stopped after compressing does not compress again). Saves are atomic: a config.json
    means a complete folder."""
    try:
        saved = json.loads((folder / "config.json").read_text())["adaptwin"]["config"]
        source = json.loads((folder / "adaptwin_source.json").read_text())["compressed_from"]
    except (OSError, KeyError, ValueError):
        return False
    wanted = {"budget": budget, "scope": "all" if whole else "encoder", "ffn": True}
    same = source == model and all(saved.get(k) == v for k, v in wanted.items())
    return same and bool(saved.get("head")) == whole


def sets_for(data: Path, targets) -> dict[str, Path]:
    return {**{t: data / f"{t}.jsonl" for t in targets}, **{k: data / v for k, v in TEST_SETS.items()}}


def scores(model, data: Path, targets, limit: int | None) -> dict:
    import adaptwin

    loaded = model if not isinstance(model, str) else adaptwin.load_whisper(model)
    return score_sets(loaded, sets_for(data, targets), limit)


def parse_only(items: list[str] | None, args) -> dict:
    """--only MODEL:BUDGET[:TARGET[:M1,M2]] -> {(model, budget): {target: [minutes]}}."""
    only: dict = {}
    for item in items or []:
        name, b, *rest = item.split(":")
        targets = [rest[0]] if rest else list(args.targets)
        mins = [float(m) for m in rest[1].split(",")] if len(rest) > 1 else args.minutes
        for t in targets:
            only.setdefault((name, float(b)), {})[t] = mins
    return only


def run(args) -> list[dict]:
    data, work = Path(args.data), Path(args.work)
    only = parse_only(args.only, args)
    precision = tuple(args.precision_cell.split(":")) if args.precision_cell else None
    rows = []
    for model in args.models:
        again = args.rescore
        dense_scores = lambda model=model: scores(model, data, args.targets, args.limit)  # noqa: E731
        dense = cell(work, f"{model}-dense", dense_scores, again and dense_scores)
        rows.append({"model": model, "budget": 0.0, "stage": "dense", "scores": dense})

        def faster(model=model):
            from adaptwin.models.builtin import builtin_ct2_dir

            return score_sets(FasterWhisper(str(builtin_ct2_dir(model)), 2), sets_for(data, args.targets), args.limit)

        rows.append(
            {
                "model": model,
                "budget": 0.0,
                "stage": "faster-whisper int8",
                "scores": cell(work, f"{model}-fw", faster, again and faster),
            }
        )

        def whisper_cpp(model=model):
            from adaptwin.export import ExportOptions, export

            folder = work / f"{model}-ggml-q8_0"
            if not (folder / "ggml-model.bin").is_file():
                export(model, folder, ExportOptions(engine="ggml", precision="int8"))
            backend = WhisperCpp(str(folder / "ggml-model.bin"), 2)
            return score_sets(backend, sets_for(data, args.targets), args.limit)

        if not args.no_whisper_cpp:
            wcpp = cell(work, f"{model}-whispercpp-q8", whisper_cpp, again and whisper_cpp)
            rows.append({"model": model, "budget": 0.0, "stage": "whisper.cpp q8_0", "scores": wcpp})
        for budget in args.budgets:
            if only and (model, budget) not in only:
                continue
            whole = args.scope == "all"
            comp = work / f"{model}-{'all' if whole else 'c'}{int(budget * 100)}"

            def compress(model=model, budget=budget, comp=comp, whole=whole):
                if compressed_alike(comp, model, budget, whole):
                    print(f"reusing {comp}: compressed from {model} with the same options", flush=True)
                    return {"compress_seconds": None, **scores(str(comp), data, args.targets, args.limit)}
                secs = command(
                    [
                        "compress",
                        "--model",
                        model,
                        "--budget",
                        str(budget),
                        "--ffn",
                        *(["--scope", "all", "--head"] if whole else []),
                        "--calib",
                        str(data / "calib.jsonl"),
                        "--out",
                        str(comp),
                    ]
                )
                return {"compress_seconds": secs, **scores(str(comp), data, args.targets, args.limit)}

            rows.append(
                {
                    "model": model,
                    "budget": budget,
                    "scope": args.scope,
                    "stage": "compressed",
                    "scores": cell(
                        work,
                        comp.name,
                        compress,
                        again and (lambda comp=comp: scores(str(comp), data, args.targets, args.limit)),
                    ),
                }
            )
            if args.heal:
                comp = heal(args, data, work, model, comp, rows)
            plan = only.get((model, budget)) or {t: args.minutes for t in args.targets}
            for target, minutes_list in plan.items():
                for minutes in minutes_list:
                    rows.append(
                        adapt_row(args, data, work, model, budget, comp, target, minutes, "", [], args.time_budget)
                    )
                    print(json.dumps({k: v for k, v in rows[-1].items() if k != "scores"}), flush=True)
                    if precision != (model, f"{budget:g}", target, f"{minutes:g}"):
                        continue
                    # the default row ran at the precision "auto" chose here; add the other one
                    other = "fp32" if rows[-1]["scores"]["precision"] == "bf16" else "bf16"
                    # a CPU without bf16 instructions emulates it: give it three times the cap
                    cap = args.time_budget if other == "fp32" else f"{3 * parse_seconds(args.time_budget):.0f}s"
                    rows.append(
                        adapt_row(
                            args, data, work, model, budget, comp, target, minutes, other, ["--precision", other], cap
                        )
                    )
                    print(json.dumps({k: v for k, v in rows[-1].items() if k != "scores"}), flush=True)
    return rows


def heal(args, data: Path, work: Path, model: str, comp: Path, rows: list) -> Path:
    """Distil the compressed model on ``--heal`` minutes of the replay speakers (no target
    speaker: `adaptwin adapt` with the general set as its target, the teacher's weight on it),
    once per compressed model; speaker adaptation then starts from the result."""
    healed = work / f"{comp.name}-heal{args.heal:g}"
    report = work / f"{healed.name}.report.json"

    def run_heal():
        wall = command(
            [
                "adapt",
                "--model",
                str(comp),
                "--teacher",
                model,
                "--target",
                str(data / "general.jsonl"),
                "--canary",
                str(data / "canary.jsonl"),
                "--minutes",
                str(args.heal),
                "--target-distill",
                str(args.heal_distill),
                "--time-budget",
                args.heal_budget,
                "--out",
                str(healed),
                "--json",
                str(report),
            ]
        )
        r = json.loads(report.read_text())
        return {
            "wall_seconds": wall,
            "steps": r["steps"],
            "stopped_by": r["stopped_by"],
            "precision": r["precision"],
            "peak_rss_mb": r["peak_rss_mb"],
            "kept": r["kept"],
            "validation": r["validation"],
            "general_minutes": r["data"]["target"]["minutes"],
            **scores(str(healed), data, args.targets, args.limit),
        }

    rows.append(
        {
            "model": model,
            "budget": rows[-1]["budget"],
            "stage": f"healed ({args.heal:g} min general)",
            "scores": cell(work, healed.name, run_heal),
        }
    )
    return healed


def parse_seconds(text: str) -> float:
    from adaptwin.cli.adapt import duration

    return duration(text)


def adapt_row(args, data, work, model, budget, comp, target, minutes, variant, extra, cap) -> dict:
    tag = "-".join(t for t in (variant, args.tag) if t)
    out = work / f"{comp.name}-{target}-a{minutes:g}{'-' + tag if tag else ''}"
    report = out.parent / f"{out.name}.report.json"  # not with_suffix: "tiny.en-c50" has a dot

    def adapt():
        wall = command(
            [
                "adapt",
                "--model",
                str(comp),
                "--teacher",
                model,
                "--target",
                str(data / f"{target}.jsonl"),
                "--general",
                str(data / "general.jsonl"),
                "--canary",
                str(data / "canary.jsonl"),
                "--minutes",
                str(minutes),
                "--time-budget",
                cap,
                "--out",
                str(out),
                "--json",
                str(report),
                *extra,
                *shlex.split(args.adapt_args),
            ]
        )
        r = json.loads(report.read_text())
        return {
            "wall_seconds": wall,
            "adapt_seconds": r["seconds"]["total"],
            "peak_rss_mb": r["peak_rss_mb"],
            "steps": r["steps"],
            "stopped_by": r["stopped_by"],
            "precision": r["precision"],
            "kept": r["kept"],
            "validation": r["validation"],
            "dense_validation": r["dense"],
            "target_minutes": r["data"]["target"]["minutes"],
            "used": r["data"].get("used"),
            **scores(str(out), data, [target], args.limit),
        }

    label = " ".join(v for v in (variant, "after heal" if args.heal else "", _other_lr(out)) if v)
    return {
        "model": model,
        "budget": budget,
        "scope": args.scope,
        "stage": "adapted",
        "target": target,
        "minutes": minutes,
        "variant": label,
        "scores": cell(work, out.name, adapt, args.rescore and (lambda: scores(str(out), data, [target], args.limit))),
    }


def _other_lr(folder: Path) -> str:
    """ "lr X" when the model was trained at another learning rate than today's default (cells
    are cached across commits)."""
    from adaptwin import AdaptConfig

    config = folder / "config.json"
    if not config.is_file():
        return ""
    lr = json.loads(config.read_text()).get("adaptwin", {}).get("adaptation", {}).get("config", {}).get("lr")
    return f"lr {lr:g}" if lr is not None and abs(lr - AdaptConfig().lr) > 1e-12 else ""


def budget_label(row: dict) -> str:
    """The share removed: of the encoder, or of the whole model (with its vocabulary head)."""
    if not row["budget"]:
        return ""
    return f"−{row['budget']:.0%} {'model' if row.get('scope') == 'all' else 'encoder'}"


def _wer(row, name):
    s = row["scores"].get(name)
    return s["wer"] if s else None


UNCOMPARED = "not compared (scored by different versions)"


def same_scoring(*rows: dict) -> bool:
    """Whether rows were scored by one scoring version (so on the same test sets)."""
    return len({r["scores"].get("scoring", 1) for r in rows}) == 1


def targets_table(rows: list[dict], dense: dict) -> str:
    """Every adapted cell against the targets: target WER <= dense, general WERs <= dense + 1,
    the command within 10 minutes; and each fp32/bf16 pair within half a point."""
    lines = [
        "## Against the targets",
        "",
        f"Targets: target WER ≤ dense; WER on unseen voices ≤ dense + {TARGET_GENERAL:g}; the adaptation "
        f"command ≤ {TARGET_WALL / 60:g} minutes; fp32 and bf16 within {TARGET_PRECISION:g} points. The issue "
        "sets them for base at encoder −50 % with ≤ 20 minutes of each speaker; every cell is shown.",
        "",
        "| model | budget | target | minutes | target WER ≤ dense | unseen TTS ≤ dense + 1 | "
        "unseen real ≤ dense + 1 | command ≤ 10 min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    adapted = [r for r in rows if r["stage"] == "adapted"]
    for r in adapted:
        if r.get("variant"):
            continue
        s, d = r["scores"], dense[r["model"]]["scores"]
        cells = (
            [
                verdict(s[r["target"]]["wer"], d[r["target"]]["wer"]),
                verdict(s["test-tts"]["wer"], d["test-tts"]["wer"] + TARGET_GENERAL),
                verdict(s["test-real"]["wer"], d["test-real"]["wer"] + TARGET_GENERAL),
            ]
            if same_scoring(r, dense[r["model"]])
            else [UNCOMPARED] * 3
        ) + [verdict(s["wall_seconds"], TARGET_WALL, unit=" s")]
        lines.append(f"| {r['model']} | {budget_label(r)} | {r['target']} | {r['minutes']:g} | {' | '.join(cells)} |")
    pairs = [
        (a, b)
        for a in adapted
        for b in adapted
        if a is not b
        and not a.get("variant")
        and b.get("variant") in ("fp32", "bf16")  # the same options but the precision
        and (a["model"], a["budget"], a["target"], a["minutes"]) == (b["model"], b["budget"], b["target"], b["minutes"])
    ]
    for a, b in pairs:
        if not same_scoring(a, b):
            lines += [
                "",
                f"{a['model']} −{a['budget']:.0%} {a['target']} {a['minutes']:g} min precision pair: {UNCOMPARED}.",
            ]
            continue
        diffs = [
            f"{name} {abs(_wer(a, key) - _wer(b, key)):.2f} ({verdict(abs(_wer(a, key) - _wer(b, key)), TARGET_PRECISION)})"
            for name, key in (("target", a["target"]), ("unseen TTS", "test-tts"), ("unseen real", "test-real"))
        ]
        lines += [
            "",
            f"{a['model']} −{a['budget']:.0%} {a['target']} {a['minutes']:g} min, "
            f"{a['scores'].get('precision')} against {b['scores'].get('precision')}: " + "; ".join(diffs) + ".",
        ]
    return "\n".join(lines) + "\n"


def render(result: dict, stem: Path, page: bool = False) -> None:
    rows = result["rows"]
    dense = {r["model"]: r for r in rows if r["stage"] == "dense"}
    first = rows[0]["scores"]
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['machine']['command']}`",
        "Test utterances per set: "
        + ", ".join(f"{k} {v['utterances']}" for k, v in first.items() if isinstance(v, dict) and "wer" in v),
        f"Scoring {SCORING}: {SCORINGS[SCORING]}."
        + (
            ""
            if all(r["scores"].get("scoring", 1) == SCORING for r in rows)
            else f" {sum(r['scores'].get('scoring', 1) < SCORING for r in rows)} of {len(rows)} cells were scored "
            "by an older version (`--rescore` updates them)."
        ),
        *([result["note"]] if result.get("note") else []),
        "",
    ]
    for target in result.get("targets", TARGETS):
        lines += [
            f"### Target speaker: {target}",
            "",
            "| model | budget | stage | target minutes | WER target (%) | WER unseen TTS (%) | "
            "WER unseen real (%) | worse than dense, TTS / real (% of utts) | adapt wall (s) | steps (kept) | "
            "stopped by | precision | peak RSS (MB) | scoring |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r["stage"] == "adapted" and r["target"] != target or target not in r["scores"]:
                continue
            s, d = r["scores"], dense[r["model"]]["scores"]
            compared = r["stage"] != "dense" and same_scoring(r, dense[r["model"]])
            worse = " / ".join(f"{worse_share(s[k], d[k])}" for k in TEST_SETS) if compared else ""
            adapted = r["stage"] == "adapted"
            trained = "wall_seconds" in s  # adapted, or healed
            mins = f"{s['target_minutes']:.1f}" if adapted else ""
            kept = f"{s['steps']} ({s['kept']['step'] if s.get('kept') else 'last'})" if trained else ""
            lines.append(
                f"| {r['model']} | {budget_label(r)} | {r['stage']}{' ' + r['variant'] if r.get('variant') else ''} | "
                f"{mins} | {_wer(r, target):.2f} | {_wer(r, 'test-tts'):.2f} | {_wer(r, 'test-real'):.2f} | {worse} | "
                f"{s['wall_seconds'] if trained else ''} | {kept} | {(s.get('stopped_by') or 'last epoch') if trained else ''}"
                f" | {s.get('precision', '') if trained else ''} | {s.get('peak_rss_mb', '') if trained else ''} |"
                f" {s.get('scoring', 1)} |"
            )
        lines.append("")
    result_file(stem, ".md").write_text("\n".join(lines))
    if page:
        body = "\n".join(lines) + "\n" + targets_table(rows, dense)
        body += "\n![WER after adaptation](../../benchmarks/results/adaptation.png)\n"
        write_page("adaptation", "Speaker adaptation results", "adaptation.py", ABOUT, body)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    targets = result.get("targets", TARGETS)
    fig, axes = plt.subplots(len(targets), 3, figsize=(13, 3.8 * len(targets)), squeeze=False)
    for row_axes, target in zip(axes, targets):
        for ax, key in zip(row_axes, (target, "test-tts", "test-real")):
            for i, model in enumerate(dense):
                color = f"C{i}"
                ax.axhline(dense[model]["scores"][key]["wer"], ls=":", color=color, label=f"{model} dense")
                budgets = sorted({r["budget"] for r in rows if r["model"] == model and r["stage"] == "compressed"})
                for j, budget in enumerate(budgets):
                    comp = next(
                        r for r in rows if r["model"] == model and r["budget"] == budget and r["stage"] == "compressed"
                    )
                    pts = sorted(
                        (
                            (r["minutes"], _wer(r, key))
                            for r in rows
                            if r["model"] == model
                            and r["budget"] == budget
                            and r["stage"] == "adapted"
                            and r["target"] == target
                            and not r.get("variant")
                        )
                    )
                    pts = [(0, _wer(comp, key))] + pts
                    ax.plot(
                        *zip(*pts),
                        color=color,
                        ls=("-", "--", "-.")[j % 3],
                        marker="os^"[j % 3],
                        label=f"{model} -{budget:.0%} encoder",
                    )
            ax.set_title(f"{'target ' + target if key == target else key} (adapted to {target})", fontsize=9)
            ax.set_xlabel("minutes of target speech (0: compressed only)")
            ax.set_ylabel("WER (%)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(result_file(stem, ".png"), dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data")
    p.add_argument("--work", default="adaptation-work")
    p.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    p.add_argument("--budgets", nargs="+", type=float, default=[0.3, 0.5])
    p.add_argument(
        "--scope",
        default="encoder",
        choices=["encoder", "all"],
        help="what the budgets cut: the encoder (twins + FFN), or the whole model with the vocabulary head",
    )
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--minutes", nargs="+", type=float, default=[5, 10, 20])
    p.add_argument("--time-budget", default="10m")
    p.add_argument("--limit", type=int, default=100, help="score every k-th test utterance so that N remain (per set)")
    p.add_argument("--only", nargs="*", help="what to run: MODEL:BUDGET[:TARGET[:MINUTES,...]]")
    p.add_argument("--precision-cell", help="MODEL:BUDGET:TARGET:MINUTES also run at the precision auto did not choose")
    p.add_argument("--adapt-args", default="", help="more `adaptwin adapt` options for every cell, e.g. '--lr 5e-5'")
    p.add_argument(
        "--tag", help="suffix of the adapted cells' names (needed with --adapt-args: cells are cached by name)"
    )
    p.add_argument(
        "--heal",
        type=float,
        default=0.0,
        help="first distil each compressed model on N minutes of the replay speakers (0: off)",
    )
    p.add_argument("--heal-distill", type=float, default=0.8, help="the teacher's weight during --heal")
    p.add_argument("--heal-budget", default="15m", help="time cap of the --heal run")
    p.add_argument("--no-whisper-cpp", action="store_true", help="leave out the whisper.cpp baseline rows")
    p.add_argument(
        "--rescore",
        action="store_true",
        help="score cached cells again (from their model folders in WORK) when an older SCORING scored them",
    )
    p.add_argument("--render", action="store_true", help="only redraw the table and plot from the JSON")
    p.add_argument("--out", default=str(RESULTS / "adaptation"), help="results stem (.json/.md/.png)")
    p.add_argument("--note", help="a line of provenance for the table (with --render: appended to the stored one)")
    args = p.parse_args(argv)
    stem = Path(args.out)
    if args.render:
        result = json.loads(result_file(stem, ".json").read_text())
        if args.note:  # a finding about the run, recorded after it
            result["note"] = f"{result.get('note') or ''} Added after the run: {args.note}".strip()
            result_file(stem, ".json").write_text(json.dumps(result, indent=1))
        render(result, stem, page=stem == RESULTS / "adaptation")
        return 0
    if not args.data:
        p.error("--data DIR is required (the output of `adaptwin data build`)")
    if args.adapt_args and not args.tag:
        p.error("--adapt-args needs --tag NAME: adapted cells are cached by name, and another setting needs its own")
    result = {"machine": machine_info(), "targets": args.targets, "rows": run(args), "note": args.note}
    stem.parent.mkdir(parents=True, exist_ok=True)
    result_file(stem, ".json").write_text(json.dumps(result, indent=1))
    render(result, stem, page=stem == RESULTS / "adaptation")
    print(result_file(stem, ".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
