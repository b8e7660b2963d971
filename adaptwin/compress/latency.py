"""Measured time of each compressible unit on ONNX Runtime (CPU), for budgets in time.

A unit's time is that of the matmuls its rank decides, in the shapes inference runs them:
every encoder position once per window; per decoded token one query (self-attention over
``past`` cached tokens, cross-attention over the window's positions) and the logits; the
cross-attention keys and values once per window. Matmuls are timed alone, because which
shapes a CPU runs fast (cache sizes, vector widths, thread splits) is what a FLOP count
cannot say; the time of a window is then ``window + tokens · step``.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from torch import nn

from ..optional import require

logger = logging.getLogger(__name__)

Shape = tuple[int, int, int, int]  # (batch, M, K, N): a [batch, M, K] x [batch, K, N] matmul


@dataclass(frozen=True)
class UnitWork:
    """The matmuls one option of one unit runs: once per window, and once per decoded token."""

    window: tuple[Shape, ...] = ()
    step: tuple[Shape, ...] = ()


class MatmulTimer(Protocol):
    def seconds(self, shapes: tuple[Shape, ...]) -> float: ...


@dataclass(frozen=True)
class Dims:
    d_model: int
    positions: int  # encoder positions of one window
    past: int  # cached tokens a decoder step attends to

    @classmethod
    def of(cls, model: nn.Module, past: int = 32) -> "Dims":
        c = model.config
        return cls(c.d_model, c.max_source_positions, past)


def unit_work(
    kind: str, side: str, twin: str, rank: int | None, module: nn.Module, dims: Dims, kept: int = 0
) -> UnitWork:
    """The matmuls of ``twin`` of a unit of ``kind`` (a ``Site`` kind) on ``side`` at per-head
    rank (attention twins) or rank (FFN, head; a split head's ``kept`` rows stay dense);
    ``rank=None`` is the dense original."""
    d, t = dims.d_model, dims.positions
    if twin in ("ffn", "head"):
        n_in, n_out = module.in_features, module.out_features
        rows = t if side == "encoder" else 1
        if rank is None:
            mats = ((1, rows, n_in, n_out),)
        else:
            mats = ((1, rows, n_in, rank), (1, rows, rank, n_out - kept))
            mats += ((1, rows, n_in, kept),) if kept else ()
        if twin == "head" and rank is not None:
            mats += ((1, 1, rank, n_in),)  # the token lookup's inner factor
        return UnitWork(window=mats) if rows > 1 else UnitWork(step=mats)
    heads = module.num_heads
    r = rank or module.head_dim
    width = heads * r
    if kind == "encoder_self":
        if twin == "qk":  # queries and keys, then q·kᵀ per head
            return UnitWork(window=((1, t, d, width), (1, t, d, width), (heads, t, r, t)))
        return UnitWork(window=((1, t, d, width), (heads, t, t, r), (1, t, width, d)))
    keys = dims.past + 1 if kind == "decoder_self" else t
    if twin == "qk":
        step = ((1, 1, d, width), (heads, 1, r, keys))
        if kind == "decoder_self":
            return UnitWork(step=step + ((1, 1, d, width),))  # the new token's key
        return UnitWork(window=((1, t, d, width),), step=step)  # cross keys: once per window
    step = ((heads, 1, keys, r), (1, 1, width, d))
    if kind == "decoder_self":
        return UnitWork(step=step + ((1, 1, d, width),))  # the new token's value
    return UnitWork(window=((1, t, d, width),), step=step)


class OrtTimer:
    """Times matmuls on ONNX Runtime's CPU provider, each shape set in its own small graph;
    the median of ``repeats`` runs after a warm-up, cached by shape."""

    def __init__(self, threads: int = 0, repeats: int = 7, min_seconds: float = 0.02, seed: int = 0) -> None:
        self.threads = threads
        self.repeats = repeats
        self.min_seconds = min_seconds
        self.rng = np.random.default_rng(seed)
        self.cache: dict[tuple[Shape, ...], float] = {}
        self._overhead: float | None = None

    def seconds(self, shapes: tuple[Shape, ...]) -> float:
        if not shapes:
            return 0.0
        if self._overhead is None:  # a call into ORT costs this much whatever it runs: not the unit's
            self._overhead = self._measure(((1, 1, 1, 1),))
        if shapes not in self.cache:
            self.cache[shapes] = max(self._measure(shapes) - self._overhead, 0.0)
        return self.cache[shapes]

    def _measure(self, shapes: tuple[Shape, ...]) -> float:
        require("onnx", "timing units for a time budget")
        ort = require("onnxruntime", "timing units for a time budget")
        from onnx import TensorProto, helper, numpy_helper

        nodes, inputs, outputs, inits, feed = [], [], [], [], {}
        for i, (b, m, k, n) in enumerate(shapes):
            x = self.rng.standard_normal((b, m, k), dtype=np.float32)
            w = (self.rng.standard_normal((b, k, n)) / np.sqrt(k)).astype(np.float32)
            inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, list(x.shape)))
            inits.append(numpy_helper.from_array(w, f"w{i}"))  # weights constant, as in an export
            outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [b, m, n]))
            nodes.append(helper.make_node("MatMul", [f"x{i}", f"w{i}"], [f"y{i}"]))
            feed[f"x{i}"] = x
        graph = helper.make_graph(nodes, "unit", inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        session.run(None, feed)
        start = time.perf_counter()
        session.run(None, feed)
        once = max(time.perf_counter() - start, 1e-7)
        loops = max(1, int(self.min_seconds / self.repeats / once))  # short graphs: average many runs
        runs = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            for _ in range(loops):
                session.run(None, feed)
            runs.append((time.perf_counter() - start) / loops)
        logger.debug("timed %s: %.3f ms", shapes, 1e3 * statistics.median(runs))
        return statistics.median(runs)


def window_seconds(work: UnitWork, timer: MatmulTimer, tokens: int) -> float:
    """Seconds per window of audio in which ``tokens`` tokens are decoded."""
    return timer.seconds(work.window) + tokens * timer.seconds(work.step)
