"""Synthetic voices from Debian's TTS engines (flite, festival, espeak-ng): more speakers."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, load_audio


@dataclass(frozen=True)
class Voice:
    name: str  # speaker id in manifests
    engine: str  # flite | festival | espeak-ng
    voice: str  # the engine's own voice name
    package: str  # Debian package providing it

    def command(self, text_file: Path, out: Path) -> list[str]:
        if self.engine == "flite":
            return ["flite", "-voice", self.voice, "-f", str(text_file), "-o", str(out)]
        if self.engine == "festival":
            return ["text2wave", "-eval", f"({self.voice})", str(text_file), "-o", str(out)]
        return ["espeak-ng", "-v", self.voice, "-f", str(text_file), "-w", str(out)]


VOICES = (
    Voice("flite_slt", "flite", "slt", "flite"),
    Voice("flite_rms", "flite", "rms", "flite"),
    Voice("flite_awb", "flite", "awb", "flite"),
    Voice("flite_kal16", "flite", "kal16", "flite"),
    Voice("festival_kal", "festival", "voice_kal_diphone", "festvox-kallpc16k"),
    Voice("festival_ked", "festival", "voice_ked_diphone", "festvox-kdlpc16k"),
    Voice("festival_slt_hts", "festival", "voice_cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
    Voice("espeak_en_us", "espeak-ng", "en-us", "espeak-ng"),
)

MIN_SECONDS_PER_WORD = 0.12  # shorter output means the engine truncated the sentence


def synthesize(voice: Voice, text: str, out: Path) -> float:
    """Speak ``text`` into ``out`` (16 kHz mono 16-bit WAV); returns its duration in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        text_file, raw = Path(tmp) / "t.txt", Path(tmp) / "raw.wav"
        text_file.write_text(text + "\n")
        proc = subprocess.run(voice.command(text_file, raw), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not raw.is_file():
            raise RuntimeError(f"{voice.engine} ({voice.voice}) failed: {proc.stderr.strip()[-200:]}")
        audio = load_audio(raw)
    seconds = len(audio) / SAMPLE_RATE
    if seconds < MIN_SECONDS_PER_WORD * len(text.split()):
        raise RuntimeError(f"{voice.name} truncated {text!r} ({seconds:.1f} s)")
    write_wav(out, audio)
    return seconds


def write_wav(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    import wave

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
