"""Validation during adaptation: teacher-forced losses of the student on held-out target
utterances and on canary speakers (general speech neither replayed nor tested), and the rule
that picks the checkpoint to keep."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE, Windows
from .stages import relative_error, student_forward
from .teacher import TeacherCache


@dataclass
class ValidationSet:
    name: str  # "target" or "canary"
    windows: Windows
    cache: TeacherCache  # the dense teacher's pass over these windows
    positions: list[int | None] | None = None  # per window: a dynamic context's encoder positions


def score(metrics: dict[str, float], canary_weight: float) -> float:
    """The selection rule: target cross-entropy + ``canary_weight`` x canary cross-entropy (per
    token, teacher-forced on the transcripts); lower is better. A set that is absent counts 0."""
    return metrics.get("target_ce", 0.0) + canary_weight * metrics.get("canary_ce", 0.0)


class Validator:
    """Computes the validation metrics of ``student`` (no gradients, every process a share of
    the windows, summed over processes so every rank takes the same decision)."""

    def __init__(
        self,
        student: nn.Module,
        start_index: int | None,
        sets: list[ValidationSet],
        device: torch.device,
        autocast,
        dist,
    ) -> None:
        self.student, self.start_index, self.sets = student, start_index, sets
        self.device, self.autocast, self.dist = device, autocast, dist

    def dense(self) -> dict[str, float]:
        """The teacher's own cross-entropy on each set (what "as good as dense" means here)."""
        out = {}
        for s in self.sets:
            nll = sum(n for n, _ in s.cache.nll)
            tokens = sum(t for _, t in s.cache.nll)
            out[f"{s.name}_ce"] = round(nll / max(tokens, 1), 5)
        return out

    @torch.no_grad()
    def __call__(self) -> dict[str, float]:
        was = self.student.training
        self.student.eval()
        out = {}
        for s in self.sets:
            sums = torch.zeros(4, dtype=torch.float64)  # nll, kl, encoder error, tokens
            for w in range(self.dist.rank, len(s.windows), self.dist.world):
                ids = s.windows.ids[w].unsqueeze(0).to(self.device)  # [1, T]
                labels = s.windows.labels[w].to(self.device)  # [T]
                with self.autocast():
                    positions = s.positions[w] if s.positions else None
                    encoded, logits = student_forward(self.student, self.start_index, s.cache.start[w], ids, positions)
                keep = labels != IGNORE
                logp = logits[0].float().log_softmax(-1)[keep]  # [T', V]
                teacher_p = s.cache.topk_values[w][keep].softmax(-1)  # [T', k]
                kl = teacher_p * (teacher_p.clamp_min(1e-30).log() - logp.gather(-1, s.cache.topk_index[w][keep]))
                sums += torch.tensor(
                    [
                        F.nll_loss(logp, labels[keep], reduction="sum").item(),
                        kl.sum().item(),
                        relative_error(encoded, s.cache.encoder[w][:, : encoded.shape[1]]).item(),
                        keep.sum().item(),
                    ],
                    dtype=torch.float64,
                )
            self.dist.sum_([sums])
            tokens = max(sums[3].item(), 1.0)
            out[f"{s.name}_ce"] = round(sums[0].item() / tokens, 5)
            out[f"{s.name}_kl"] = round(sums[1].item() / tokens, 5)
            out[f"{s.name}_encoder"] = round(sums[2].item() / max(len(s.windows), 1), 5)
        self.student.train(was)
        return out
