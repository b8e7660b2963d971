"""``adapt_(model, teacher, target, general, AdaptConfig(...))``: speaker-adaptive fine-tuning
of a compressed model in place, layer-wise then end to end."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compress import is_compressed
from ..compress.targets import check_whisper
from ..errors import InvalidInput
from ..models.modules import LowRankLinear, TwinAttention
from ..models.structure import head_is_factored
from ..runtime.heap import peak_rss_mb
from .config import AdaptConfig
from .data import build_windows, canary_utterances, validation_windows
from .lora import inject_lora, merge_lora
from .stages import block_loss, e2e_loss, window_positions
from .teacher import cache_teacher, cut_speech
from .train import Dist, Phase, Trainer, saved_key
from .validate import ValidationSet, Validator, score

logger = logging.getLogger(__name__)

TEACHER_SHARE = 0.5  # of a time budget, the most the teacher pass may take (windows past it are not used)
LAYERWISE_SHARE = 0.35  # of what the teacher pass left, the most stage 1 may take


@dataclass
class AdaptReport:
    data: dict[str, Any]  # what the windows were made of
    blocks: dict[str, list[float]]  # stage 1, per block of this process: mean relative error per epoch
    losses: list[float]  # stage 2: mean loss per epoch
    steps: int
    seconds: dict[str, float]  # teacher pass, training, total
    peak_rss_mb: float
    precision: str
    processes: int
    resumed: bool
    stopped_early: bool
    lora_merged: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    validation: list[dict] = field(default_factory=list)  # stage 2: step, metrics and score of each validation
    kept: dict[str, Any] | None = None  # the validation of the checkpoint kept
    dense: dict[str, float] = field(default_factory=dict)  # the teacher's own validation losses
    stopped_by: str | None = None  # what ended stage 2 early: "validation", "time budget" or "steps"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        t, u = self.data["target"], self.data["used"]
        lines = [
            f"target: {t['minutes']:.1f} min of {', '.join(t['speakers'])} in {t['windows']} windows"
            + (f"; replay: {self.data['general']['windows']} general windows" if self.data.get("general") else ""),
            f"used: {u['windows']} of {u['of']} windows ({u['target_windows']} target, {u['target_minutes']:.1f} min)",
        ]
        for name, errs in self.blocks.items():
            lines.append(f"  layer-wise {name:<34} rel. error {errs[0]:.4f} -> {errs[-1]:.4f} (epoch mean)")
        if self.losses:
            lines.append(
                f"  end-to-end loss {self.losses[0]:.4f} -> {self.losses[-1]:.4f} over {len(self.losses)} epoch(s)"
            )
        if self.kept:
            start, kept = self.validation[0], self.kept
            shown = [k for k in ("target_ce", "canary_ce") if k in kept]
            lines.append(
                f"  validation: kept step {kept['step']} of {self.validation[-1]['step']} ("
                + ", ".join(
                    f"{k} {start[k]:.3f} -> {kept[k]:.3f}, dense {self.dense.get(k, float('nan')):.3f}" for k in shown
                )
                + ")"
            )
        lines.append(
            f"{self.steps} steps, {self.seconds['total']:.0f} s ({self.seconds['teacher']:.0f} s teacher pass), "
            f"peak RSS {self.peak_rss_mb:.0f} MB, {self.precision}, {self.processes} process(es)"
            + (", resumed" if self.resumed else "")
            + (f", stopped by {self.stopped_by}" if self.stopped_by else "")
        )
        return "\n".join(lines)


def _unwrap(obj, what: str):
    from ..models.checkpoint import LoadedWhisper

    if isinstance(obj, LoadedWhisper):
        return obj.model, obj.processor, str(obj.path)
    if isinstance(obj, nn.Module):
        return obj, None, None
    raise TypeError(f"{what} must be a Whisper model or a LoadedWhisper, got {type(obj).__name__}")


def compressed_blocks(model: nn.Module) -> dict[str, list[str]]:
    """Encoder/decoder layers holding compressed modules -> those modules' names."""
    blocks: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, (TwinAttention, LowRankLinear)) and ".layers." in name:  # not the head
            parts = name.split(".")
            i = parts.index("layers")
            blocks.setdefault(".".join(parts[: i + 2]), []).append(name)
    return blocks


