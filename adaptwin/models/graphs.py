"""Whisper as plain-tensor graphs, shared by the ONNX export and the PyTorch engine: no cache
objects, no dense weight rebuilt.

Every attention (dense ``WhisperAttention`` or ``TwinAttention``) is read as "H heads,
query/key ``r_qk`` wide, value/output ``r_vo`` wide": its own q/k/v weights are
concatenated into one fused projection (softmax scale folded into the query rows), the
output projection keeps width ``H·r_vo``. Cross-attention keys/values (one matmul per
decoder layer) come from the encoder graph and are inputs of the decoder graphs.

Graphs (names follow optimum's layout; tensors are float32 unless noted):
- ``EncoderGraph``: input_features [B, n_mels, F] -> last_hidden_state [B, S = F/2, D],
  cross.{i}.key [B, H, S, r_qk], cross.{i}.value [B, H, S, r_vo]; F is 3000 (30 s) or, for a
  model with a dynamic audio context, shorter (positional embeddings sliced)
- ``DecoderGraph``: input_ids int64 [B, T], cross.*, past.{i}.key/value [B, H, P, r]
  (P may be 0) -> logits [B, T, V], present.{i}.key/value [B, H, P+T, r]
"""

from __future__ import annotations

import torch
from torch import nn

from .modules import LowRankLinear, SplitHead, split_lookup

NEG_INF = -1e9  # additive mask value (finite: fp16-safe after the softmax max-subtraction)


def widths(attn: nn.Module) -> tuple[int, int, int]:
    """(heads, r_qk, r_vo) of a dense or twin attention module."""
    heads = attn.num_heads
    return heads, attn.q_proj.out_features // heads, attn.v_proj.out_features // heads


def _bias(linear: nn.Linear) -> torch.Tensor:
    return linear.bias if linear.bias is not None else torch.zeros(linear.out_features, dtype=linear.weight.dtype)


def _fused(parts: list[tuple[nn.Linear, float]]) -> nn.Linear:
    """One Linear computing ``[scale_1·l_1(x), scale_2·l_2(x), ...]``."""
    weight = torch.cat([lin.weight.detach() * s for lin, s in parts])  # [sum(out), D]
    bias = torch.cat([_bias(lin).detach() * s for lin, s in parts])
    fused = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


def _split_heads(x: torch.Tensor, heads: int, width: int) -> torch.Tensor:
    # heads and width are Python ints, so a traced graph reads only the batch size at run time:
    # sizes read from x.shape cost a dozen shape nodes per reshape in every decoder step
    return x.reshape(x.shape[0], -1, heads, width).transpose(1, 2)  # [B, L, H*r] -> [B, H, L, r]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, width: int) -> torch.Tensor:
    """q [B, H, T, r_qk] (pre-scaled), k [B, H, S, r_qk], v [B, H, S, r_vo] -> [B, T, width = H*r_vo]."""
    scores = q @ k.transpose(-1, -2)  # [B, H, T, S]
    if mask is not None:
        scores = scores + mask
    out = torch.softmax(scores, dim=-1) @ v  # [B, H, T, r_vo]
    return out.transpose(1, 2).reshape(out.shape[0], -1, width)


QUERY_BLOCK = 300  # encoder queries per attention block: the [H, 1500, 1500] scores never exist at once


