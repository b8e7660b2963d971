"""A re-implementation of LiteASR (Kamahori et al., 2025) from the paper's description, for comparison.

Encoder only, no fine-tuning. For every linear layer, PCA of its *output* activations on
calibration data; keep the smallest multiple of 16 components whose energy reaches a
threshold; the layer stays dense when that rank exceeds half (attention) or 0.8 (FFN) of
its width. The layer becomes ``y = (x W^T V_k) V_k^T + b`` (we keep the bias exact, a mild
favour to the method). One threshold is searched to reach a target encoder size.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptwin.compress.calibrate import Calibration, run
from adaptwin.compress.targets import count_parameters
from adaptwin.models.modules import LowRankLinear
from adaptwin.models.structure import set_module

_ATTN = ("q_proj", "k_proj", "v_proj", "out_proj")


def encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in model.named_modules() if ".encoder.layers." in n and isinstance(m, nn.Linear)}


@torch.no_grad()
def output_pca(model: nn.Module, calibration: Calibration) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(eigenvalues descending, eigenvectors) of each encoder linear layer's output second moment."""
    moments: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(mod, args, out):
            y = (out - (mod.bias if mod.bias is not None else 0)).reshape(-1, out.shape[-1]).double()
            moments[name] = moments.get(name, 0) + y.T @ y

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in encoder_linears(model).items()]
    try:
        run(model, calibration, decoder=False)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, s in moments.items():
        evals, evecs = torch.linalg.eigh(s)
        out[name] = (evals.flip(0).clamp_min(0), evecs.flip(1))
    return out


def ranks_for(pca, linears, threshold: float) -> dict[str, int | None]:
    ranks = {}
    for name, (evals, _) in pca.items():
        lin = linears[name]
        width = lin.out_features
        energy = torch.cumsum(evals, 0) / evals.sum().clamp_min(1e-30)
        k = int((energy < threshold).sum()) + 1
        k = min(width, 16 * -(-k // 16))
        cap = 0.5 if name.rsplit(".", 1)[-1] in _ATTN else 0.8
        ranks[name] = None if k > cap * min(width, lin.in_features) else k
    return ranks


def params_after(linears, ranks) -> int:
    saved = 0
    for name, k in ranks.items():
        if k is not None:
            lin = linears[name]
            saved += lin.in_features * lin.out_features - k * (lin.in_features + lin.out_features)
    return saved


@torch.no_grad()
def compress_liteasr_(model: nn.Module, calibration: Calibration, budget: float) -> dict:
    """Compress the encoder in place to remove about ``budget`` of its parameters."""
    linears = encoder_linears(model)
    pca = output_pca(model, calibration)
    before = count_parameters([model.model.encoder])
    target = budget * before
    lo, hi = 0.0, 1.0  # threshold search: lower threshold -> smaller ranks -> more saved
    best = None
    for _ in range(30):
        mid = (lo + hi) / 2
        saved = params_after(linears, ranks_for(pca, linears, mid))
        if saved >= target:
            best, lo = mid, mid
        else:
            hi = mid
    if best is None:
        return {"feasible": False}
    ranks = ranks_for(pca, linears, best)
    for name, k in ranks.items():
        if k is None:
            continue
        lin = linears[name]
        v = pca[name][1][:, :k].float()  # [out, k]
        new = LowRankLinear(lin.in_features, lin.out_features, k, bias=lin.bias is not None)
        new.down.weight.copy_(v.T @ lin.weight)  # [k, in]
        new.up.weight.copy_(v)  # [out, k]
        if lin.bias is not None:
            new.up.bias.copy_(lin.bias)
        set_module(model, name, new)
    return {"feasible": True, "threshold": best, "ranks": ranks}