def check_teacher(model: nn.Module, teacher: nn.Module, compressed: list[str]) -> None:
    """The teacher must be the dense model this one was compressed from: same shapes, and every
    part compression left alone equal."""
    check_whisper(teacher)
    if is_compressed(teacher):
        raise InvalidInput("the teacher is itself compressed: give the dense model the student was compressed from")
    for key in ("d_model", "encoder_layers", "decoder_layers", "vocab_size", "num_mel_bins"):
        a, b = getattr(model.config, key), getattr(teacher.config, key)
        if a != b:
            raise InvalidInput(
                f"the teacher does not match the model: {key} is {b} vs {a}; give the dense model "
                "the compressed one was made from"
            )
    theirs = dict(teacher.named_parameters())
    for name, p in model.named_parameters():
        if any(name.startswith(c + ".") for c in compressed) or name not in theirs:
            continue
        if theirs[name].shape != p.shape or not torch.allclose(theirs[name].to(p.device, p.dtype), p, atol=1e-5):
            raise InvalidInput(
                f"the teacher is not the model this one was compressed from ({name} differs): "
                "give the dense model the compressed one was made from"
            )


def _autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def adapt_(
    model,
    teacher,
    target,
    general=None,
    config: AdaptConfig = AdaptConfig(),
    *,
    canary=None,
    processor=None,
    state_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = False,
) -> AdaptReport:
    """Adapt the compressed ``model`` in place to the speaker of ``target`` (manifest, folder or
    list of ``Utterance``), distilling from the dense ``teacher`` and replaying ``general`` speech.

    Validation decides which checkpoint is kept and when training stops: ``config.holdout`` of
    the target utterances are held out, and ``canary`` (general speakers that are neither in
    ``general`` nor tested on) shows whether other voices still work.

    With ``state_dir``, a checkpoint is written there every ``config.checkpoint_every`` seconds
    and an interrupted run continues from it. Under ``torchrun`` the layer-wise stage is split
    across ranks and the end-to-end stage is data-parallel.
    """
    start = time.perf_counter()
    model, proc, _ = _unwrap(model, "model")
    teacher, teacher_proc, teacher_path = _unwrap(teacher, "teacher")
    processor = processor or proc or teacher_proc
    if processor is None:
        raise InvalidInput("no processor (feature extractor + tokenizer): pass processor= or LoadedWhisper models")
    check_whisper(model)
    if not is_compressed(model):
        raise InvalidInput(
            "the model is not compressed: there is nothing to adapt; compress it first (adaptwin compress)"
        )
    blocks = compressed_blocks(model)
    check_teacher(model, teacher, [m for ms in blocks.values() for m in ms])

    dist = Dist.from_env()
    if device is None:
        device = f"cuda:{dist.rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    model.to(device)
    teacher.to(device)
    precision = resolve_precision(config.precision, device)
    text = dict(
        language=config.language,
        max_tokens=model.config.max_target_positions,
        multilingual=bool(getattr(model.generation_config, "is_multilingual", False)),
    )
    windows = build_windows(
        processor,
        target,
        general,
        minutes=config.minutes,
        replay=config.replay,
        fill=config.fill,
        holdout=config.holdout,
        seed=config.seed,
        keep_audio=config.speech_cuts > 0,
        **text,
    )
    speech = config.fill * float(getattr(processor.feature_extractor, "chunk_length", 30.0))
    held = []
    if windows.held_out:
        held.append(("target", validation_windows(processor, windows.held_out, "target", speech=speech, **text)))
    elif config.holdout:
        logger.warning("too few target utterances to hold %.0f %% out for validation", 100 * config.holdout)
    if canary is not None:
        canary_utts, _ = canary_utterances(canary, config.canary_utterances)
        heard = set(windows.record["target"]["speakers"]) | set((windows.record["general"] or {}).get("speakers", []))
        clash = sorted({u.speaker for u in canary_utts if u.speaker} & heard - {"unknown"})
        if clash:
            raise InvalidInput(
                f"canary speaker(s) {clash} are also in the target or replay data: the canary must be "
                "speakers training never hears"
            )
        held.append(("canary", validation_windows(processor, canary_utts, "canary", speech=speech, **text)))
    if not held:
        logger.warning(
            "no validation data (no --canary, no held-out target utterances): the last step is kept, "
            "and nothing checks that other speakers still work"
        )
    order = list(range(len(windows)))
    random.Random(config.seed).shuffle(order)  # target and replay windows mixed: any prefix is a fair sample
    windows = windows.subset(order)
    if config.speech_cuts:
        windows = cut_speech(teacher, processor, windows, config.speech_cuts, config.seed, config.language)
    logger.info("%d windows (%d target) built, %s", len(windows), windows.record["target"]["windows"], precision)

    if config.lora_rank:
        linears = [
            f"{m}.{n}"
            for ms in blocks.values()
            for m in ms
            for n, sub in model.get_submodule(m).named_modules()
            if isinstance(sub, nn.Linear)
        ]
        inject_lora(model, linears, config.lora_rank, config.lora_alpha, config.seed)
    block_params = {
        b: [
            n
            for n, _ in model.named_parameters()
            if any(n.startswith(m + ".") for m in ms)
            and (not config.lora_rank or n.endswith((".down", ".up")) and ".base." not in n)
        ]
        for b, ms in blocks.items()
    }
    # stage 2 starts at the first compressed encoder layer: everything before it is frozen and cached
    enc = sorted((int(b.rsplit(".", 1)[1]), b) for b in blocks if ".encoder." in b)
    start_index, start_layer = (enc[0][0], enc[0][1]) if enc else (None, None)
    context = config.audio_context()
    if context is not None:  # a cut window changes every encoder layer's output: all of them run
        start_index, start_layer = 0, "model.encoder.layers.0"

    state_path = None if state_dir is None else Path(state_dir) / f"state-rank{dist.rank}.pt"
    # with a time budget the teacher pass takes at most its share; a resumed run redoes exactly
    # the windows of the interrupted one
    interrupted = saved_key(state_path)
    limit = ((interrupted or {}).get("data") or {}).get("used", {}).get("windows")
    deadline = None if limit or config.time_budget is None else start + TEACHER_SHARE * config.time_budget
    teacher_start = time.perf_counter()
    bar = None
    if progress and dist.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=limit or len(windows), desc="teacher pass", unit="window")
    names = list(blocks)
    mine = names[dist.rank :: dist.world] if config.layerwise_epochs else []  # this rank's stage-1 blocks
    cache = cache_teacher(teacher, windows, mine, start_layer, config.topk, device, bar, limit=limit, deadline=deadline)
    if bar is not None:
        bar.close()
    used = dist.min(len(cache))
    cache.truncate_(used)
    windows = windows.subset(list(range(used)))
    if used < windows.record["used"]["of"]:
        u = windows.record["used"]
        logger.warning(
            "the time budget lets the teacher pass cover %d of %d windows (%.1f min of target speech): "
            "training uses those",
            used,
            u["of"],
            u["target_minutes"],
        )
    # validation windows are all cut when the model learns a dynamic context: that is how it will run
    valsets = [
        ValidationSet(
            name,
            w,
            cache_teacher(teacher, w, [], start_layer, config.topk, device),
            window_positions(w, context, 1.0, config.seed),
        )
        for name, w in held
    ]
    teacher_seconds = time.perf_counter() - teacher_start

    phases, n = [], len(windows)
    # a time budget covers the whole call: what the teacher pass left is split between the stages
    left = None if config.time_budget is None else config.time_budget - (time.perf_counter() - start)
    for j, b in enumerate(mine):
        deadline = None if left is None else LAYERWISE_SHARE * left * (j + 1) / len(mine)
        loss = lambda w, b=b: block_loss(model, b, cache, w)  # noqa: E731
        phases.append(
            Phase(
                f"layer {b.split('model.', 1)[-1]}",
                block_params[b],
                loss,
                n,
                config.layerwise_epochs,
                config.layerwise_lr,
                deadline=deadline,
            )
        )
    if dist.world > 1 and config.layerwise_epochs:

        def share() -> None:  # each block's owner sends it to everyone
            for i, b in enumerate(names):
                dist.broadcast_([dict(model.named_parameters())[p].data for p in block_params[b]], src=i % dist.world)

        phases.append(Phase("share layers", [], None, after=share))
    epochs = config.end_to_end_epochs(n)
    autocast = _autocast(precision, device)
    validator = Validator(model, start_index, valsets, device, autocast, dist) if valsets else None
    if epochs:
        everything = [p for b in names for p in block_params[b]]
        if head_is_factored(model):  # its factors train directly (no LoRA), end to end only
            everything += [n for n, _ in model.named_parameters() if n.startswith("proj_out.")]
        positions = window_positions(windows, context, config.dynamic_context, config.seed)
        loss = lambda w: e2e_loss(  # noqa: E731
            model,
            start_index,
            windows,
            cache,
            w,
            config.distill_for(windows.source[w]),
            device,
            config.encoder_match,
            positions[w],
        )
        per_epoch = math.ceil(n / config.batch_size)
        phases.append(
            Phase(
                "end-to-end",
                everything,
                loss,
                n,
                epochs,
                config.lr,
                sharded=True,
                deadline=left,
                validate=validator,
                score=lambda m: score(m, config.canary_weight),
                eval_every=max(1, math.ceil(per_epoch / config.evals_per_epoch)),
                patience=config.patience,
            )
        )

    key = {
        "config": config.training_key(),
        "data": windows.record,
        "processes": dist.world,
        "rank": dist.rank,
        "blocks": names,
    }
    was_training = model.training
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    model.eval()  # no dropout: training is deterministic for a seed
    trainer = Trainer(
        model,
        phases,
        batch=config.batch_size,
        seed=config.seed,
        dist=dist,
        key=key,
        state_path=state_path,
        checkpoint_every=config.checkpoint_every,
        max_steps=config.max_steps,
        autocast=autocast,
        progress=progress,
    )
    state = trainer.run()
    merged = merge_lora(model) if config.lora_rank else 0
    for n, p in model.named_parameters():
        p.requires_grad_(grads.get(n, True))
    model.train(was_training)
    cache = None  # the teacher's outputs can go before saving

    seconds = {"teacher": round(teacher_seconds, 1), "train": round(trainer.elapsed(), 1)}
    seconds["total"] = round(time.perf_counter() - start, 1)
    evals = state.history.get("end-to-end validation", [])
    kept_step = (state.history.get("end-to-end kept") or [None])[0]
    kept = next((e for e in evals if e["step"] == kept_step), None)
    record = {**windows.record, "validation": {name: w.record for name, w in held}}
    report = AdaptReport(
        data=record,
        blocks={
            k.removeprefix("layer "): v
            for k, v in state.history.items()
            if k.startswith("layer ") and not k.endswith((" validation", " kept"))
        },
        losses=state.history.get("end-to-end", []),
        steps=state.steps_done,
        seconds=seconds,
        peak_rss_mb=round(peak_rss_mb(), 1),
        precision=precision,
        processes=dist.world,
        resumed=trainer.resumed,
        stopped_early=trainer.stopped_early,
        lora_merged=merged,
        config=config.to_dict(),
        validation=evals,
        kept=kept,
        dense=validator.dense() if validator else {},
        stopped_by=state.stopped_by.get("end-to-end"),
    )
    meta = dict(getattr(model.config, "adaptwin", None) or {})
    meta["adaptation"] = {
        "config": config.to_dict(),
        "data": record,
        "teacher": teacher_path,
        "steps": state.steps_done,
        "kept": kept,
        "stopped_by": report.stopped_by,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if context is not None:
        meta["context"] = context.to_dict()
    elif meta.pop("context", None):
        logger.warning("this adaptation did not train the dynamic audio context: the model uses 30 s windows again")
    model.config.adaptwin = meta
    return report
