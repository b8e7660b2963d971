"""WER against encoder size for every compression method, in one run.

    python benchmarks/wer_vs_size.py --data DIR [--models tiny.en base] [--budgets 0.2 0.3 0.4 0.5 0.6] [--limit N]

DIR is the output of `adaptwin data build`. Methods: dense; independent per-matrix SVD
(+FFN, at the ranks the data-aware allocator chose); twin SVD data-free (+FFN); twin SVD
data-aware, attention only; twin data-aware + FFN; a LiteASR re-implementation
(benchmarks/liteasr.py). Test sets: `test-tts.jsonl` + `test-real.jsonl` (general) and `allison.jsonl` (target), split `test`
(`--limit N` keeps every k-th utterance so that N remain). Calibration: `calib.jsonl`.
A method whose WER on both sets exceeds 100 % is not decoded again at larger budgets.
Writes benchmarks/results/wer_vs_size_MODELS.{json,md,png} and redraws docs/results/compression.md;
`--render` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from compression import publish  # noqa: E402
from liteasr import compress_liteasr_  # noqa: E402
from machine import machine_info, machine_line  # noqa: E402
from scoring import general_test, test_split  # noqa: E402

import adaptwin  # noqa: E402
from adaptwin.compress import (
    build_calibration,  # noqa: E402
    part_parameters,  # noqa: E402
)
from adaptwin.compress import factorize as fz  # noqa: E402
from adaptwin.evaluate import evaluate  # noqa: E402
from adaptwin.models.structure import set_module, twin_attention_shell  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COLLAPSE = 100.0  # WER (%) above which a method is not run at larger budgets
METHODS = (
    "twin data-aware + FFN",
    "twin data-free + FFN",
    "independent SVD + FFN",
    "twin data-aware (attention only)",
    "LiteASR re-impl.",
)


def independent_like(model, compressed):
    """Replace `model`'s attention with per-matrix SVD factors at the ranks `compressed` uses."""
    import torch

    for name, r in compressed.config.adaptwin["attention"].items():
        attn = model.get_submodule(name)
        if r["qk"] is None and r["vo"] is None:
            continue
        new = twin_attention_shell(attn, r["qk"] or attn.head_dim, r["vo"] or attn.head_dim)
        d, h = attn.q_proj.weight.shape[1], attn.num_heads
        with torch.no_grad():
            a, b = fz.heads_qk(attn.q_proj.weight, attn.q_proj.bias, attn.k_proj.weight, None, h)
            qa, qb = fz.independent_factors(a, b, new.r_qk)
            new.q_proj.weight.copy_(qa[:, :d].permute(0, 2, 1).reshape(-1, d))
            new.q_proj.bias.copy_(qa[:, d].reshape(-1))
            new.k_proj.weight.copy_(qb.permute(0, 2, 1).reshape(-1, d))
            a, b = fz.heads_vo(attn.v_proj.weight, attn.out_proj.weight, h)
            va, vb = fz.independent_factors(a, b, new.r_vo)
            new.v_proj.weight.copy_(va.permute(0, 2, 1).reshape(-1, d))
            new.out_proj.weight.copy_(vb.permute(1, 0, 2).reshape(vb.shape[1], -1))
            new.out_proj.bias.copy_(fz.fold_value_bias(attn.v_proj.bias, attn.out_proj.weight, attn.out_proj.bias))
        set_module(model, name, new)
    for name, module in compressed.named_modules():  # same FFN factors
        if type(module).__name__ == "LowRankLinear":
            set_module(model, name, copy.deepcopy(module))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="output folder of `adaptwin data build`")
    p.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    p.add_argument("--budgets", nargs="+", type=float, default=[0.2, 0.3, 0.4, 0.5, 0.6])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--limit", type=int, help="at most N test utterances per set (every k-th)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", help="result files' path without suffix (default: results/wer_vs_size_MODELS)")
    p.add_argument("--render", action="store_true", help="only redraw the table and plot from OUT.json")
    args = p.parse_args(argv)
    out = Path(args.out or RESULTS / f"wer_vs_size_{'_'.join(args.models)}")
    if args.render:
        saved = json.loads(Path(f"{out}.json").read_text())
        _write(out, saved["rows"], argparse.Namespace(**saved["args"]), final=True, info=saved["machine"])
        return 0
    import transformers

    transformers.logging.set_verbosity_error()
    data = Path(args.data)
    sets = {"general": general_test(data, args.limit), "target": test_split(data / "allison.jsonl", args.limit)}
    rows = []

    def score(name, model_name, method, budget, loaded, model, extra=None):
        row = {
            "model": model_name,
            "method": method,
            "budget": budget,
            "encoder_params": part_parameters(model)["encoder"],
            **(extra or {}),
        }
        view = adaptwin.LoadedWhisper(model, loaded.processor, loaded.path)
        for set_name, utts in sets.items():
            r = evaluate(view, utts, batch_size=args.batch_size)
            row[f"wer_{set_name}"], row[f"rtf_{set_name}"] = r.wer, r.rtf
            row[f"n_{set_name}"] = r.n_utterances
        rows.append(row)
        print(json.dumps(row), flush=True)
        _write(out, rows, args)

    for model_name in args.models:
        loaded = adaptwin.load_whisper(model_name)
        calib = build_calibration(loaded, data / "calib.jsonl", max_windows=8)
        score("dense", model_name, "dense", 0.0, loaded, loaded.model)
        collapsed: dict[str, float] = {}  # method -> budget at which its WER passed COLLAPSE
        for budget in args.budgets:
            aware = None
            for method in args.methods:
                if method in collapsed and method != "twin data-aware + FFN":
                    rows.append(
                        {
                            "model": model_name,
                            "method": method,
                            "budget": budget,
                            "not_run": f"WER already above {COLLAPSE:.0f} % at budget {collapsed[method]}",
                        }
                    )
                    continue
                model = copy.deepcopy(loaded.model)
                start = time.perf_counter()
                try:
                    if method == "LiteASR re-impl.":
                        info = compress_liteasr_(model, calib, budget)
                        if not info["feasible"]:
                            raise ValueError("energy thresholds cannot reach this size (dense caps)")
                    elif method == "independent SVD + FFN":
                        if aware is None:
                            raise ValueError("needs the data-aware run first")
                        independent_like(model, aware)
                    else:
                        cfg = adaptwin.AdaPTwinConfig(scope="encoder", budget=budget, ffn="FFN" in method)
                        adaptwin.compress_(model, cfg, None if "data-free" in method else calib)
                        if method == "twin data-aware + FFN":
                            aware = model
                except ValueError as exc:
                    rows.append({"model": model_name, "method": method, "budget": budget, "infeasible": str(exc)[:160]})
                    print(f"{model_name} {method} {budget}: infeasible ({str(exc)[:80]})", flush=True)
                    continue
                score(
                    model_name,
                    model_name,
                    method,
                    budget,
                    loaded,
                    model,
                    {"compress_seconds": round(time.perf_counter() - start, 1)},
                )
                if min(rows[-1]["wer_general"], rows[-1]["wer_target"]) > COLLAPSE:
                    collapsed[method] = budget  # larger budgets only remove more: not worth decoding
    _write(out, rows, args, final=True)
    return 0


