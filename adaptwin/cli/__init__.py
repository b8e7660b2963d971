"""The ``adaptwin`` command: one module per command, each a thin layer of argument parsing
around library calls; this module holds the error policy they share."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import adapt, compress, data, demo, info, stream, transcribe
from . import eval as eval_
from . import export as export_

COMMANDS = (compress, eval_, data, adapt, transcribe, stream, export_, info, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptwin", description="Compress, adapt, export and run Whisper models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def run_command(prog: str, args: argparse.Namespace, func) -> int:
    """Logging setup and the error policy shared by every command: a problem the user can fix
    (``AdaptwinError``, or the OS refusing a file) is one line and exit code 2; anything else
    is a bug: one line asking for ``-v``, and under ``-v`` the traceback."""
    from ..errors import AdaptwinError

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
