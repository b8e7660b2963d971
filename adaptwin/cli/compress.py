"""``adaptwin compress``: factorize a model's product twins (and FFN, vocabulary head) to a budget or ranks."""

from __future__ import annotations

import argparse
import logging

import adaptwin

from .common import write_json


def register(sub) -> None:
    p = sub.add_parser("compress", help="compress a Whisper model's product twins (and FFN)")
    p.add_argument("--model", required=True, help="built-in name (tiny.en, base), HF/CTranslate2 folder or hub id")
    p.add_argument("--scope", default="encoder", choices=["encoder", "decoder", "all"])
    p.add_argument("--budget", type=float, help="fraction of the scope's parameters to remove, e.g. 0.3")
    p.add_argument(
        "--budget-by",
        default="params",
        choices=["params", "time"],
        help="what --budget is a fraction of: parameters, or the selected matmuls' time measured on ONNX Runtime",
    )
    p.add_argument(
        "--max-ms",
        type=float,
        help="instead of --budget: cut until the selected matmuls take at most this many ms per window (measured)",
    )
    p.add_argument(
        "--tokens-per-window",
        type=int,
        default=48,
        help="decoded tokens per window when a time budget weighs decoder steps against the encoder",
    )
    p.add_argument("--rank-qk", type=int, help="explicit per-head QK rank for every selected attention")
    p.add_argument("--rank-vo", type=int, help="explicit per-head VO rank for every selected attention")
    p.add_argument("--rank-ffn", type=int, help="explicit FFN rank (with --ffn)")
    p.add_argument("--rank-step", type=int, default=8, help="attention ranks move in steps of this size")
    twin = p.add_mutually_exclusive_group()
    twin.add_argument("--qk-only", action="store_true")
    twin.add_argument("--vo-only", action="store_true")
    p.add_argument("--ffn", action="store_true", help="also split FFN matrices into thin factors")
    p.add_argument(
        "--head",
        action="store_true",
        help="also factorize the vocabulary head (the tied token embedding and logits; scope decoder or all)",
    )
    p.add_argument("--rank-head", type=int, help="explicit rank of the vocabulary head (with --head)")
    p.add_argument(
        "--head-keep",
        type=int,
        help="with --head: keep the rows of this many of the most frequent English tokens (and the special "
        "tokens) dense; the rank applies to the others (0: one low-rank pair; default: AdaPTwinConfig's, 12000)",
    )
    p.add_argument(
        "--probe",
        choices=["logits", "kl"],
        default="logits",
        help="what the sensitivity probe compares with the dense model when the decoder is in scope: the "
        "logits' relative error, or the KL divergence of the next-token distributions",
    )
    p.add_argument("--calib", help="calibration audio: JSON-lines manifest or folder (data-aware compression)")
    p.add_argument("--calib-windows", type=int, default=24, help="at most this many 30 s calibration windows")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--json", help="also write the report as JSON here")
    p.set_defaults(func=run)


def _config_from(args: argparse.Namespace):
    from ..compress.config import TWINS, AdaPTwinConfig

    twins = ("qk",) if args.qk_only else ("vo",) if args.vo_only else TWINS
    return AdaPTwinConfig(
        scope=args.scope,
        budget=args.budget,
        budget_by=args.budget_by,
        max_ms=args.max_ms,
        tokens_per_window=args.tokens_per_window,
        rank_qk=args.rank_qk,
        rank_vo=args.rank_vo,
        rank_ffn=args.rank_ffn,
        twins=twins,
        ffn=args.ffn,
        head=args.head,
        rank_head=args.rank_head,
        **({"head_keep": args.head_keep} if args.head_keep is not None else {}),
        rank_step=args.rank_step,
        probe=args.probe,
    )


def run(args: argparse.Namespace) -> int:
    from ..compress import build_calibration, token_prior
    from ..models.checkpoint import check_output_dir

    config = _config_from(args)  # validate before the slow load
    check_output_dir(args.out)
    loaded = adaptwin.load_whisper(args.model)
    calib = build_calibration(loaded, args.calib, args.calib_windows) if args.calib else None
    if calib is None and (config.budget is not None or config.max_ms is not None):
        logging.getLogger("adaptwin").warning(
            "no --calib given: ranks follow weight-space error only; data-aware compression is far more accurate"
        )
    prior = token_prior(loaded.processor.tokenizer) if config.head and config.head_keep else None
    report = adaptwin.compress_(loaded.model, config, calib, progress=True, token_prior=prior)
    print(report.format())
    adaptwin.save(loaded.model, args.out, loaded.processor, extra={"compressed_from": str(args.model)})
    if args.json:
        write_json(args.json, report.to_dict())
    print(f"saved {args.out}")
    return 0
