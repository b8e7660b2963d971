"""Build compressed modules from dense ones and their factorizations (module surgery only)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models.modules import LowRankLinear, SplitHead, TwinAttention
from ..models.structure import twin_attention_shell
from . import factorize as fz


def attention_twins(
    attn: nn.Module, moments: dict[str, torch.Tensor], name: str, twins: tuple[str, ...], damping: float
) -> dict[str, fz.Factorization]:
    """Per-head factorizations of the selected twins of one dense Whisper attention."""
    heads = attn.num_heads
    wx = _white(moments, f"{name}/x", damping)
    wy = _white(moments, f"{name}/y", damping)
    out = {}
    if "qk" in twins:
        a, b = fz.heads_qk(attn.q_proj.weight, attn.q_proj.bias, attn.k_proj.weight, attn.k_proj.bias, heads)
        out["qk"] = fz.twin_factorize(a, b, wx, wy)
    if "vo" in twins:
        a, b = fz.heads_vo(attn.v_proj.weight, attn.out_proj.weight, heads)
        wv = None
        if wy is not None:  # the value side sees the same input as the key side, never bias-augmented
            d = attn.v_proj.weight.shape[1]
            wv = wy if wy.shape[0] == d else _white({"v": moments[f"{name}/y"][:d, :d]}, "v", damping)
        out["vo"] = fz.twin_factorize(a, b, wv, None)
    return out


def linear_split(linear: nn.Linear, moments: dict[str, torch.Tensor], name: str, damping: float) -> fz.Factorization:
    return fz.linear_factorize(linear.weight, _white(moments, f"{name}/x", damping))


def _white(moments: dict[str, torch.Tensor], key: str, damping: float) -> torch.Tensor | None:
    return fz.whitener(moments[key], damping) if key in moments else None


@torch.no_grad()
def build_twin_attention(
    attn: nn.Module, facts: dict[str, fz.Factorization], r_qk: int | None, r_vo: int | None
) -> TwinAttention:
    """A ``TwinAttention`` equivalent to ``attn`` with the given twins truncated (None: kept exact)."""
    heads, dh = attn.num_heads, attn.head_dim
    d_model = attn.q_proj.weight.shape[1]
    new = twin_attention_shell(attn, r_qk or dh, r_vo or dh)

    if r_qk is None:
        _copy(new.q_proj, attn.q_proj)
        _copy(new.k_proj, attn.k_proj)
    else:
        a, b = facts["qk"].factors(r_qk)  # [H, D(+1), r], [H, D(+1), r]
        _load_side(new.q_proj, a, d_model)
        _load_side(new.k_proj, b, d_model)

    if r_vo is None:
        new.v_proj.weight.copy_(attn.v_proj.weight)
        new.out_proj.weight.copy_(attn.out_proj.weight)
    else:
        a, b = facts["vo"].factors(r_vo)  # [H, D, r], [H, D_out, r]
        new.v_proj.weight.copy_(a.permute(0, 2, 1).reshape(heads * r_vo, d_model))
        new.out_proj.weight.copy_(b.permute(1, 0, 2).reshape(b.shape[1], heads * r_vo))
    bias = fz.fold_value_bias(attn.v_proj.bias, attn.out_proj.weight, attn.out_proj.bias)
    new.out_proj.bias.copy_(bias)
    return new


@torch.no_grad()
def build_low_rank(linear: nn.Linear, fact: fz.Factorization, rank: int) -> LowRankLinear:
    new = LowRankLinear(linear.in_features, linear.out_features, rank, bias=linear.bias is not None)
    new = new.to(device=linear.weight.device, dtype=linear.weight.dtype)
    a, b = fact.factors(rank)  # [1, in, r], [1, out, r]
    new.down.weight.copy_(a[0].T)
    new.up.weight.copy_(b[0])
    if linear.bias is not None:
        new.up.bias.copy_(linear.bias)
    return new


@dataclass
class HeadSplit(fz.Factorization):
    """The factorization of the vocabulary head's rows outside ``kept``, which stay dense."""

    kept: torch.Tensor | None = None  # [K] sorted token ids