def _write(out: Path, rows, args, final: bool = False, info: dict | None = None) -> None:
    info = info or machine_info()
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=1))
    if not final:
        return
    lines = [
        f"Machine: {machine_line(info)}",
        f"Test utterances per set: {args.limit or 'all'}",
        "",
        "| model | method | budget | encoder params | WER general (%) | WER target (%) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "infeasible" in r:
            lines.append(f"| {r['model']} | {r['method']} | {r['budget']} | infeasible: {r['infeasible'][:70]} | | |")
        elif "not_run" in r:
            lines.append(f"| {r['model']} | {r['method']} | {r['budget']} | not run: {r['not_run']} | | |")
        else:
            lines.append(
                f"| {r['model']} | {r['method']} | {r['budget']} | {r['encoder_params']:,} "
                f"| {r['wer_general']:.2f} | {r['wer_target']:.2f} |"
            )
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")
    _plot(out, rows)
    publish()


def _plot(out: Path, rows) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4 * len(models)), squeeze=False)
    for i, m in enumerate(models):
        for j, s in enumerate(("general", "target")):
            ax = axes[i][j]
            for method in ("dense",) + METHODS:
                pts = sorted(
                    (r["encoder_params"] / 1e6, r[f"wer_{s}"])
                    for r in rows
                    if r["model"] == m and r["method"] == method and f"wer_{s}" in r
                )
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=method)
            ax.set_title(f"{m}: {s} test set")
            ax.set_xlabel("encoder parameters (M)")
            ax.set_ylabel("WER (%)")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(f"{out}.png"), dpi=110)


if __name__ == "__main__":
    sys.exit(main())
