"""``adaptwin stream``: streaming transcription from the microphone or a simulated file."""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from ..audio import load_audio
from ..runtime import mic
from ..runtime.streaming import OnlineProcessor
from ..runtime.vad import load_vad
from . import common

logger = logging.getLogger("adaptwin")


def register(sub) -> None:
    p = sub.add_parser("stream", help="streaming transcription from the microphone or a simulated file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--mic", action="store_true", help="listen to the microphone (sounddevice)")
    source.add_argument("--simulate", metavar="FILE", help="feed a recording through the same streaming path")
    common.add_model_args(p, margin=False)
    p.add_argument("--device", help="input device index or name (--mic); a wrong one lists the devices")
    p.add_argument(
        "--chunk",
        type=float,
        help="seconds of audio per decoding step (default 0.5; 0.35 for a dynamic-context model)",
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="--simulate at the recording's own pace")
    pace.add_argument("--fast", action="store_true", help="--simulate as fast as possible (default)")
    p.add_argument("--agreement", type=int, default=2, help="LocalAgreement-n: hypotheses that must agree")
    p.add_argument(
        "--silence-flush",
        type=float,
        help="seconds of silence (VAD) after which the pending words are final (default 0.6; 0.3 for a "
        "dynamic-context model)",
    )
    p.add_argument(
        "--forget",
        type=float,
        help="seconds of silence after which the audio before it is dropped (default: --silence-flush; 2 for a "
        "dynamic-context model); a shorter pause makes the words final but keeps the audio as context",
    )
    p.add_argument(
        "--trim-after",
        type=float,
        help="seconds of buffer after which it is cut at a committed segment end (default 10; 6 for a "
        "dynamic-context model; shorter: cheaper decodes)",
    )
    p.add_argument(
        "--hold",
        type=float,
        help="seconds: a word ending this close to the newest audio is not committed yet, as it may be cut "
        "(default 0; 0.1 for a dynamic-context model)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        help="probability: a word with a token the decoder gave less is not committed before a decode is surer "
        "of it or a pause makes it final (default 0: off)",
    )
    p.add_argument(
        "--unsure-hold",
        type=float,
        help="seconds: a word under --confidence waits only while it ends this close to the newest audio "
        "(default 0: until a surer decode or a pause)",
    )
    p.add_argument(
        "--pad",
        type=float,
        default=5.0,
        help="seconds of silence a dynamic-context model hears after the buffer (the end of its audio; 0: none)",
    )
    p.add_argument(
        "--prompt-chars",
        type=int,
        default=400,
        help="characters of the committed text before the buffer given as the decoder's prompt (0: none)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    audio = load_audio(args.simulate) if args.simulate else None
    if audio is not None and not np.abs(audio).max(initial=0.0) >= 1e-4:
        logger.warning("%s is silent: nothing will be transcribed", args.simulate)
    sd = None
    if args.mic:
        sd = mic.import_sounddevice()  # before loading the model: a missing library fails fast
    online = OnlineProcessor.for_backend(
        common.backend(args),
        language=args.language,
        agreement=args.agreement,
        min_chunk=args.chunk,
        silence_flush=args.silence_flush,
        forget=args.forget,
        trim_after=args.trim_after,
        hold=args.hold,
        confidence=args.confidence,
        unsure_hold=args.unsure_hold,
        pad=args.pad,
        prompt_chars=args.prompt_chars,
        vad=load_vad(args.vad),
        gate=common.gate_from(args),
    )
    if args.mic:
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        print("listening; Ctrl-C to stop", file=sys.stderr)
        stats = mic.run_mic(online, device=device, on_words=mic.print_words, sd=sd)
        print(
            f"\n{len(stats.words)} words; {online.decodes} decodes; input over-runs {stats.overflows}; "
            f"audio dropped {stats.dropped_seconds:.1f} s",
            file=sys.stderr,
        )
        return 0
    emitted = mic.simulate(online, audio, realtime=args.realtime, on_words=mic.print_words)
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