def head_split(
    head: nn.Linear, kept: torch.Tensor, moments: dict[str, torch.Tensor], name: str, damping: float
) -> HeadSplit:
    """The head's rows outside ``kept`` [K] (sorted token ids), factorized."""
    fact = fz.linear_factorize(head.weight[_rest(kept, head.out_features)], _white(moments, f"{name}/x", damping))
    return HeadSplit(fact.left, fact.s, fact.right, kept)


def _rest(kept: torch.Tensor, vocab: int) -> torch.Tensor:
    mask = torch.ones(vocab, dtype=torch.bool)
    mask[kept] = False
    return mask.nonzero().squeeze(1)  # [V - K] the other token ids, ascending


def build_thin(linear: nn.Linear, fact: fz.Factorization, rank: int) -> LowRankLinear | SplitHead:
    """The thin replacement of an FFN matrix or the vocabulary head at ``rank``."""
    if isinstance(fact, HeadSplit):
        return build_split_head(linear, fact, rank)
    return build_low_rank(linear, fact, rank)


def thin_params(linear: nn.Linear, fact: fz.Factorization, r: int) -> int:
    if isinstance(fact, HeadSplit):
        return len(fact.kept) * linear.in_features + r * (linear.in_features + linear.out_features - len(fact.kept))
    return low_rank_params(linear, r)


@torch.no_grad()
def build_split_head(head: nn.Linear, fact: HeadSplit, rank: int) -> SplitHead:
    """A ``SplitHead`` whose kept rows are ``head``'s own and the other rows ``fact`` at ``rank``."""
    vocab, kept = head.out_features, fact.kept
    new = SplitHead(head.in_features, vocab, len(kept), rank).to(device=head.weight.device, dtype=head.weight.dtype)
    new.kept.weight.copy_(head.weight[kept])
    a, b = fact.factors(rank)  # [1, in, r], [1, V - K, r]
    new.rest.down.weight.copy_(a[0].T)
    new.rest.up.weight.copy_(b[0])
    order = torch.empty(vocab, dtype=torch.long)
    order[torch.cat([kept, _rest(kept, vocab)])] = torch.arange(vocab)
    new.order.copy_(order)
    return new


def _copy(dst: nn.Linear, src: nn.Linear) -> None:
    dst.weight.copy_(src.weight)
    if dst.bias is not None:
        dst.bias.copy_(src.bias if src.bias is not None else torch.zeros_like(dst.bias))


def _load_side(proj: nn.Linear, side: torch.Tensor, d_model: int) -> None:
    """side [H, D(+1), r] -> proj.weight [H*r, D] (and bias from the augmented last row)."""
    heads, _, r = side.shape
    proj.weight.copy_(side[:, :d_model, :].permute(0, 2, 1).reshape(heads * r, d_model))
    if proj.bias is not None:
        proj.bias.copy_(side[:, d_model, :].reshape(heads * r))


def twin_params(attn: nn.Module, twin: str, r: int) -> int:
    """Parameters of one twin of ``attn`` at per-head rank r, as ``TwinAttention`` stores them."""
    heads, d_model = attn.num_heads, attn.q_proj.weight.shape[1]
    if twin == "qk":
        n_bias = int(attn.q_proj.bias is not None) + int(attn.k_proj.bias is not None)
        return heads * r * (2 * d_model + n_bias)
    d_out = attn.out_proj.weight.shape[0]
    return heads * r * (d_model + d_out) + d_out


def dense_twin_params(attn: nn.Module, twin: str) -> int:
    mods = (attn.q_proj, attn.k_proj) if twin == "qk" else (attn.v_proj, attn.out_proj)
    return sum(p.numel() for m in mods for p in m.parameters())


def low_rank_params(linear: nn.Linear, r: int) -> int:
    return r * (linear.in_features + linear.out_features) + (linear.out_features if linear.bias is not None else 0)