class SelfAttention(nn.Module):
    """Self-attention with one fused q/k/v matmul and width-r_vo output projection.
    With ``blocks`` > 1 (the encoder), queries are processed in that many equal blocks, which
    cuts the peak memory of the scores by the number of blocks at equal cost. The blocks are
    cut from the input's length, so a traced graph keeps working at every audio length."""

    def __init__(self, attn: nn.Module, blocks: int = 1) -> None:
        super().__init__()
        self.heads, self.r_qk, self.r_vo = widths(attn)
        self.qkv = _fused([(attn.q_proj, attn.scaling), (attn.k_proj, 1.0), (attn.v_proj, 1.0)])
        self.out = attn.out_proj
        self.blocks = blocks

    def forward(self, x, past_k=None, past_v=None, mask=None):
        qk = self.heads * self.r_qk
        q, k, v = self.qkv(x).split([qk, qk, self.heads * self.r_vo], dim=-1)  # [B, T, H*r]
        q, k = (_split_heads(t, self.heads, self.r_qk) for t in (q, k))
        v = _split_heads(v, self.heads, self.r_vo)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)  # [B, H, P+T, r_qk]
            v = torch.cat([past_v, v], dim=2)
        if self.blocks > 1 and mask is None:
            size = (q.shape[2] + self.blocks - 1) // self.blocks  # traced: follows the input's length
            parts = [q[:, :, i * size : (i + 1) * size] for i in range(self.blocks)]  # [B, H, <=size, r_qk]
            out = torch.cat([_attend(part, k, v, None, self.heads * self.r_vo) for part in parts], dim=1)
        else:
            out = _attend(q, k, v, mask, self.heads * self.r_vo)  # [B, T, H*r_vo]
        return self.out(out), k, v


class EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        enc, dec = model.model.encoder, model.model.decoder
        self.conv1, self.conv2 = enc.conv1, enc.conv2
        self.register_buffer("positions", enc.embed_positions.weight.detach().clone(), persistent=False)
        blocks = -(-model.config.max_source_positions // QUERY_BLOCK)
        self.layers = nn.ModuleList(_EncoderLayer(layer, blocks) for layer in enc.layers)
        self.norm = enc.layer_norm
        cross = [layer.encoder_attn for layer in dec.layers]
        self.cross_widths = [widths(a) for a in cross]
        # Each decoder layer's cross keys and values in one matmul: [D] -> H*(r_qk + r_vo); one
        # matmul for all layers would hold every layer's product, its split and int8 copies at
        # once (more peak memory for the same speed).
        self.cross_kv = nn.ModuleList(_fused([(a.k_proj, 1.0), (a.v_proj, 1.0)]) for a in cross)

    def forward(self, input_features):
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)  # [B, S, D]
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        cross = []
        for proj, (heads, r_qk, r_vo) in zip(self.cross_kv, self.cross_widths):
            k, v = proj(x).split([heads * r_qk, heads * r_vo], dim=-1)  # [B, S, H*r]
            cross += [_split_heads(k, heads, r_qk), _split_heads(v, heads, r_vo)]
        return (x, *cross)


