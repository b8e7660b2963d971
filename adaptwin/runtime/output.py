"""Transcript writers: txt, srt, vtt, json."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict

from ..errors import InvalidInput
from .segments import Segment

FORMATS = ("txt", "srt", "vtt", "json")


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_segments(segments: Iterable[Segment], fmt: str, source: str = "") -> Iterable[str]:
    """Chunks of the output file, one per segment (so a long transcript streams out)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown output format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "vtt":
        yield "WEBVTT\n\n"
    if fmt == "json":
        yield '{"source": %s, "segments": [\n' % json.dumps(source)
    for i, seg in enumerate(segments, 1):
        if fmt == "txt":
            yield seg.text + "\n"
        elif fmt == "srt":
            yield f"{i}\n{_stamp(seg.start, ',')} --> {_stamp(seg.end, ',')}\n{seg.text}\n\n"
        elif fmt == "vtt":
            yield f"{_stamp(seg.start, '.')} --> {_stamp(seg.end, '.')}\n{seg.text}\n\n"
        else:
            yield ("" if i == 1 else ",\n") + json.dumps({k: v for k, v in asdict(seg).items() if k != "tokens"})
    if fmt == "json":
        yield "\n]}\n"
