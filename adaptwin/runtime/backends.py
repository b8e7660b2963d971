"""One interface for every inference engine: PyTorch now; ONNX Runtime and TensorRT plug in here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..checkpoint import LoadedWhisper

TOKENS_PER_SECOND = 8  # decoding budget per second of audio (generous: fast speech is ~5 tokens/s)


class Backend(Protocol):
    name: str

    def transcribe_batch(self, audios: list[np.ndarray], *, language: str | None = "en", num_beams: int = 1) -> list[str]:
        """Text of each (<= 30 s, 16 kHz mono) clip."""
        ...


@dataclass
class TorchBackend:
    loaded: LoadedWhisper
    name: str = "torch"

    @torch.no_grad()
    def transcribe_batch(self, audios: list[np.ndarray], *, language: str | None = "en", num_beams: int = 1) -> list[str]:
        from ..transcribe import generate_kwargs, log_mel, max_tokens

        feats = log_mel(self.loaded, audios)  # [B, n_mels, 3000]
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        # Speech carries at most ~5 tokens/s; the cap stops hallucination loops from costing minutes.
        limit = max_tokens(self.loaded.model, min(220, int(TOKENS_PER_SECOND * longest) + 16))
        ids = self.loaded.model.generate(feats, num_beams=num_beams, do_sample=False, max_new_tokens=limit,
                                         **generate_kwargs(self.loaded, language))
        return [t.strip() for t in self.loaded.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def get_backend(name: str, model) -> Backend:
    """A backend by name for ``model`` (anything ``load_whisper`` accepts, or a ``LoadedWhisper``)."""
    if name == "torch":
        if not isinstance(model, LoadedWhisper):
            from ..checkpoint import load_whisper

            model = load_whisper(model)
        return TorchBackend(model)
    if name in ("ort", "trt"):
        raise NotImplementedError(
            f"the {name} backend needs an exported model (adaptwin-export), which this version does not provide yet: "
            "use --backend torch"
        )
    raise ValueError(f"unknown backend {name!r}: choose torch")
