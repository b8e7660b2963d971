"""``adaptwin info``: sizes and ranks of a model."""

from __future__ import annotations

import argparse
import json

import adaptwin

from ..models.context import AudioContext


def register(sub) -> None:
    p = sub.add_parser("info", help="sizes and ranks of a model")
    p.add_argument("model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..compress import part_parameters

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
    if meta.get("head"):
        kept = f", {meta['head_kept']} rows dense" if meta.get("head_kept") else ""
        print(f"  {'proj_out (vocabulary head)':<40} rank={meta['head']}{kept}")
    context = AudioContext.from_dict(meta.get("context"))
    print(
        "audio context: full 30 s windows"
        if context is None
        else f"audio context: dynamic (the audio + {context.margin:g} s, in {context.bucket:g} s buckets)"
    )
    return 0
