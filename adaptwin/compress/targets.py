"""Find the attention and FFN layers of a Whisper model, and swap modules in place (peft-style)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from ..errors import InvalidInput

_PATTERNS = {
    "encoder_self": re.compile(r"(^|\.)encoder\.layers\.(\d+)\.self_attn$"),
    "decoder_self": re.compile(r"(^|\.)decoder\.layers\.(\d+)\.self_attn$"),
    "cross": re.compile(r"(^|\.)decoder\.layers\.(\d+)\.encoder_attn$"),
}
_FFN = re.compile(r"(^|\.)(encoder|decoder)\.layers\.(\d+)\.(fc1|fc2)$")


@dataclass(frozen=True)
class Site:
    name: str  # module path inside the model, e.g. "model.encoder.layers.0.self_attn"
    kind: str  # encoder_self | decoder_self | cross | ffn | head
    side: str  # encoder | decoder
    layer: int


def check_whisper(model: nn.Module) -> None:
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "whisper":
        raise InvalidInput(
            f"{type(model).__name__} is not a Whisper model (config.model_type="
            f"{getattr(config, 'model_type', None)!r}); adaptwin compresses WhisperForConditionalGeneration "
            "and WhisperModel: load one with adaptwin.load_whisper(...)"
        )


def find_attention(model: nn.Module, kinds: tuple[str, ...]) -> list[Site]:
    sites = []
    for name, _ in model.named_modules():
        for kind in kinds:
            m = _PATTERNS[kind].search(name)
            if m:
                side = "encoder" if kind == "encoder_self" else "decoder"
                sites.append(Site(name, kind, side, int(m.group(2))))
    if not sites:
        candidates = [n for n, mod in model.named_modules() if n.endswith(("self_attn", "encoder_attn"))][:8]
        raise InvalidInput(f"no attention module matched kinds {kinds}; attention-like modules found: {candidates}")
    return sites


def find_ffn(model: nn.Module, sides: tuple[str, ...]) -> list[Site]:
    sites = []
    for name, _ in model.named_modules():
        m = _FFN.search(name)
        if m and m.group(2) in sides:
            sites.append(Site(name, "ffn", m.group(2), int(m.group(3))))
    if not sites:
        raise InvalidInput(f"no FFN layer (fc1/fc2) found in {sides}")
    return sites


def find_head(model: nn.Module) -> list[Site]:
    """The output projection (tied to the token embedding), the decoder's vocabulary head."""
    if not isinstance(getattr(model, "proj_out", None), nn.Linear):
        raise InvalidInput(
            "no output projection (proj_out) found: the head can be factorized on WhisperForConditionalGeneration"
        )
    return [Site("proj_out", "head", "decoder", -1)]


def scope_modules(model: nn.Module, scope: str) -> list[nn.Module]:
    """The sub-trees whose parameters a budget for ``scope`` counts (the head is the decoder's)."""
    base = model.model if hasattr(model, "model") else model
    if scope == "encoder":
        return [base.encoder]
    if scope == "decoder":
        return [base.decoder] + ([model.proj_out] if hasattr(model, "proj_out") else [])
    return [model]


def count_parameters(modules: list[nn.Module]) -> int:
    seen: set[int] = set()
    total = 0
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:  # tied embeddings count once
                seen.add(id(p))
                total += p.numel()
    return total
