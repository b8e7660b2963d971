"""``adaptwin transcribe``: audio files of any length, as txt, srt, vtt or json."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..runtime.decoding import DecodingOptions
from ..runtime.output import format_segments
from ..runtime.whisper import Whisper
from . import common

logger = logging.getLogger("adaptwin")


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files of any length (30 s windows with timestamps)")
    p.add_argument("files", nargs="+")
    common.add_model_args(p)
    p.add_argument("--output", default="txt", choices=["txt", "srt", "vtt", "json"])
    p.add_argument("--out", help="write here (a folder when several files are given) instead of stdout")
    p.add_argument("--beams", type=int, default=1)
    p.add_argument(
        "--task",
        default="transcribe",
        choices=["transcribe", "translate"],
        help="translate: into English (multilingual models)",
    )
    p.add_argument("--initial-prompt", help="text the first window is decoded after: names, spellings, a style")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    DecodingOptions(beam_size=args.beams)  # options are checked before the files and the model
    audios = [(f, load_audio(f)) for f in args.files]  # every file is checked before minutes of decoding
    gate = common.gate_from(args)
    for path, audio in audios:
        if not np.abs(audio).max(initial=0.0) >= 1e-4:
            logger.warning("%s is silent: its transcript is empty", path)
    model = Whisper(common.backend(args), language=args.language, gate=gate)
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

        segments, info = model.transcribe(
            audio, beams=args.beams, progress=progress, task=args.task, initial_prompt=args.initial_prompt
        )
        if info.language_probability is not None:
            logger.info("%s: detected language %s (probability %.2f)", path, info.language, info.language_probability)
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
