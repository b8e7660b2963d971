"""The PyTorch model as a decoding ``Stepper``, through the same plain-tensor graphs that
are exported (fused q/k/v, cross keys/values computed once per window), so every backend
decodes with one code path."""

from __future__ import annotations

import numpy as np
import torch

from ..models.checkpoint import LoadedWhisper
from .exported import features


class TorchWhisper:
    positions = True  # step(..., at=) returns the logits of those positions only

    def __init__(self, loaded: LoadedWhisper, threads: int | None = None) -> None:
        from ..models.graphs import DecoderGraph, EncoderGraph

        model = loaded.model.eval()
        self.path, self.processor, self.config = loaded.path, loaded.processor, model.config
        self.generation_config = model.generation_config
        self.dtype = next(model.parameters()).dtype
        self.device = next(model.parameters()).device
        self.encoder, self.decoder = EncoderGraph(model).eval(), DecoderGraph(model).eval()
        if threads:
            torch.set_num_threads(threads)

    def features(self, audios: list[np.ndarray], frames: int | None = None) -> np.ndarray:
        return features(self.processor, audios, self.path, frames)

    @torch.inference_mode()
    def encode(self, features: np.ndarray):
        out = self.encoder(torch.as_tensor(features, dtype=self.dtype, device=self.device))
        return list(out[1:]), []

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, state, at: np.ndarray | None = None):
        cross, past = state
        pairs = lambda ts: [(ts[i], ts[i + 1]) for i in range(0, len(ts), 2)]  # noqa: E731
        ids = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        at = None if at is None else torch.as_tensor(at, dtype=torch.long, device=self.device)
        logits, presents = self.decoder(ids, pairs(cross), pairs(past) if past else None, at=at)
        return logits.float().cpu().numpy(), (cross, [t for kv in presents for t in kv])

    def reorder(self, state, rows: np.ndarray):
        cross, past = state
        index = torch.as_tensor(rows, device=self.device)
        if cross[0].shape[0] > 1 and len(rows) != cross[0].shape[0]:  # one input's broadcast over its beams
            cross = [c.index_select(0, index) for c in cross]
        return cross, [p.index_select(0, index) for p in past]
