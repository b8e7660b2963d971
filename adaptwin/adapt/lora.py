"""LoRA adapters on the compressed factors, merged back so the adapted model has no extra ops."""

from __future__ import annotations

import torch
from torch import nn

from ..models.structure import set_module


class LoRALinear(nn.Module):
    """``y = base(x) + scale * up(down(x))`` with ``base`` frozen; ``up`` starts at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.base = base
        self.rank = min(rank, base.in_features, base.out_features)
        self.scale = alpha / self.rank
        self.down = nn.Parameter(torch.empty(self.rank, base.in_features, dtype=base.weight.dtype))  # [r, in]
        self.up = nn.Parameter(torch.zeros(base.out_features, self.rank, dtype=base.weight.dtype))  # [out, r]
        bound = base.in_features**-0.5
        with torch.no_grad():
            self.down.uniform_(-bound, bound, generator=generator)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * ((x @ self.down.T) @ self.up.T)  # [..., in] -> [..., out]

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        self.base.weight += self.scale * (self.up @ self.down)  # [out, in]
        return self.base


def inject_lora(model: nn.Module, names: list[str], rank: int, alpha: float, seed: int) -> list[str]:
    """Wrap the ``nn.Linear`` modules ``names`` in LoRA adapters; returns the names wrapped."""
    g = torch.Generator().manual_seed(seed)
    for name in names:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear):
            raise TypeError(f"LoRA goes on linear layers; {name} is a {type(module).__name__}")
        set_module(model, name, LoRALinear(module, rank, alpha, g))
    return names


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base layer in place; returns how many were merged."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        set_module(model, name, model.get_submodule(name).merged())
    return len(names)
