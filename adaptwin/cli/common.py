"""Options and helpers shared by the commands that decode audio."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_model_args(p: argparse.ArgumentParser) -> None:
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
    from ..runtime.gate import NoSpeechGate

    return None if args.no_speech_gate == "off" else NoSpeechGate(vad=args.vad)


def backend(args):
    from ..runtime import get_backend

    kwargs = {"threads": args.threads} if args.threads and args.backend in ("torch", "ort") else {}
    return get_backend(args.backend, args.model, **kwargs)


def write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))
