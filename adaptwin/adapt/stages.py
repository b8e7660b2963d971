"""The two training objectives, per window (a batch is a sum of window losses, so a batch split
over processes gives the same gradient as one process)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE, Windows
from .teacher import TeacherCache


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
    student: nn.Module, start_index: int | None, start: torch.Tensor, ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoder output [1, S, D], logits [1, T, V]) from the cached input of encoder layer
    ``start_index`` (None: ``start`` is the encoder output already)."""
    base = student.model
    hidden = start  # [1, S, D]
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
) -> torch.Tensor:
    """Stage 2: (1 - distill) * cross-entropy on the transcript + distill * cross-entropy
    against the teacher's top-k distribution (renormalised), over the transcript tokens, plus
    ``encoder_match`` * the relative squared error of the encoder output (every frame)."""
    ids = windows.ids[window].unsqueeze(0).to(device)  # [1, T]
    labels = windows.labels[window].to(device)  # [T]
    encoded, logits = student_forward(student, start_index, cache.start[window], ids)
    keep = labels != IGNORE
    logp = logits[0].float().log_softmax(-1)[keep]  # [T', V]
    loss = F.nll_loss(logp, labels[keep])
    if distill:
        teacher_p = cache.topk_values[window][keep].softmax(-1)  # [T', k]
        kd = -(teacher_p * logp.gather(-1, cache.topk_index[window][keep])).sum(-1).mean()
        kd = kd + (teacher_p * teacher_p.clamp_min(1e-30).log()).sum(-1).mean()  # minus the entropy: a KL, 0 at best
        loss = (1 - distill) * loss + distill * kd
    if encoder_match and start_index is not None:
        loss = loss + encoder_match * relative_error(encoded, cache.encoder[window])
    return loss
