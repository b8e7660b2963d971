"""One pass of the dense teacher over the adaptation windows, caching what training reuses:
each compressed block's inputs and dense outputs (stage 1), the input of the first trained
encoder layer (stage 2 starts there: the frozen front is never run again) and the teacher's
top-k logits per token (distillation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE, Windows


@dataclass
class BlockIO:
    args: tuple  # the block's positional inputs, as the dense model gave them
    kwargs: dict[str, Any]
    output: torch.Tensor  # the dense block's output


@dataclass
class TeacherCache:
    blocks: dict[str, list[BlockIO]] = field(default_factory=dict)  # block name -> one per window
    start: list[torch.Tensor] = field(default_factory=list)  # per window [1, S, D]: stage 2's encoder input
    topk_values: list[torch.Tensor] = field(default_factory=list)  # per window [T, k]
    topk_index: list[torch.Tensor] = field(default_factory=list)  # per window [T, k]
    encoder: list[torch.Tensor] = field(default_factory=list)  # per window [1, S, D]: the dense encoder output
    nll: list[tuple[float, int]] = field(default_factory=list)  # per window: the teacher's summed CE, tokens

    def __len__(self) -> int:
        return len(self.start)

    def truncate_(self, n: int) -> None:
        """Keep the first ``n`` windows."""
        for name, per_window in self.blocks.items():
            self.blocks[name] = per_window[:n]
        for name in ("start", "topk_values", "topk_index", "encoder", "nll"):
            setattr(self, name, getattr(self, name)[:n])


def _detach(x):
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (tuple, list)):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x


@torch.no_grad()
def cache_teacher(
    teacher: nn.Module,
    windows: Windows,
    blocks: list[str],
    start_layer: str | None,
    topk: int,
    device: torch.device,
    progress=None,
    *,
    limit: int | None = None,
    deadline: float | None = None,
) -> TeacherCache:
    """``start_layer``: name of the encoder layer whose input stage 2 starts from (None: the
    encoder output, when no encoder layer is trained). The pass covers the first ``limit``
    windows, or stops at ``deadline`` (a ``time.perf_counter()`` value) after at least one."""
    cache = TeacherCache(blocks={b: [] for b in blocks})
    hooks, current = [], {}

    def pre(name):
        def hook(_mod, args, kwargs):
            current[name] = (_detach(args), _detach(kwargs))

        return hook

    def post(name):
        def hook(_mod, _args, _kwargs, output):
            args, kwargs = current.pop(name)
            out = output[0] if isinstance(output, tuple) else output
            cache.blocks[name].append(BlockIO(args, kwargs, out.detach()))

        return hook

    for name in blocks:
        module = teacher.get_submodule(name)
        hooks.append(module.register_forward_pre_hook(pre(name), with_kwargs=True))
        hooks.append(module.register_forward_hook(post(name), with_kwargs=True))
    if start_layer is not None and start_layer not in blocks:
        hooks.append(teacher.get_submodule(start_layer).register_forward_pre_hook(pre(start_layer), with_kwargs=True))
    teacher.eval()
    try:
        for i in range(len(windows) if limit is None else min(limit, len(windows))):
            if deadline is not None and i > 0 and time.perf_counter() > deadline:
                break
            feats = windows.features[i : i + 1].to(device, next(teacher.parameters()).dtype)  # [1, n_mels, frames]
            ids = windows.ids[i].unsqueeze(0).to(device)  # [1, T]
            out = teacher(input_features=feats, decoder_input_ids=ids, use_cache=False)
            if start_layer is None:
                cache.start.append(out.encoder_last_hidden_state.detach())
            elif start_layer in blocks:
                cache.start.append(cache.blocks[start_layer][-1].args[0])
            else:
                cache.start.append(current.pop(start_layer)[0][0])
            cache.encoder.append(out.encoder_last_hidden_state.detach())
            logits = out.logits[0].float()  # [T, V]
            values, index = logits.topk(min(topk, logits.shape[-1]), dim=-1)  # [T, k]
            cache.topk_values.append(values)
            cache.topk_index.append(index)
            labels = windows.labels[i].to(device)  # [T]
            keep = labels != IGNORE
            nll = F.cross_entropy(logits[keep], labels[keep], reduction="sum") if keep.any() else logits.new_zeros(())
            cache.nll.append((float(nll), int(keep.sum())))
            if progress is not None:
                progress.update(1)
    finally:
        for h in hooks:
            h.remove()
    return cache
