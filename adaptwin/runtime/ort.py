"""ONNX Runtime sessions of an exported folder, as a decoding ``Stepper``."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..optional import require
from .exported import ExportedWhisper, cross_feed

logger = logging.getLogger(__name__)

ENCODER, DECODER = "encoder_model.onnx", "decoder_model_merged.onnx"


def _ort():
    return require("onnxruntime", "the ort backend")


class OrtWhisper(ExportedWhisper):
    """Encoder + merged decoder sessions; CUDA when available, else CPU."""

    def __init__(
        self,
        folder: str | os.PathLike,
        providers: list[str] | None = None,
        threads: int | None = None,
        processor: Any = None,
    ) -> None:
        ort = _ort()
        super().__init__(folder, (ENCODER, DECODER), processor)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.providers_requested = providers
        self.threads = threads
        # The encoder always sees one shape, so ONNX Runtime's arena reuses its big blocks; the
        # decoder sees a new past length every step, where an arena would keep a block per shape
        # and grow for the whole stream. No memory pattern for either: its pre-planned block per
        # shape costs peak memory in a stream and buys no speed.
        self.encoder = ort.InferenceSession(str(self.path / ENCODER), self._options(arena=True), providers=providers)
        self.decoder = ort.InferenceSession(str(self.path / DECODER), self._options(arena=False), providers=providers)
        self.float_type = np.float16 if "float16" in self.encoder.get_inputs()[0].type else np.float32
        self.past_inputs = [i for i in self.decoder.get_inputs() if i.name.startswith("past.")]
        # exports since logits_at was added project only the positions asked for (older ones: all)
        self.positions = any(i.name == "logits_at" for i in self.decoder.get_inputs())

    def _options(self, arena: bool):
        opts = _ort().SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = arena
        opts.enable_mem_pattern = False
        # Idle pool threads would spin: with an encoder and a decoder pool beside Python's own
        # thread there are more busy threads than cores on a small CPU, and the spinning ones
        # slow both sessions (benchmarks/results/runtime_speed-nospin).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    @property
    def providers(self) -> list[str]:
        return self.encoder.get_providers()

    def encode(self, features: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Decoder state for ``features`` [B, n_mels, frames]: (cross keys/values, empty past)."""
        out = self.encoder.run(None, {"input_features": features.astype(self.float_type)})
        batch = features.shape[0]
        past = [np.zeros((batch, i.shape[1], 0, i.shape[3]), dtype=self.float_type) for i in self.past_inputs]
        return out[1:], past

    def feed(
        self, tokens: np.ndarray, cross: list[np.ndarray], past: list[np.ndarray], at: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        feed = {"input_ids": tokens.astype(np.int64)}
        if self.positions:
            feed["logits_at"] = np.arange(tokens.shape[1], dtype=np.int64) if at is None else at.astype(np.int64)
        feed.update(cross_feed(cross))
        feed.update(zip((i.name for i in self.past_inputs), past))
        return feed

    def step(self, tokens: np.ndarray, state, at: np.ndarray | None = None):
        """``at`` [K]: the positions whose logits to return (engines with ``positions``; None: all)."""
        cross, past = state
        logits, *present = self.decoder.run(None, self.feed(tokens, cross, past, at))
        return logits, (cross, present)

    def session(self, filename: str):
        """Another graph of the folder (e.g. decoder_model.onnx), with this engine's providers."""
        ort = _ort()
        return ort.InferenceSession(str(self.path / filename), self._options(arena=False), providers=self.providers)

    def reorder(self, state, rows: np.ndarray):
        cross, past = state
        # One input's cross keys/values stay [1, ...]: the decoder's MatMuls broadcast them over
        # the beams (5 copies would be ~37 MB each for base). Several inputs expand into beams
        # once; later reorders stay within an input.
        if cross[0].shape[0] > 1 and len(rows) != cross[0].shape[0]:
            cross = [c[rows] for c in cross]
        return cross, [p[rows] for p in past]
