"""Compressed modules that drop into a Hugging Face Whisper model in place of the dense ones.

``TwinAttention`` is Whisper attention whose query/key heads are ``r_qk`` wide and whose
value/output heads are ``r_vo`` wide, with the softmax scale of the original head width.
It speaks the same forward protocol as ``WhisperAttention`` (KV cache, cross-attention
reuse, attention backends), so ``generate()`` and the cache work unchanged: export and
runtime only ever see "attention with reduced per-head widths".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TwinAttention(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        r_qk: int,
        r_vo: int,
        head_dim: int,
        *,
        q_bias: bool = True,
        k_bias: bool = False,
        is_decoder: bool = False,
        is_causal: bool = False,
        layer_idx: int | None = None,
        config: Any = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = head_dim  # the original width: fixes the softmax scale
        self.r_qk = r_qk
        self.r_vo = r_vo
        self.scaling = head_dim**-0.5
        self.is_decoder = is_decoder
        self.is_causal = is_causal
        self.layer_idx = layer_idx
        self.config = config
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, num_heads * r_qk, bias=q_bias)
        self.k_proj = nn.Linear(embed_dim, num_heads * r_qk, bias=k_bias)
        self.v_proj = nn.Linear(embed_dim, num_heads * r_vo, bias=False)  # value bias folded into out_proj
        self.out_proj = nn.Linear(num_heads * r_vo, embed_dim, bias=True)

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, r_qk={self.r_qk}, r_vo={self.r_vo}, head_dim={self.head_dim}"

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        cache: Any = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        from transformers.cache_utils import EncoderDecoderCache
        from transformers.models.whisper.modeling_whisper import (
            ALL_ATTENTION_FUNCTIONS,
            eager_attention_forward,
        )

        for old_name in ("past_key_values", "past_key_value"):  # older keyword names of `cache`
            old_cache = kwargs.pop(old_name, None)
            cache = old_cache if cache is None else cache
        is_cross = key_value_states is not None
        batch, q_len = hidden_states.shape[:2]

        query = self.q_proj(hidden_states) * self.scaling  # [B, T, H*r_qk]
        query = query.view(batch, q_len, self.num_heads, self.r_qk).transpose(1, 2).contiguous()  # [B, H, T, r_qk]

        is_updated = False
        if cache is not None and isinstance(cache, EncoderDecoderCache):
            is_updated = cache.is_updated.get(self.layer_idx)
            if is_cross:
                cache.is_updated[self.layer_idx] = True
                cache = cache.cross_attention_cache
            else:
                cache = cache.self_attention_cache

        source = key_value_states if is_cross else hidden_states  # [B, S, D]
        if is_cross and cache is not None and is_updated:
            key, value = cache.layers[self.layer_idx].keys, cache.layers[self.layer_idx].values
        else:
            key = self.k_proj(source).view(batch, -1, self.num_heads, self.r_qk).transpose(1, 2).contiguous()
            value = self.v_proj(source).view(batch, -1, self.num_heads, self.r_vo).transpose(1, 2).contiguous()
            if cache is not None:  # key [B, H, S, r_qk], value [B, H, S, r_vo]
                key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)

        impl = getattr(self.config, "_attn_implementation", None) or "eager"
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention_forward)
        width = max(self.r_qk, self.r_vo)
        if impl != "eager" and self.r_qk != self.r_vo:
            # fused kernels (SDPA's flash path) need one head width for q/k and v; else SDPA falls
            # back to its much slower math path. Zero columns
            # leave q.k unchanged, and zero value columns come out as zeros, cut below.
            query, key, value = (F.pad(t, (0, width - t.shape[-1])) for t in (query, key, value))
        out, weights = attend(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=0.0 if not self.training else self.dropout,
            scaling=1.0,
            output_attentions=output_attentions,
            **kwargs,
        )  # out [B, T, H, r_vo] (or [B, T, H, width], padded)
        out = out[..., : self.r_vo]
        out = self.out_proj(out.reshape(batch, q_len, -1).contiguous())  # [B, T, D]
        return out, weights


class LowRankLinear(nn.Module):
    """``y = up(down(x))``: a dense ``[out, in]`` layer split into ``[r, in]`` and ``[out, r]`` factors."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))  # [..., in] -> [..., r] -> [..., out]

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` of the product ``up.weight @ down.weight``: a token lookup in a tied head."""
        return F.embedding(ids, self.up.weight) @ self.down.weight  # [B, T] -> [B, T, r] -> [B, T, in]

    def to_dense(self) -> nn.Linear:
        dense = nn.Linear(self.in_features, self.out_features, bias=self.up.bias is not None)
        with torch.no_grad():
            dense.weight.copy_(self.up.weight @ self.down.weight)
            if self.up.bias is not None:
                dense.bias.copy_(self.up.bias)
        return dense


def split_lookup(ids: torch.Tensor, order: torch.Tensor, kept: int, kept_rows, other_rows) -> torch.Tensor:
    """Embeddings of ``ids`` [B, T] from a split head: ``kept_rows`` / ``other_rows`` look up rows
    of the kept / factored part (both [B, T] -> [B, T, D]); ``order`` [V] maps a token to its row
    in the two joined."""
    at = order[ids]  # [B, T]
    dense = kept_rows(at.clamp(max=kept - 1))
    low = other_rows((at - kept).clamp(min=0))
    return torch.where((at < kept).unsqueeze(-1), dense, low)  # [B, T, D]


class SplitHead(nn.Module):
    """A vocabulary head whose ``kept`` rows (frequent tokens) stay dense and whose other rows
    are one low-rank pair: a low rank alone must spend its width on every token of a 51,865-row
    vocabulary, while the tokens a language mostly uses are a few thousand.

    ``order[v]`` is token ``v``'s row in ``cat(kept rows, low-rank rows)``. No bias (Whisper's
    head has none).
    """

    def __init__(self, in_features: int, out_features: int, kept: int, rank: int) -> None:
        super().__init__()
        if not 0 < kept < out_features:
            raise ValueError(f"kept={kept} rows must lie in 1..{out_features - 1}")
        self.in_features, self.out_features = in_features, out_features
        self.kept = nn.Linear(in_features, kept, bias=False)  # weight [K, in]
        self.rest = LowRankLinear(in_features, out_features - kept, rank, bias=False)
        self.register_buffer("order", torch.arange(out_features))  # [V] token -> row

    @property
    def rank(self) -> int:
        return self.rest.rank

    @property
    def num_kept(self) -> int:
        return self.kept.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.cat([self.kept(x), self.rest(x)], dim=-1)  # [..., K + (V - K)]
        return rows.index_select(-1, self.order)  # [..., V] in token order

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return split_lookup(
            ids, self.order, self.num_kept, lambda at: F.embedding(at, self.kept.weight), self.rest.rows
        )

    def dense_weight(self) -> torch.Tensor:
        """The [V, in] matrix this head applies."""
        return torch.cat([self.kept.weight, self.rest.up.weight @ self.rest.down.weight])[self.order]


HEADS = (LowRankLinear, SplitHead)  # what a compressed vocabulary head may be


class FactoredEmbedding(nn.Module):
    """Token lookup through a compressed vocabulary head (``LowRankLinear`` or ``SplitHead``).

    Whisper ties its token embedding to its output projection, so one factor pair serves both
    the lookup and the logits; this module holds no parameters of its own (the head is kept
    outside the module tree), so the factors are trained, saved and exported once.
    """

    def __init__(self, head: LowRankLinear | SplitHead) -> None:
        super().__init__()
        self._head = (head,)  # a tuple: not a registered submodule
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features

    @property
    def head(self) -> LowRankLinear | SplitHead:
        return self._head[0]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head.rows(input_ids)  # [B, T] -> [B, T, D]
