"""Audio input: any file -> 16 kHz mono float32 (WAV natively, other formats through ffmpeg)."""

from __future__ import annotations

import math
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from .errors import InvalidInput, MissingFile

SAMPLE_RATE = 16000


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 in [-1, 1] at ``sample_rate``; clear errors for bad files
    (missing, empty, corrupt, not audio). Silence is valid audio: its transcript is empty."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"audio file {path} does not exist")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path} is empty (0 bytes): the recording was not saved; record or copy it again")
    try:
        audio, rate = _read_wav(path)
    except (wave.Error, EOFError, ValueError):
        audio, rate = _read_ffmpeg(path, sample_rate)
    if audio.size == 0:
        raise InvalidInput(f"{path} holds no audio samples (empty or zero-length file)")
    if not np.isfinite(audio).all():
        raise InvalidInput(f"{path} contains NaN or infinite samples: the file is corrupt")
    return resample(audio, rate, sample_rate)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        data = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 8388608
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648
    else:
        raise InvalidInput(f"unsupported sample width {width}")
    return data.reshape(-1, channels).mean(axis=1), rate


def ffmpeg_binary() -> str | None:
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None


def _read_ffmpeg(path: Path, rate: int) -> tuple[np.ndarray, int]:
    exe = ffmpeg_binary()
    if exe is None:
        raise InvalidInput(
            f"{path} is not a PCM WAV file and no ffmpeg is available to decode it: "
            "install ffmpeg (apt-get install ffmpeg) or pip install imageio-ffmpeg"
        )
    fmt = ["-f", "g722"] if path.suffix.lower() == ".g722" else []  # raw G.722 has no header to probe
    cmd = [exe, "-nostdin", "-v", "error", *fmt, "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(rate), "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        said = [line.strip() for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
        raise InvalidInput(
            f"{path} is corrupt or not audio (ffmpeg: {said[-1] if said else 'no output'}): "
            "give a WAV, FLAC, OGG or MP3 file"
        )
    return np.frombuffer(proc.stdout, np.float32).copy(), rate


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited polyphase resampling (Kaiser-windowed FIR, scipy's ``resample_poly``)."""
    audio = np.asarray(audio, dtype=np.float32)
    if src == dst:
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(src, dst)
    return resample_poly(audio, dst // g, src // g).astype(np.float32)
