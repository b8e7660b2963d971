"""Voice activity detection for streaming: Silero (the ONNX model inside the faster-whisper
wheel, run with ONNX Runtime) or an energy threshold when it is not installed."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import MissingDependency

logger = logging.getLogger(__name__)

FRAME, CONTEXT = 512, 64  # Silero at 16 kHz: 32 ms frames with 4 ms of left context


class EnergyVAD:
    """Speech when the chunk's RMS level is above ``threshold_db`` dBFS."""

    name = "energy"

    def __init__(self, threshold_db: float = -45.0) -> None:
        self.threshold_db = threshold_db

    def speech(self, chunk: np.ndarray) -> bool:
        if len(chunk) == 0:
            return False
        rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
        return 20 * np.log10(max(rms, 1e-10)) > self.threshold_db


class SileroVAD:
    """Streaming Silero VAD (v5/v6 interface: input [N, 576], LSTM state h, c [1, 1, 128])."""

    name = "silero"

    def __init__(self, path: str | Path, threshold: float = 0.5) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), dtype=np.float32)
        self.c = np.zeros((1, 1, 128), dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.rest = np.zeros(0, dtype=np.float32)

    def probabilities(self, chunk: np.ndarray) -> np.ndarray:
        """Speech probability of each complete 32 ms frame (leftover samples wait for the next chunk)."""
        audio = np.concatenate([self.rest, np.asarray(chunk, dtype=np.float32)])
        n = len(audio) // FRAME
        self.rest = audio[n * FRAME :]
        probs = []
        for i in range(n):
            frame = audio[i * FRAME : (i + 1) * FRAME]
            x = np.concatenate([self.context, frame])[None]  # [1, 576]
            p, self.h, self.c = self.session.run(None, {"input": x, "h": self.h, "c": self.c})
            self.context = frame[-CONTEXT:]
            probs.append(float(np.asarray(p).reshape(-1)[0]))
        return np.asarray(probs, dtype=np.float32)

    def speech(self, chunk: np.ndarray) -> bool:
        probs = self.probabilities(chunk)
        return bool(len(probs) and probs.max() >= self.threshold)


def silero_path() -> Path | None:
    """The Silero model shipped in the faster-whisper wheel, if installed."""
    try:
        import faster_whisper
    except ImportError:
        return None
    assets = Path(faster_whisper.__file__).parent / "assets"
    found = sorted(assets.glob("silero*.onnx"))
    return found[-1] if found else None


def load_vad(kind: str = "auto"):
    """``silero``, ``energy``, ``none`` or ``auto`` (Silero when available, else energy)."""
    if kind == "none":
        return None
    if kind == "energy":
        return EnergyVAD()
    path = silero_path()
    if path is None:
        if kind == "silero":
            raise MissingDependency(
                "the Silero VAD model ships in the faster-whisper wheel: pip install faster-whisper "
                "(or use --vad energy)"
            )
        logger.info("faster-whisper is not installed: using the energy VAD")
        return EnergyVAD()
    try:
        return SileroVAD(path)
    except ImportError:
        if kind == "silero":
            raise MissingDependency(
                "the Silero VAD needs onnxruntime: pip install onnxruntime (or use --vad energy)"
            ) from None
        return EnergyVAD()
