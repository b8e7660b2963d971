"""The ``adaptwin`` command: one module per command, each a thin layer of argument parsing
around library calls; this module holds the error policy they share."""

from __future__ import annotations

import argparse

from . import adapt, compress, data, demo, info, stream, transcribe
from . import eval as eval_
from . import export as export_
from .common import run_command

COMMANDS = (compress, eval_, data, adapt, transcribe, stream, export_, info, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptwin", description="Compress, adapt, export and run Whisper models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(f"adaptwin {args.command}", args, args.func)
