"""Utterance lists (JSON-lines manifests, folders of audio) and calibration windows built from them."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..errors import InvalidInput, MissingFile

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".g722")
WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class Utterance:
    audio: Path
    text: str | None = None
    speaker: str | None = None
    split: str | None = None
    duration: float | None = None  # seconds, when known

    def to_row(self, root: Path | None = None) -> dict:
        audio = self.audio
        if root is not None and audio.is_absolute() and audio.is_relative_to(root):
            audio = audio.relative_to(root)
        row = {
            "audio": str(audio),
            "text": self.text,
            "speaker": self.speaker,
            "split": self.split,
            "duration": None if self.duration is None else round(self.duration, 3),
        }
        return {k: v for k, v in row.items() if v is not None}


def read_utterances(source: str | Path) -> list[Utterance]:
    """A JSON-lines manifest (``audio``, ``text``, ``speaker``, ``split``; relative ``audio``
    resolves against the manifest's folder) or a folder of audio files (same-named ``.txt``
    files are their transcripts)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise InvalidInput(f"{source} contains no audio files ({', '.join(AUDIO_SUFFIXES)})")
        return [
            Utterance(p, p.with_suffix(".txt").read_text().strip() if p.with_suffix(".txt").is_file() else None)
            for p in files
        ]
    if not source.is_file():
        raise MissingFile(f"{source} is neither a manifest file nor a folder of audio")
    out = []
    for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{source}:{n} is not a manifest row with an 'audio' field ({exc})") from None
        audio = audio if audio.is_absolute() else source.parent / audio
        out.append(Utterance(audio, row.get("text"), row.get("speaker"), row.get("split"), row.get("duration")))
    if not out:
        raise InvalidInput(f"{source} lists no utterances")
    return out


def write_manifest(utterances: list[Utterance], path: str | Path) -> Path:
    """Write a JSON-lines manifest atomically; audio paths under its folder are stored relative."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    root = path.parent.resolve()
    with open(tmp, "w", encoding="utf-8") as f:
        for u in utterances:
            f.write(json.dumps(u.to_row(root), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def from_hf_dataset(
    dataset,
    out_dir: str | Path,
    audio_column: str = "audio",
    text_column: str = "text",
    speaker_column: str = "speaker_id",
    split: str | None = None,
) -> list[Utterance]:
    """Utterances from a Hugging Face ``datasets`` audio dataset with LibriSpeech-style columns.

    Audio is read undecoded (``Audio(decode=False)``: the original file bytes or path) and
    written under ``out_dir``, so decoding goes through ``load_audio`` like everything else.
    """
    from datasets import Audio

    missing = [c for c in (audio_column, text_column) if c not in dataset.column_names]
    if missing:
        raise InvalidInput(
            f"dataset lacks column(s) {missing}; it has {dataset.column_names}: pass audio_column=/text_column="
        )
    dataset = dataset.cast_column(audio_column, Audio(decode=False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    utterances = []
    for i, row in enumerate(dataset):
        audio = row[audio_column]
        src = Path(audio.get("path") or f"{i}.wav")
        target = out_dir / f"{i:06d}{src.suffix or '.wav'}"
        if audio.get("bytes"):
            target.write_bytes(audio["bytes"])
        elif audio.get("path") and Path(audio["path"]).is_file():
            shutil.copyfile(audio["path"], target)
        else:
            raise InvalidInput(f"row {i} of the dataset has neither audio bytes nor a readable path")
        speaker = row.get(speaker_column)
        utterances.append(Utterance(target, row[text_column], None if speaker is None else str(speaker), split))
    return utterances


def pack_windows(
    utterances: list[Utterance],
    max_windows: int | None = None,
    gap: float = 0.3,
    seconds: float = WINDOW_SECONDS,
    caps: Callable[[int], float] | None = None,
) -> list[tuple[np.ndarray, str | None]]:
    """Concatenate utterances (with short silences) into windows of at most ``seconds``, with their joined text.

    ``caps(i)``: the audio seconds window ``i`` may hold (at most ``seconds``; a window always
    takes at least one utterance). Unreadable files are skipped with a warning (and counted), never fatal.
    """
    windows: list[tuple[np.ndarray, str | None]] = []
    pieces: list[np.ndarray] = []
    texts: list[str | None] = []
    skipped = 0
    full = int(seconds * SAMPLE_RATE)
    limit = full if caps is None else min(full, int(caps(0) * SAMPLE_RATE))
    silence = np.zeros(int(gap * SAMPLE_RATE), np.float32)

    def flush() -> None:
        nonlocal limit
        if pieces:
            text = None if any(t is None for t in texts) else " ".join(t.strip() for t in texts)
            windows.append((np.concatenate(pieces)[:full], text))
            pieces.clear()
            texts.clear()
            if caps is not None:
                limit = min(full, int(caps(len(windows)) * SAMPLE_RATE))

    for utt in utterances:
        try:
            audio = load_audio(utt.audio)
        except (ValueError, OSError) as exc:
            skipped += 1
            logger.warning("skipping %s: %s", utt.audio, exc)
            continue
        used = sum(len(p) for p in pieces)
        if pieces and used + len(silence) + len(audio) > limit:
            flush()
            if max_windows and len(windows) >= max_windows:
                break
        if pieces:
            pieces.append(silence)
        pieces.append(audio)
        texts.append(utt.text)
    if not (max_windows and len(windows) >= max_windows):
        flush()
    if skipped:
        logger.warning("skipped %d unreadable file(s) of %d", skipped, len(utterances))
    if not windows:
        raise InvalidInput("no readable audio among the calibration files")
    return windows


def bundled_clips() -> list[Utterance]:
    """Five public-domain LibriVox utterances shipped with the package (Sense and Sensibility)."""
    assets = Path(__file__).parent.parent / "assets"
    texts = json.loads((assets / "librivox_sense.json").read_text())
    return [Utterance(assets / name, text, "librivox") for name, text in texts.items()]
