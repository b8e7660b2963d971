"""One pass of the dense teacher over the adaptation windows, caching what training reuses:
each compressed block's inputs and dense outputs (stage 1), the input of the first trained
encoder layer (stage 2 starts there: the frozen front is never run again) and the teacher's
top-k logits per token (distillation)."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import SAMPLE_RATE
from .data import IGNORE, Windows

logger = logging.getLogger(__name__)


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


CUT_BATCH = 8  # windows the teacher transcribes at once


@torch.no_grad()
def cut_speech(teacher: nn.Module, processor: Any, windows: Windows, share: float, seed: int, language: str) -> Windows:
    """``windows`` with a seeded ``share`` of them cut at a uniform point of their audio (at
    least a second, or half the audio, in) and retargeted: features of the cut audio, and as
    transcript what the teacher decodes from it on its 30 s window, greedy with timestamps
    (the way streaming decodes). The teacher's words at a cut are the best guess a model can make there, so the
    student learns to stop, or to guess, as the dense model would. ``windows`` must keep their
    audio (``build_windows(keep_audio=True)``); the result keeps none."""
    from ..models.checkpoint import LoadedWhisper
    from ..runtime.backends import StepperBackend
    from ..runtime.decoding import Vocab
    from ..runtime.segments import loop_index
    from ..runtime.torch_engine import TorchWhisper

    if windows.audio is None:
        raise ValueError("cut_speech needs windows built with keep_audio=True")
    n = len(windows)
    rng = random.Random(seed + 1)
    chosen = sorted(rng.sample(range(n), round(share * n)))
    backend = StepperBackend(TorchWhisper(LoadedWhisper(teacher, processor, Path("teacher"))), "teacher", "full")
    vocab = Vocab.from_generation_config(teacher.generation_config, language)
    prompt = vocab.prompt(timestamps=True)  # <|startoftranscript|> <|en|> <|transcribe|>: timestamps follow
    features, ids, labels = windows.features.clone(), list(windows.ids), list(windows.labels)
    seconds, cut = list(windows.seconds), list(windows.cut or [False] * n)
    for b in range(0, len(chosen), CUT_BATCH):
        batch = chosen[b : b + CUT_BATCH]
        audios = []
        for i in batch:
            audio = windows.audio[i]
            length = len(audio) / SAMPLE_RATE
            at = rng.uniform(min(1.0, length / 2), length)
            audios.append(audio[: max(1, int(at * SAMPLE_RATE))])
        hyps = backend.generate(audios, language=language, timestamps=True)
        feats = processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        for k, (i, hyp) in enumerate(zip(batch, hyps)):
            if not hyp.finished or loop_index([str(t) for t in hyp.tokens]) is not None:
                continue  # a teacher that loops (or runs on) teaches nothing here: the window stays whole
            full = prompt + list(hyp.tokens) + [vocab.eot]
            y = torch.tensor(full[1:])
            y[: len(prompt) - 1] = IGNORE  # the start tokens are given, not learned
            features[i] = feats[k].to(features.dtype)
            ids[i], labels[i] = torch.tensor(full[:-1]), y
            seconds[i], cut[i] = len(audios[k]) / SAMPLE_RATE, True
    done = sum(cut) - sum(windows.cut or [])
    logger.info("%d of %d windows cut inside their speech and transcribed by the teacher", done, n)
    record = {**windows.record, "speech_cuts": {"windows": done, "seed": seed}}
    return replace(
        windows, features=features, ids=ids, labels=labels, seconds=seconds, record=record, audio=None, cut=cut
    )
