"""Short-clip transcription with the PyTorch model (one 30 s window, greedy or beam)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .checkpoint import LoadedWhisper
from .errors import InvalidInput


@dataclass(frozen=True)
class Transcript:
    text: str
    tokens: tuple[int, ...]
    seconds: float  # wall time of feature extraction + decoding
    audio_seconds: float


def log_mel(loaded: LoadedWhisper, audio: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """[N, n_mels, 3000] log-mel windows (audio longer than 30 s is cut by the extractor)."""
    if loaded.processor is None:
        raise InvalidInput(f"{loaded.path} has no processor files (preprocessor/tokenizer): cannot compute features")
    batch = audio if isinstance(audio, list) else [audio]
    feats = loaded.processor.feature_extractor(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    return feats.to(next(loaded.model.parameters()).dtype)


def max_tokens(model, wanted: int) -> int:
    """New-token limit that, with the prompt (at most 4 tokens), fits the decoder's positions."""
    return max(1, min(wanted, model.config.max_target_positions - 5))


def generate_kwargs(loaded: LoadedWhisper, language: str | None) -> dict:
    if getattr(loaded.model.generation_config, "is_multilingual", False):
        return {"task": "transcribe", "language": language}
    return {}


@torch.no_grad()
def transcribe(
    loaded: LoadedWhisper,
    audio: np.ndarray,
    *,
    language: str | None = "en",
    num_beams: int = 1,
    max_new_tokens: int = 220,
) -> Transcript:
    start = time.perf_counter()
    feats = log_mel(loaded, audio)
    ids = loaded.model.generate(
        feats,
        max_new_tokens=max_tokens(loaded.model, max_new_tokens),
        num_beams=num_beams,
        do_sample=False,
        **generate_kwargs(loaded, language),
    )
    text = loaded.processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    return Transcript(text, tuple(int(t) for t in ids[0]), time.perf_counter() - start, len(audio) / SAMPLE_RATE)
