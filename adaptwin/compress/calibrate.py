"""Calibration data: second moments of layer inputs, and the model-output error of a change."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from ..audio import SAMPLE_RATE
from ..data.manifest import Utterance, pack_windows, read_utterances
from ..errors import InvalidInput
from ..models.structure import set_module
from .targets import Site


@dataclass
class Calibration:
    """Log-mel windows (and, for decoder statistics, teacher-forced token ids) to calibrate on."""

    features: torch.Tensor  # [N, n_mels, 3000]
    decoder_input_ids: Sequence[torch.Tensor] | None = None  # N x [T_i], each starting with the prompt

    def __post_init__(self) -> None:
        if self.features.ndim != 3 or self.features.shape[0] == 0:
            raise InvalidInput(
                f"calibration features must be [N, n_mels, frames] with N >= 1, got {tuple(self.features.shape)}"
            )
        if self.decoder_input_ids is not None and len(self.decoder_input_ids) != self.features.shape[0]:
            raise InvalidInput("calibration needs one decoder id sequence per feature window")

    def __len__(self) -> int:
        return self.features.shape[0]

    def subset(self, n: int) -> "Calibration":
        ids = None if self.decoder_input_ids is None else list(self.decoder_input_ids[:n])
        return Calibration(self.features[:n], ids)


class _Moment:
    def __init__(self, augment: bool) -> None:
        self.augment = augment
        self.xtx: torch.Tensor | None = None
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)  # [N, D]
        if self.augment:
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)  # [N, D+1]
        xtx = x.T @ x
        self.xtx = xtx if self.xtx is None else self.xtx + xtx
        self.n += x.shape[0]

    def value(self) -> torch.Tensor:
        if self.xtx is None:
            raise RuntimeError("no calibration input reached this layer: is the decoder given token ids?")
        return self.xtx / self.n


def build_calibration(loaded, source: str | Path | list[Utterance], max_windows: int = 24, language: str = "en"):
    """``Calibration`` windows for ``loaded`` from a manifest/folder (token ids too when every
    utterance has a transcript, so decoder statistics are teacher-forced on the truth)."""
    if loaded.processor is None:
        raise InvalidInput(f"{loaded.path} has no processor files (preprocessor/tokenizer): cannot compute features")
    utterances = source if isinstance(source, list) else read_utterances(source)
    windows = pack_windows(utterances, max_windows)
    extract = loaded.processor.feature_extractor
    feats = extract([audio for audio, _ in windows], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    feats = feats.to(next(loaded.model.parameters()).dtype)  # [N, n_mels, 3000]
    ids = None
    if all(text for _, text in windows):
        tok = loaded.processor.tokenizer
        if getattr(loaded.model.generation_config, "is_multilingual", False):
            tok.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
        ids = [torch.tensor(tok(text).input_ids[:-1]) for _, text in windows]  # teacher-forced: drop the final EOT
    return Calibration(feats, ids)


def _needs_decoder(sites: Sequence[Site]) -> bool:
    return any(s.side == "decoder" for s in sites)


@torch.no_grad()
def run(model: nn.Module, calibration: Calibration, decoder: bool) -> list[torch.Tensor]:
    """One forward per window; returns encoder outputs, or logits when the decoder is involved."""
    outputs = []
    for i in range(len(calibration)):
        feats = calibration.features[i : i + 1]  # [1, n_mels, 3000]
        if decoder:
            ids = _decoder_ids(model, calibration, i)
            out = model(input_features=feats, decoder_input_ids=ids.unsqueeze(0), use_cache=False).logits
        else:
            encoder = model.get_encoder() if hasattr(model, "get_encoder") else model.encoder
            out = encoder(feats).last_hidden_state
        outputs.append(out.float())
    return outputs


def _decoder_ids(model: nn.Module, calibration: Calibration, i: int) -> torch.Tensor:
    if calibration.decoder_input_ids is not None:
        return calibration.decoder_input_ids[i]
    # No transcript: let the model transcribe greedily and teacher-force its own tokens.
    ids = model.generate(calibration.features[i : i + 1], max_new_tokens=96, do_sample=False, num_beams=1)
    return ids[0, :-1] if ids.shape[1] > 1 else ids[0]


@torch.no_grad()
def second_moments(model: nn.Module, calibration: Calibration, sites: Sequence[Site]) -> dict[str, torch.Tensor]:
    """``E[x^T x]`` of each site's inputs: for attention ``name/x`` (query side, bias-augmented
    when the query has a bias), ``name/y`` (key/value side; augmented when the key has a
    bias); for FFN layers ``name/x``."""
    moments: dict[str, _Moment] = {}
    hooks = []

    def hook(key: str, augment: bool):
        moments[key] = _Moment(augment)
        return lambda _mod, args: moments[key].add(args[0])

    for site in sites:
        module = model.get_submodule(site.name)
        if site.kind in ("ffn", "head"):
            hooks.append(module.register_forward_pre_hook(hook(f"{site.name}/x", False)))
            continue
        hooks.append(module.q_proj.register_forward_pre_hook(hook(f"{site.name}/x", module.q_proj.bias is not None)))
        hooks.append(module.k_proj.register_forward_pre_hook(hook(f"{site.name}/y", module.k_proj.bias is not None)))
    try:
        run(model, calibration, decoder=_needs_decoder(sites))
    finally:
        for h in hooks:
            h.remove()
    return {k: m.value() for k, m in moments.items()}


def relative_error(outputs: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    num = sum(float((o - r).pow(2).sum()) for o, r in zip(outputs, reference))
    den = sum(float(r.pow(2).sum()) for r in reference)
    return (num / max(den, 1e-30)) ** 0.5


def kl_error(logits: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """Root of the mean KL(reference || logits) of the next-token distributions, per position;
    the root keeps it linear in a small change, like ``relative_error``."""
    total, positions = 0.0, 0
    for o, r in zip(logits, reference):  # each [1, T, vocab]
        target = r.log_softmax(-1)
        total += float(torch.nn.functional.kl_div(o.log_softmax(-1), target, log_target=True, reduction="sum"))
        positions += r[..., 0].numel()
    return (max(total, 0.0) / max(positions, 1)) ** 0.5


def output_error(outputs: list[torch.Tensor], reference: list[torch.Tensor], probe: str = "logits") -> float:
    """How far a changed model's outputs are from the dense ``reference``: ``kl_error`` for
    ``probe="kl"`` (outputs must be logits), else ``relative_error``."""
    return kl_error(outputs, reference) if probe == "kl" else relative_error(outputs, reference)


@contextmanager
def swapped(model: nn.Module, name: str, module: nn.Module) -> Iterator[None]:
    old = set_module(model, name, module)
    try:
        yield
    finally:
        set_module(model, name, old)
