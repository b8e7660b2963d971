"""What the commands share: the error policy (``run_command``) and the options of the commands
that decode audio."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..errors import AdaptwinError
from ..models.context import RUN_MARGIN
from ..runtime import get_backend
from ..runtime.gate import NoSpeechGate


def add_model_args(p: argparse.ArgumentParser, margin: bool = True) -> None:
    p.add_argument(
        "--model", default="base", help="torch: anything load_whisper accepts; ort/trt: an adaptwin-export folder"
    )
    p.add_argument("--backend", default="torch", choices=["torch", "ort", "trt"])
    add_language_arg(p)
    p.add_argument("--threads", type=int, help="CPU threads for the engine")
    add_context_arg(p, margin)
    add_gate_args(p)


def add_language_arg(p: argparse.ArgumentParser) -> None:
    """--language: a code such as en or de; auto (None) lets a multilingual model detect it."""
    p.add_argument(
        "--language",
        default="en",
        type=lambda v: None if v == "auto" else v,
        help="language of multilingual models, e.g. en, de; auto: detected (English-only models ignore it)",
    )


def add_context_arg(p: argparse.ArgumentParser, margin: bool = True) -> None:
    """--context, and --run-margin unless ``margin`` is False (streaming has its own --pad)."""
    p.add_argument(
        "--context",
        default="auto",
        choices=["auto", "full"],
        help="encoder input: auto = the audio's length for models adapted with --dynamic-context "
        "(30 s for others), full = always 30 s",
    )
    if not margin:
        return
    p.add_argument(
        "--run-margin",
        type=float,
        default=RUN_MARGIN,
        help=f"seconds the encoder hears after the audio, at least, on a dynamic context (default {RUN_MARGIN}; "
        "the model's own margin if longer)",
    )


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
    return None if args.no_speech_gate == "off" else NoSpeechGate(vad=args.vad)


def backend(args):
    kwargs = {"threads": args.threads} if args.threads and args.backend in ("torch", "ort") else {}
    margin = getattr(args, "run_margin", RUN_MARGIN)
    return get_backend(args.backend, args.model, args.context, margin, **kwargs)


def write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))


def run_command(prog: str, args: argparse.Namespace, func) -> int:
    """Logging setup and the error policy shared by every command: a problem the user can fix
    (``AdaptwinError``, or the OS refusing a file) is one line and exit code 2; anything else
    is a bug: one line asking for ``-v``, and under ``-v`` the traceback."""

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