class _EncoderLayer(nn.Module):
    def __init__(self, layer: nn.Module, blocks: int) -> None:
        super().__init__()
        self.norm1, self.attn = layer.self_attn_layer_norm, SelfAttention(layer.self_attn, blocks)
        self.norm2, self.fc1, self.act, self.fc2 = layer.final_layer_norm, layer.fc1, layer.activation_fn, layer.fc2

    def forward(self, x):
        x = x + self.attn(self.norm1(x))[0]
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class DecoderGraph(nn.Module):
    """One decoder step over T new tokens given P cached positions (P = 0 on the first step)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        dec = model.model.decoder
        # One table serves both the token lookup (columns) and the logits (matmul), so the exported
        # graph holds a single copy of Whisper's tied embedding: [D, V], or for a factorized head
        # [r, V] with the [r, D] factor that maps between r and D.
        # A split head keeps K rows as a [D, K] table (``kept``) and the others as the factored
        # [r, V - K] table; ``order`` [V] maps a token to its column in the two tables joined.
        head, kept, order = model.proj_out, None, None
        if isinstance(head, SplitHead):
            kept = head.kept.weight.detach().t().contiguous()  # [D, K]
            order = head.order.detach().clone()  # [V]
            head = head.rest
        self.register_buffer("kept", kept)
        self.register_buffer("order", order)
        if isinstance(head, LowRankLinear):
            self.register_buffer("table", head.up.weight.detach().t().contiguous())  # [r, V] ([r, V - K])
            self.register_buffer("inner", head.down.weight.detach().contiguous())  # [r, D]
            tied = True
        else:
            self.register_buffer("table", head.weight.detach().t().contiguous())  # [D, V]
            self.inner = None
            tied = head.weight is dec.embed_tokens.weight or torch.equal(head.weight, dec.embed_tokens.weight)
        self.embed = self._lookup if tied else dec.embed_tokens
        self.embed_scale = float(getattr(dec, "embed_scale", 1.0))
        self.register_buffer("positions", dec.embed_positions.weight.detach().clone(), persistent=False)
        self.layers = nn.ModuleList(_DecoderLayer(layer) for layer in dec.layers)
        self.norm = dec.layer_norm

    def _lookup(self, ids):
        if self.order is not None:
            return split_lookup(ids, self.order, self.kept.shape[1], self._kept_rows, self._table_rows)
        return self._table_rows(ids)

    def _kept_rows(self, ids):
        return self.kept[:, ids].permute(1, 2, 0)  # [D, B, T] -> [B, T, D]

    def _table_rows(self, ids):
        x = self.table[:, ids].permute(1, 2, 0)  # [D or r, B, T] -> [B, T, D or r]
        return x if self.inner is None else x @ self.inner  # [B, T, r] @ [r, D] -> [B, T, D]

    def logits(self, x):
        """Final hidden states [B, T, D] -> logits [B, T, V]."""
        low = x if self.inner is None else x @ self.inner.t()  # [B, T, D] -> [B, T, r]
        logits = low @ self.table  # -> [B, T, V] ([B, T, V - K])
        if self.order is not None:
            rows = torch.cat([x @ self.kept, logits], dim=-1)  # [B, T, V] in row order
            # gather (GatherElements in ONNX): ONNX Runtime's Gather copies one element at a time
            logits = rows.gather(-1, self.order.expand(rows.shape))  # [B, T, V] in token order
        return logits

    def forward(self, input_ids, cross, past=None, at=None):
        """cross: [(k, v)] per layer; past: [(k, v)] per layer or None -> logits, [(k, v)] presents.
        ``at`` [K] (int64): the positions of ``input_ids`` whose logits to return (None: all);
        decoding a prompt needs one or two of its positions, and the vocabulary projection of
        the others is half the work of a prompt's pass."""
        length = input_ids.shape[1]
        offset = 0 if past is None else past[0][0].shape[2]
        steps = torch.arange(length, device=input_ids.device) + offset  # [T] absolute positions
        x = self.embed(input_ids) * self.embed_scale + self.positions[steps]  # [B, T, D]
        keys = torch.arange(offset + length, device=input_ids.device)  # [P+T] positions attended to
        mask = torch.where(keys[None, :] > steps[:, None], NEG_INF, 0.0).to(x.dtype)  # [T, P+T] causal
        presents = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cross[i], None if past is None else past[i], mask)
            presents.append((k, v))
        x = self.norm(x)
        if at is not None:
            x = x.index_select(1, at)  # [B, K, D]
        return self.logits(x), presents  # logits [B, T or K, V]


class _DecoderLayer(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.norm1, self.attn = layer.self_attn_layer_norm, SelfAttention(layer.self_attn)
        cross = layer.encoder_attn
        self.norm2 = layer.encoder_attn_layer_norm
        self.cross_heads, self.cross_r_qk, self.cross_r_vo = widths(cross)
        self.cross_q = _fused([(cross.q_proj, cross.scaling)])
        self.cross_out = cross.out_proj
        self.norm3, self.fc1, self.act, self.fc2 = layer.final_layer_norm, layer.fc1, layer.activation_fn, layer.fc2

    def forward(self, x, cross, past, mask):
        h, k, v = self.attn(self.norm1(x), *(past if past is not None else (None, None)), mask=mask)
        x = x + h
        q = _split_heads(self.cross_q(self.norm2(x)), self.cross_heads, self.cross_r_qk)  # [B, H, T, r_qk]
        x = x + self.cross_out(_attend(q, cross[0], cross[1], None, self.cross_heads * self.cross_r_vo))
        return x + self.fc2(self.act(self.fc1(self.norm3(x)))), k, v
