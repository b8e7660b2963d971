"""``adaptwin transcribe`` and ``adaptwin stream``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger("adaptwin")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="base", help="torch: anything load_whisper accepts; ort/trt: an adaptwin-export folder"
    )
    p.add_argument("--backend", default="torch", choices=["torch", "ort", "trt"])
    p.add_argument("--language", default="en", help="language of multilingual models")
    p.add_argument("--threads", type=int, help="CPU threads for the engine")
    add_gate_args(p)


def add_gate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-speech-gate",
        default="on",
        choices=["on", "off"],
        help="drop text the model produces from silence or noise (docs/robustness.md)",
    )
    p.add_argument(
        "--vad",
        default="auto",
        choices=["auto", "silero", "energy", "none"],
        help="voice activity detector that skips non-speech (auto: Silero if installed)",
    )


def gate_from(args: argparse.Namespace):
    """The ``NoSpeechGate`` the options ask for (None when --no-speech-gate off)."""
    from .gate import NoSpeechGate

    return None if args.no_speech_gate == "off" else NoSpeechGate(vad=args.vad)


def _backend(args):
    from . import get_backend

    kwargs = {"threads": args.threads} if args.threads and args.backend in ("torch", "ort") else {}
    return get_backend(args.backend, args.model, **kwargs)


def add_transcribe(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files of any length (30 s windows with timestamps)")
    p.add_argument("files", nargs="+")
    _add_model_args(p)
    p.add_argument("--output", default="txt", choices=["txt", "srt", "vtt", "json"])
    p.add_argument("--out", help="write here (a folder when several files are given) instead of stdout")
    p.add_argument("--beams", type=int, default=1)
    p.set_defaults(func=cmd_transcribe)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..audio import SAMPLE_RATE, load_audio
    from .decoding import DecodingOptions
    from .output import format_segments
    from .whisper import Whisper

    DecodingOptions(beam_size=args.beams)  # options are checked before the files and the model
    audios = [(f, load_audio(f)) for f in args.files]  # every file is checked before minutes of decoding
    gate = gate_from(args)
    for path, audio in audios:
        if not np.abs(audio).max(initial=0.0) >= 1e-4:
            logger.warning("%s is silent: its transcript is empty", path)
    model = Whisper(_backend(args), language=args.language, gate=gate)
    for path, audio in audios:
        target = None
        if args.out:
            target = Path(args.out)
            if len(audios) > 1 or target.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                target = target / f"{Path(path).stem}.{args.output}"
        bar = tqdm(
            total=round(len(audio) / SAMPLE_RATE, 1),
            unit="s audio",
            desc=Path(path).name,
            file=sys.stderr,
            disable=None,
        )
        last = [0.0]

        def progress(seconds, bar=bar, last=last):
            bar.update(round(seconds - last[0], 1))
            last[0] = seconds

        segments, _ = model.transcribe(audio, beams=args.beams, progress=progress)
        chunks = format_segments(segments, args.output, str(path))
        if target is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
                sys.stdout.flush()
        else:  # complete file or nothing: written beside, renamed at the end
            tmp = target.with_name(f".{target.name}.part")
            with open(tmp, "w", encoding="utf-8") as f:
                for chunk in chunks:
                    f.write(chunk)
            tmp.replace(target)
            print(f"wrote {target}", file=sys.stderr)
        bar.close()
    return 0


def add_stream(sub) -> None:
    p = sub.add_parser("stream", help="streaming transcription from the microphone or a simulated file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--mic", action="store_true", help="listen to the microphone (sounddevice)")
    source.add_argument("--simulate", metavar="FILE", help="feed a recording through the same streaming path")
    _add_model_args(p)
    p.add_argument("--device", help="input device index or name (--mic); a wrong one lists the devices")
    p.add_argument("--chunk", type=float, default=0.5, help="seconds of audio per decoding step")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="--simulate at the recording's own pace")
    pace.add_argument("--fast", action="store_true", help="--simulate as fast as possible (default)")
    p.add_argument("--agreement", type=int, default=2, help="LocalAgreement-n: hypotheses that must agree")
    p.set_defaults(func=cmd_stream)


def cmd_stream(args: argparse.Namespace) -> int:
    from ..audio import load_audio
    from .mic import print_words, run_mic, simulate
    from .streaming import OnlineProcessor
    from .vad import load_vad

    audio = load_audio(args.simulate) if args.simulate else None
    if audio is not None and not np.abs(audio).max(initial=0.0) >= 1e-4:
        logger.warning("%s is silent: nothing will be transcribed", args.simulate)
    sd = None
    if args.mic:
        from .mic import import_sounddevice

        sd = import_sounddevice()  # before loading the model: a missing library fails fast
    online = OnlineProcessor(
        _backend(args),
        language=args.language,
        agreement=args.agreement,
        min_chunk=args.chunk,
        vad=load_vad(args.vad),
        gate=gate_from(args),
    )
    if args.mic:
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        print("listening; Ctrl-C to stop", file=sys.stderr)
        stats = run_mic(online, device=device, chunk=args.chunk, on_words=print_words, sd=sd)
        print(
            f"\n{len(stats.words)} words; {online.decodes} decodes; input over-runs {stats.overflows}; "
            f"audio dropped {stats.dropped_seconds:.1f} s",
            file=sys.stderr,
        )
        return 0
    emitted = simulate(online, audio, chunk=args.chunk, realtime=args.realtime, on_words=print_words)
    print(file=sys.stdout)
    lags = sorted(at - e.word.end for e, at in emitted)
    if lags:
        median, p90 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(0.9 * len(lags)))]
        print(
            f"{len(emitted)} words; {online.decodes} decodes; emission lag after the word's (estimated) end: "
            f"median {median:.2f} s, p90 {p90:.2f} s",
            file=sys.stderr,
        )
    return 0
