"""Factorization maths as pure tensor functions (no nn.Module, no model surgery).

Convention: row vectors, ``y = x @ P``. A product twin is ``A @ B.T`` with ``A: [n, d]``
and ``B: [m, d]``, batched over heads as ``[H, n, d]``. Its best rank-r approximation,
optionally measured after whitening the inputs (``E||x (A B^T - A' B'^T) y^T||``), is
found from a thin QR of each side and an SVD of the small ``d x d`` core, so the cost is
linear in the number of heads and never needs the ``n x m`` product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass
class Factorization:
    """``product ~= left[..., :r] @ diag(s[:r]) @ right[..., :r].T`` for any r (exact at full r)."""

    left: Tensor  # [H, n, k] (de-whitened, float64)
    s: Tensor  # [H, k] singular values of the whitened product, descending
    right: Tensor  # [H, m, k]

    @property
    def full_rank(self) -> int:
        return self.s.shape[-1]

    def factors(self, r: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """Balanced rank-r factors ``(A' [H, n, r], B' [H, m, r])`` with ``A' B'^T`` the truncation."""
        if not 1 <= r <= self.full_rank:
            raise ValueError(f"rank {r} is outside 1..{self.full_rank} (the head width)")
        root = self.s[..., :r].sqrt().unsqueeze(-2)  # [H, 1, r]
        return (self.left[..., :r] * root).to(dtype), (self.right[..., :r] * root).to(dtype)

    def rel_error(self, r: int) -> float:
        """Relative (whitened) Frobenius error of the rank-r truncation, over all heads together."""
        energy = self.s.pow(2)
        total = energy.sum().clamp_min(1e-300)
        return float(energy[..., r:].sum().div(total).sqrt())


def whitener(second_moment: Tensor, damping: float = 1e-4) -> Tensor:
    """Lower-triangular ``L`` with ``L L^T = S + lambda I`` (float64), safe when S is ill-conditioned.

    ``lambda = damping * mean(diag S)``, raised tenfold until Cholesky succeeds; an
    eigenvalue clamp is the last resort.
    """
    s = second_moment.to(torch.float64)
    s = (s + s.T) / 2
    n = s.shape[0]
    scale = float(s.diagonal().mean().clamp_min(1e-12))
    eye = torch.eye(n, dtype=torch.float64)
    lam = max(damping, 1e-10) * scale
    for _ in range(8):
        chol, info = torch.linalg.cholesky_ex(s + lam * eye)
        if int(info) == 0:
            return chol
        lam *= 10
    evals, evecs = torch.linalg.eigh(s)
    evals = evals.clamp_min(max(damping, 1e-6) * scale)
    return torch.linalg.cholesky((evecs * evals) @ evecs.T)


def _side(mat: Tensor, white: Tensor | None) -> tuple[Tensor, Tensor]:
    """Thin QR of the whitened side ``W^T mat`` -> (Q [H, n, d], R [H, d, d])."""
    g = mat if white is None else white.T @ mat
    return torch.linalg.qr(g)


def _unwhiten(q: Tensor, white: Tensor | None) -> Tensor:
    """``W^-T q``: maps whitened coordinates back to the original input space."""
    if white is None:
        return q
    upper = white.T.expand(q.shape[0], -1, -1)
    return torch.linalg.solve_triangular(upper, q, upper=True)


@torch.no_grad()
def twin_factorize(a: Tensor, b: Tensor, white_a: Tensor | None = None, white_b: Tensor | None = None) -> Factorization:
    """Joint factorization of the twin product ``a @ b^T`` per head.

    a: [H, n, d], b: [H, m, d] (e.g. ``[W_q^h^T; b_q^h]`` and ``W_k^h^T``); white_*: [n, n] /
    [m, m] lower-triangular whiteners of the inputs that multiply each side (None: weight space).
    """
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    qa, ra = _side(a, white_a)  # [H, n, d], [H, d, d]
    qb, rb = _side(b, white_b)  # [H, m, d], [H, d, d]
    u, s, vh = torch.linalg.svd(ra @ rb.transpose(-1, -2))  # core [H, d, d]
    left = _unwhiten(qa @ u, white_a)  # [H, n, d]
    right = _unwhiten(qb @ vh.transpose(-1, -2), white_b)  # [H, m, d]
    return Factorization(left, s, right)


@torch.no_grad()
def linear_factorize(weight: Tensor, white: Tensor | None = None) -> Factorization:
    """Low-rank split of one linear layer ``y = x W^T + b``: ``W^T ~= left diag(s) right^T``.

    weight: [out, in]; white: [in, in] whitener of the layer's input (None: weight space).
    Returns a single-"head" factorization: left [1, in, k], right [1, out, k].
    """
    wt = weight.to(torch.float64).T  # [in, out]
    g = wt if white is None else white.T @ wt
    u, s, vh = torch.linalg.svd(g, full_matrices=False)  # [in, k], [k], [k, out]
    left = _unwhiten(u.unsqueeze(0), white)
    return Factorization(left, s.unsqueeze(0), vh.T.unsqueeze(0))


@torch.no_grad()
def independent_factors(a: Tensor, b: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """Baseline: truncate each matrix of a twin on its own (per head), then merge the r x r core.

    a: [H, n, d], b: [H, m, d] -> (A' [H, n, r], B' [H, m, r]) with ``A' B'^T = a_r b_r^T``, the
    same parameter count as the joint factorization at rank r, to show what joint SVD buys.
    """
    ua, sa, vha = torch.linalg.svd(a.to(torch.float64), full_matrices=False)
    ub, sb, vhb = torch.linalg.svd(b.to(torch.float64), full_matrices=False)
    core = (sa[..., :r, None] * vha[..., :r, :]) @ (vhb[..., :r, :].transpose(-1, -2) * sb[..., None, :r])
    return (ua[..., :r] @ core).float(), ub[..., :r].float()


def heads_qk(wq: Tensor, bq: Tensor | None, wk: Tensor, bk: Tensor | None, num_heads: int) -> tuple[Tensor, Tensor]:
    """Per-head sides of ``score = [x 1] A_h B_h^T [y 1]^T`` from HF ``[out, in]`` weights.

    Returns a: [H, D(+1), dh] (query bias appended as a last row) and b: [H, D(+1), dh].
    """
    return _augment(wq, bq, num_heads), _augment(wk, bk, num_heads)


def heads_vo(wv: Tensor, wo: Tensor, num_heads: int) -> tuple[Tensor, Tensor]:
    """Per-head sides of ``W_V^h W_O^h``: a = W_v^h^T [H, D, dh], b = W_o[:, h] [H, D_out, dh]."""
    d_model = wv.shape[1]
    a = wv.T.reshape(d_model, num_heads, -1).permute(1, 0, 2)  # [H, D, dh]
    b = wo.reshape(wo.shape[0], num_heads, -1).permute(1, 0, 2)  # [H, D_out, dh]
    return a, b


def fold_value_bias(bv: Tensor | None, wo: Tensor, bo: Tensor | None) -> Tensor:
    """Exact output bias once the value bias is removed: ``b_o + W_o b_v`` (attention rows sum to 1)."""
    out = torch.zeros(wo.shape[0], dtype=torch.float64) if bo is None else bo.to(torch.float64)
    if bv is not None:
        out = out + wo.to(torch.float64) @ bv.to(torch.float64)
    return out


def _augment(w: Tensor, bias: Tensor | None, num_heads: int) -> Tensor:
    d_in = w.shape[1]
    p = w.T.reshape(d_in, num_heads, -1)  # [D, H, dh]
    if bias is not None:
        p = torch.cat([p, bias.reshape(1, num_heads, -1)], dim=0)  # [D+1, H, dh]
    return p.permute(1, 0, 2)  # [H, D(+1), dh]
