"""The two training objectives, per window (a batch is a sum of window losses, so a batch split
over processes gives the same gradient as one process)."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from ..models.context import HOP_SECONDS, AudioContext
from .data import IGNORE, Windows
from .teacher import TeacherCache


def window_positions(windows: Windows, context: AudioContext | None, share: float, seed: int) -> list[int | None]:
    """Per window, the encoder positions it is trained on: None (the full window) or, for a
    seeded ``share`` of them, its audio plus the context's margin, rounded up to a bucket.
    Windows cut inside their speech are always among them (they teach the cut context)."""
    n = len(windows)
    if context is None or share <= 0:
        return [None] * n
    full = windows.features.shape[-1] // 2  # encoder positions of the whole window
    seconds = windows.features.shape[-1] * HOP_SECONDS
    cut = windows.cut or [False] * n
    whole = [i for i in range(n) if not cut[i]]
    more = max(0, round(share * n) - (n - len(whole)))
    chosen = {i for i in range(n) if cut[i]} | set(random.Random(seed).sample(whole, min(more, len(whole))))
    return [
        min(full, round(context.seconds(windows.seconds[i], seconds) / HOP_SECONDS) // 2) if i in chosen else None
        for i in range(n)
    ]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """||out - ref||² / ||ref||², in fp32."""
    ref = ref.float()
    return (out.float() - ref).pow(2).sum() / ref.pow(2).sum().clamp_min(1e-12)


def block_loss(student: nn.Module, name: str, cache: TeacherCache, window: int) -> torch.Tensor:
    """Stage 1: relative squared error of the compressed block against the dense one, on the
    dense model's own inputs to that block."""
    io = cache.blocks[name][window]
    out = student.get_submodule(name)(*io.args, **io.kwargs)
    return relative_error(out[0] if isinstance(out, tuple) else out, io.output)  # [1, S, D]


def student_forward(
    student: nn.Module,
    start_index: int | None,
    start: torch.Tensor,
    ids: torch.Tensor,
    positions: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoder output [1, S, D], logits [1, T, V]) from the cached input of encoder layer
    ``start_index`` (None: ``start`` is the encoder output already). ``positions``: a dynamic
    audio context, the encoder's first positions only (``start`` must then be the first
    layer's input, which depends on nearby frames alone: the convolutions and positions)."""
    base = student.model
    hidden = start  # [1, S, D]
    if positions is not None:
        if start_index != 0:
            raise ValueError("a dynamic context needs stage 2 to start at the first encoder layer")
        hidden = start[:, :positions]  # [1, S', D]
    if start_index is not None:
        for layer in base.encoder.layers[start_index:]:
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        hidden = base.encoder.layer_norm(hidden)
    dec = base.decoder(input_ids=ids, encoder_hidden_states=hidden, use_cache=False).last_hidden_state  # [1, T, D]
    return hidden, student.proj_out(dec)


def e2e_loss(
    student: nn.Module,
    start_index: int | None,
    windows: Windows,
    cache: TeacherCache,
    window: int,
    distill: float,
    device: torch.device,
    encoder_match: float = 0.0,
    positions: int | None = None,
) -> torch.Tensor:
    """Stage 2: (1 - distill) * cross-entropy on the transcript + distill * cross-entropy
    against the teacher's top-k distribution (renormalised), over the transcript tokens, plus
    ``encoder_match`` * the relative squared error of the encoder output (every frame). With
    ``positions`` the student sees only the window's first positions (a dynamic context)
    while the teacher's targets are those of the full window."""
    ids = windows.ids[window].unsqueeze(0).to(device)  # [1, T]
    labels = windows.labels[window].to(device)  # [T]
    encoded, logits = student_forward(student, start_index, cache.start[window], ids, positions)
    keep = labels != IGNORE
    logp = logits[0].float().log_softmax(-1)[keep]  # [T', V]
    loss = F.nll_loss(logp, labels[keep])
    if distill:
        teacher_p = cache.topk_values[window][keep].softmax(-1)  # [T', k]
        kd = -(teacher_p * logp.gather(-1, cache.topk_index[window][keep])).sum(-1).mean()
        kd = kd + (teacher_p * teacher_p.clamp_min(1e-30).log()).sum(-1).mean()  # minus the entropy: a KL, 0 at best
        loss = (1 - distill) * loss + distill * kd
    if encoder_match and start_index is not None:
        loss = loss + encoder_match * relative_error(encoded, cache.encoder[window][:, : encoded.shape[1]])
    return loss
