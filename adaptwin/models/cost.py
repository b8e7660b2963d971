"""Floating-point operations of each inference stage, counted on the graphs that are exported
(``models/graphs.py``), so dense and compressed models are counted the same way: a matmul
of ``[T, K] x [K, N]`` is ``2·T·K·N``; normalisations, softmax and activations are left out."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from .graphs import DecoderGraph, EncoderGraph, SelfAttention


@dataclass(frozen=True)
class StageFlops:
    encoder: float  # one window: convolutions, layers, every decoder layer's cross keys/values
    prefill: float  # the prompt, all its positions at once (logits at every position, as the graph does)
    step: float  # one more token after ``past`` tokens, without the logits
    logits: float  # the vocabulary projection of one token

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _matmul_weights(module: nn.Module) -> int:
    """Weights of every ``nn.Linear`` inside ``module`` (a low-rank pair counts both factors)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def _scores(attn: SelfAttention, queries: int, keys: int) -> float:
    """The two attention matmuls (q·kᵀ at width r_qk, weights·v at width r_vo)."""
    return 2.0 * attn.heads * queries * keys * (attn.r_qk + attn.r_vo)


def encoder_flops(graph: EncoderGraph, frames: int) -> float:
    positions = frames // 2
    conv = 2.0 * frames * graph.conv1.weight.numel() + 2.0 * positions * graph.conv2.weight.numel()
    layers = sum(
        2.0 * positions * _matmul_weights(layer) + _scores(layer.attn, positions, positions) for layer in graph.layers
    )
    cross = 2.0 * positions * _matmul_weights(graph.cross_kv)
    return conv + layers + cross


def logits_flops(graph: DecoderGraph) -> float:
    return 2.0 * sum(t.numel() for t in (graph.table, graph.inner, graph.kept) if t is not None)


def decoder_token_flops(graph: DecoderGraph, past: int, positions: int) -> float:
    """One token attending to ``past`` earlier ones and ``positions`` encoder positions, without
    the logits (the factorized head's lookup is counted: it is a matmul)."""
    total = 2.0 * graph.inner.numel() if graph.inner is not None else 0.0
    for layer in graph.layers:
        total += 2.0 * _matmul_weights(layer)
        total += _scores(layer.attn, 1, past + 1)
        r_qk = layer.cross_q.out_features // layer.cross_heads
        r_vo = layer.cross_out.in_features // layer.cross_heads
        total += 2.0 * layer.cross_heads * positions * (r_qk + r_vo)
    return total


def stage_flops(model: nn.Module, frames: int | None = None, prompt: int = 3, past: int = 32) -> StageFlops:
    """FLOPs of ``model``'s stages for an encoder input of ``frames`` log-mel frames (default
    the 30 s window), a ``prompt`` of that many tokens, and a decoder step after ``past`` tokens."""
    frames = frames or 2 * model.config.max_source_positions
    encoder, decoder = EncoderGraph(model), DecoderGraph(model)
    positions = frames // 2
    head = logits_flops(decoder)
    prefill = sum(decoder_token_flops(decoder, t, positions) + head for t in range(prompt))
    return StageFlops(encoder_flops(encoder, frames), prefill, decoder_token_flops(decoder, past, positions), head)
