"""Check an exported folder against the PyTorch model it came from (optimum's habit).

Logits are compared on random features and on real clips, for the first-step decoder,
the decoder with past and the merged decoder; greedy tokens of ONNX Runtime and PyTorch
``generate()`` are compared on the real clips. A model adapted for a dynamic audio context is
also compared at shorter encoder inputs (its smallest context and a third of the window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..errors import AdaptwinError
from ..evaluate import align
from ..models.context import HOP_SECONDS, encoder_frames, model_context
from ..runtime.decoding import DecodingOptions, Vocab, decode

# Per precision, the bounds a check must meet (None: printed, not enforced):
#   max_abs: max |onnx - torch| / max(1, max |torch|) over all logits
#   rms:     ||onnx - torch|| / ||torch||
#   top1:    share of positions whose most likely token is the same
#   tokens:  least mean agreement of greedy tokens with PyTorch's on real clips
#            (1 - token edit distance / length)
# int8 (dynamic, per-tensor activation scales) moves every logit a little and reacts
# strongly to random-noise features, so it is bounded on real speech only.
TOLERANCE = {
    "fp32": {"max_abs": 1e-4, "rms": None, "top1": None, "random": True, "tokens": 1.0},
    "fp16": {"max_abs": 2e-2, "rms": None, "top1": None, "random": True, "tokens": 0.9},
    "int8": {"max_abs": None, "rms": 0.25, "top1": 0.9, "random": False, "tokens": 0.6},
}


# A top-1 share over fewer positions says nothing at int8: one near-tie flipped among the two
# positions of the logits_at check reads as 50 %; those checks are bounded by rms (the
# all-token checks bound the same positions' top-1).
MIN_TOP1_POSITIONS = 10


class ValidationError(AdaptwinError, RuntimeError):
    pass


@dataclass
class Check:
    name: str
    precision: str
    max_abs: float
    rms: float
    top1: float
    enforced: bool = True
    positions: int = 0  # token positions compared

    @property
    def ok(self) -> bool:
        tol = TOLERANCE[self.precision]
        return not self.enforced or bool(
            (tol["max_abs"] is None or self.max_abs <= tol["max_abs"])
            and (tol["rms"] is None or self.rms <= tol["rms"])
            and (tol["top1"] is None or self.positions < MIN_TOP1_POSITIONS or self.top1 >= tol["top1"])
        )


@dataclass
class ValidationReport:
    precision: str
    checks: list[Check] = field(default_factory=list)
    token_agreement: list[float] = field(default_factory=list)  # per real clip: share of equal greedy tokens

    @property
    def tokens_ok(self) -> bool:
        return not self.token_agreement or float(np.mean(self.token_agreement)) >= TOLERANCE[self.precision]["tokens"]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and self.tokens_ok

    def format(self) -> str:
        tol = TOLERANCE[self.precision]
        bounds = ", ".join(
            f"{k} {'<=' if k != 'top1' else '>='} {v:g}"
            + (f" over >= {MIN_TOP1_POSITIONS} positions" if k == "top1" else "")
            for k, v in tol.items()
            if k in ("max_abs", "rms", "top1") and v is not None
        )
        lines = [
            f"validation against PyTorch ({self.precision}: logits {bounds}"
            f"{'' if tol['random'] else ' on real speech'}; greedy tokens on real clips >= {tol['tokens']:.0%} equal)"
        ]
        for c in self.checks:
            verdict = ("ok" if c.ok else "FAILED") if c.enforced else "(printed only)"
            lines.append(
                f"  {c.name:<38} max_abs {c.max_abs:.1e}  rms {c.rms:.1e}  top1 {c.top1:.0%} of {c.positions}"
                f"  {verdict}"
            )
        if self.token_agreement:
            lines.append(
                f"  greedy tokens equal to PyTorch on real clips: "
                f"{', '.join(f'{a:.0%}' for a in self.token_agreement)}  {'ok' if self.tokens_ok else 'FAILED'}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "precision": self.precision,
            "ok": self.ok,
            "tolerance": TOLERANCE[self.precision],
            "token_agreement": self.token_agreement,
            "checks": [dict(asdict(c), ok=c.ok) for c in self.checks],
        }


def _check(name: str, got: np.ndarray, ref: np.ndarray, precision: str, scored: np.ndarray | None = None) -> Check:
    """``got``/``ref`` [B, T, V]; ``scored`` [B, T]: the positions compared (default all)."""
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    if scored is not None:
        got, ref = got[scored], ref[scored]  # [N, V]
    max_abs = float(np.abs(got - ref).max()) / max(1.0, float(np.abs(ref).max()))
    rms = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))
    top1 = float((got.argmax(-1) == ref.argmax(-1)).mean())
    return Check(
        name,
        precision,
        max_abs,
        rms,
        top1,
        enforced=TOLERANCE[precision]["random"] or name.startswith("real"),
        positions=int(np.prod(got.shape[:-1])),
    )


@torch.no_grad()
def validate(
    model,
    engine,
    precision: str,
    clips: list[np.ndarray] | None = None,
    max_new_tokens: int = 48,
    language: str | None = "en",
    seed: int = 0,
) -> ValidationReport:
    """Compare ``engine`` (an ``OrtWhisper``) with ``model`` (the PyTorch model it was exported from)."""
    if next(model.parameters()).dtype != torch.float32:  # compare in fp32 without touching the caller's model
        import copy

        model = copy.deepcopy(model).float()
    model.eval()
    cfg = model.config
    report = ValidationReport(precision)
    vocab = Vocab.from_generation_config(engine.generation_config, language)
    prompt = vocab.prompt()
    max_new_tokens = min(max_new_tokens, cfg.max_target_positions - len(prompt) - 1)
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, cfg.num_mel_bins, 2 * cfg.max_source_positions, generator=g)
    extra = torch.randint(0, cfg.vocab_size, (2, 4), generator=g)
    inputs = [("random", feats, torch.cat([torch.tensor([prompt] * 2), extra], dim=1), None)]
    if clips:
        real = torch.from_numpy(engine.features(clips).astype(np.float32))
        state = engine.encode(real.numpy())
        hyps = decode(engine, state, len(clips), prompt, vocab, DecodingOptions(max_new_tokens=max_new_tokens))
        ref = _torch_greedy(model, engine, real, len(prompt), max_new_tokens, language)
        for h, r in zip(hyps, ref):  # 1 - token edit distance / length: one early slip does not zero a clip
            errors = align([str(t) for t in r], [str(t) for t in h.tokens]).errors
            report.token_agreement.append(max(0.0, 1 - errors / max(len(r), len(h.tokens), 1)))
        # Each clip's whole greedy transcript is forced (8 tokens each gave 36 positions: one
        # token moved top-1 by 3 points); positions after a clip's end-of-text are not scored.
        length = max(len(r) for r in ref) + 1
        forced = torch.tensor([prompt + r + [vocab.eot] * (length - len(r)) for r in ref])
        scored = np.array([[True] * (len(prompt) + len(r)) + [False] * (length - len(r)) for r in ref])
        inputs.append(("real", real, forced, scored))

    if model_context(cfg) is not None:
        window = 2 * cfg.max_source_positions * HOP_SECONDS
        lengths = sorted({encoder_frames(cfg, s) for s in (0.0, window / 3)} - {feats.shape[-1]})
        inputs += [(f"random, {f} frames", feats[..., :f], inputs[0][2], None) for f in lengths]
        if clips:  # the real clips at the context they get (checked at every precision)
            f = encoder_frames(cfg, max(len(c) for c in clips) / SAMPLE_RATE)
            if f < feats.shape[-1]:
                inputs.append((f"real, {f} frames", inputs[1][1][..., :f], inputs[1][2], inputs[1][3]))
    for tag, feats, ids, scored in inputs:
        ref = _reference_logits(model, feats, ids).numpy()  # [B, T, V]
        cross, empty = engine.encode(feats.numpy())
        split = ids.shape[1] // 2
        merged, (_, past) = engine.step(ids.numpy(), (cross, empty))
        report.checks.append(_check(f"{tag}: decoder, all tokens at once", merged, ref, precision, scored))
        if getattr(engine, "positions", False):  # the logits of two positions only, as a prompt's prefill asks
            at = np.array([split, ids.shape[1] - 1])
            picked, _ = engine.step(ids.numpy(), (cross, empty), at=at)
            chosen = None if scored is None else scored[:, at]
            report.checks.append(
                _check(f"{tag}: decoder, logits at two positions", picked, ref[:, at], precision, chosen)
            )
        head, (_, past) = engine.step(ids[:, :split].numpy(), (cross, empty))
        tail, _ = engine.step(ids[:, split:].numpy(), (cross, past))
        report.checks.append(
            _check(f"{tag}: decoder with past (KV cache)", np.concatenate([head, tail], 1), ref, precision, scored)
        )
        first, with_past = engine.session("decoder_model.onnx"), engine.session("decoder_with_past_model.onnx")
        head, *present = first.run(None, engine.feed(ids[:, :split].numpy(), cross, []))
        tail = with_past.run(None, engine.feed(ids[:, split:].numpy(), cross, present))[0]
        report.checks.append(
            _check(f"{tag}: decoder_model + decoder_with_past", np.concatenate([head, tail], 1), ref, precision, scored)
        )
    return report


def _reference_logits(model, feats: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The PyTorch model's logits [B, T, V]; features shorter than the window (a dynamic
    context) go through its encoder layers directly (transformers insists on 30 s)."""
    enc = model.model.encoder
    if feats.shape[-1] == enc.config.max_source_positions * 2:
        return model(input_features=feats, decoder_input_ids=ids).logits
    x = torch.nn.functional.gelu(enc.conv1(feats))
    x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)  # [B, S, D]
    x = x + enc.embed_positions.weight[: x.shape[1]]
    for layer in enc.layers:
        x = layer(x, None)
        x = x[0] if isinstance(x, tuple) else x
    return model(encoder_outputs=(enc.layer_norm(x),), decoder_input_ids=ids).logits


def _torch_greedy(model, engine, feats, prompt_len, max_new_tokens, language) -> list[list[int]]:
    kwargs = (
        {"task": "transcribe", "language": language}
        if getattr(engine.generation_config, "is_multilingual", False)
        else {}
    )
    ids = model.generate(feats, num_beams=1, do_sample=False, max_new_tokens=max_new_tokens, **kwargs)
    gen = engine.generation_config
    out = []
    for row in ids.tolist():
        if row and row[0] == gen.decoder_start_token_id:  # generate() may return the prompt too
            row = row[prompt_len:]
        out.append([t for t in row if t not in (gen.eos_token_id, gen.pad_token_id)])
    return out
