"""Whisper's front end without PyTorch or transformers: log-mel features in NumPy and the
tokenizer through the ``tokenizers`` library (what the exported runtime loads on a device)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import InvalidInput

SAMPLE_RATE, N_FFT, HOP, CHUNK_SECONDS = 16000, 400, 160, 30


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)  # Slaney: linear below 1 kHz, logarithmic above
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + 27.0 * np.log(np.maximum(f, 1e-10) / 1000.0) / np.log(6.4))


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(np.log(6.4) * (m - 15.0) / 27.0))


def mel_filters(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-normalised triangular filters (librosa's, as Whisper uses)."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


class LogMel:
    """Callable like transformers' WhisperFeatureExtractor for what the runtime needs:
    ``extractor(audios, sampling_rate=16000, return_tensors="np").input_features``."""

    def __init__(self, n_mels: int = 80, chunk_seconds: int = CHUNK_SECONDS) -> None:
        self.filters = mel_filters(n_mels)
        self.n_samples = chunk_seconds * SAMPLE_RATE
        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann

    def one(self, audio: np.ndarray, frames: int | None = None) -> np.ndarray:
        """[n_mels, frames] of one clip, padded with zeros (or cut) to the window, or to its
        first ``frames`` (the same values as the window's first frames when the audio ends
        before the cut: the rest of the window is zeros either way)."""
        n_samples = self.n_samples if frames is None else min(self.n_samples, frames * HOP)
        x = np.zeros(n_samples, dtype=np.float32)
        audio = np.asarray(audio, dtype=np.float32)[:n_samples]
        x[: len(audio)] = audio
        x = np.pad(x, N_FFT // 2, mode="reflect")  # centred frames
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]  # [1 + n/HOP, N_FFT]
        power = np.abs(np.fft.rfft(frames * self.window, axis=-1)) ** 2  # [frames, 201]
        mel = self.filters @ power.T.astype(np.float32)  # [n_mels, frames]
        log = np.log10(np.maximum(mel, 1e-10))[:, :-1]
        log = np.maximum(log, log.max() - 8.0)
        return ((log + 4.0) / 4.0).astype(np.float32)

    def __call__(self, audios, sampling_rate: int = SAMPLE_RATE, return_tensors: str = "np", frames: int | None = None):
        if sampling_rate != SAMPLE_RATE:
            raise InvalidInput(f"features need {SAMPLE_RATE} Hz audio, got {sampling_rate} Hz")
        batch = audios if isinstance(audios, (list, tuple)) else [audios]
        # a plain namespace: a class made per call sits in a reference cycle, so its features
        # lived until Python's rare full collection (docs/experiments/streaming.md)
        return SimpleNamespace(input_features=np.stack([self.one(a, frames) for a in batch]))


class Tokens:
    """The parts of a Hugging Face Whisper tokenizer the runtime uses, on ``tokenizers`` alone."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, batch, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(ids, skip_special_tokens) for ids in batch]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids


class Processor:
    """Feature extractor + tokenizer of an exported folder, without transformers."""

    def __init__(self, folder: str | Path, n_mels: int) -> None:
        folder = Path(folder)
        chunk = CHUNK_SECONDS
        for name in ("preprocessor_config.json", "processor_config.json"):
            if (folder / name).is_file():
                cfg = json.loads((folder / name).read_text())
                cfg = cfg.get("feature_extractor", cfg)
                chunk = int(cfg.get("chunk_length", chunk))
                n_mels = int(cfg.get("feature_size", n_mels))
                break
        self.feature_extractor = LogMel(n_mels, chunk)
        self.tokenizer = Tokens(folder / "tokenizer.json") if (folder / "tokenizer.json").is_file() else None
