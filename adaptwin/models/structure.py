"""The structure of a compressed checkpoint: its format version and how to rebuild the
compressed modules from the ranks it records, so that any layer can load one without the
compression code."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import InvalidInput
from .modules import HEADS, FactoredEmbedding, LowRankLinear, SplitHead, TwinAttention

# 2: the vocabulary head may be factorized (``head``), which format-1 readers cannot load
# 3: the head may keep frequent tokens' rows dense (``head_kept``), which format-2 readers cannot load
FORMAT_VERSION = 3


def check_format(version: int) -> None:
    if version > FORMAT_VERSION:
        raise InvalidInput(
            f"this checkpoint uses adaptwin format {version}, newer than this install understands "
            f"({FORMAT_VERSION}): upgrade adaptwin"
        )


def set_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at the dotted path ``name`` of ``model``; returns the module it replaced."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old


def twin_attention_shell(attn: nn.Module, r_qk: int, r_vo: int) -> TwinAttention:
    """An uninitialised ``TwinAttention`` with ``attn``'s hyper-parameters and the given widths."""
    ref = attn.q_proj.weight
    return TwinAttention(
        attn.embed_dim,
        attn.num_heads,
        r_qk,
        r_vo,
        attn.head_dim,
        q_bias=attn.q_proj.bias is not None,
        k_bias=attn.k_proj.bias is not None,
        is_decoder=getattr(attn, "is_decoder", False),
        is_causal=getattr(attn, "is_causal", False),
        layer_idx=getattr(attn, "layer_idx", None),
        config=getattr(attn, "config", None),
        dropout=getattr(attn, "dropout", 0.0),
    ).to(device=ref.device, dtype=ref.dtype)


def set_head(model: nn.Module, head: LowRankLinear | SplitHead) -> None:
    """Make ``head`` the model's output projection and its token lookup (one factor pair for both)."""
    model.proj_out = head
    model.model.decoder.embed_tokens = FactoredEmbedding(head)


def head_is_factored(model: nn.Module) -> bool:
    return isinstance(getattr(model, "proj_out", None), HEADS)


def rebuild_structure(model: nn.Module, meta: dict[str, Any]) -> None:
    """Replace dense modules by empty compressed ones with the ranks recorded in ``meta``
    (``config.adaptwin``), so that a saved state dict loads into them exactly."""
    check_format(meta.get("format_version", 0))
    for name, r in meta.get("attention", {}).items():
        attn = model.get_submodule(name)
        if r.get("qk") is None and r.get("vo") is None:
            continue
        dh = attn.head_dim
        set_module(model, name, twin_attention_shell(attn, r.get("qk") or dh, r.get("vo") or dh))
    for name, r in meta.get("ffn", {}).items():
        if r is not None:
            lin = model.get_submodule(name)
            set_module(model, name, LowRankLinear(lin.in_features, lin.out_features, r, bias=lin.bias is not None))
    if meta.get("head"):
        out, kept = model.proj_out, meta.get("head_kept")
        if kept:
            set_head(model, SplitHead(out.in_features, out.out_features, kept, meta["head"]))
        else:
            set_head(model, LowRankLinear(out.in_features, out.out_features, meta["head"], bias=False))
