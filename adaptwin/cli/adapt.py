"""``adaptwin adapt``: speaker adaptation of a compressed model, resumable, torchrun-ready."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import shutil
import time
from pathlib import Path

import adaptwin

from ..adapt.config import AdaptConfig
from ..errors import InvalidInput, MissingFile

logger = logging.getLogger(__name__)

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write e.g. 600, 90s, 10m or 1h")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def epochs(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of epochs or 'auto'") from None


def register(sub) -> None:
    p = sub.add_parser("adapt", help="adapt a compressed model to one speaker (layer-wise + end-to-end)")
    p.set_defaults(func=run)

    d = AdaptConfig()
    p.add_argument("--model", required=True, help="the compressed model folder (adaptwin compress --out)")
    p.add_argument("--teacher", required=True, help="the dense model it was compressed from (e.g. base)")
    p.add_argument(
        "--target",
        help="target speaker: manifest or folder; its 'adapt' split is used (without it: the --general "
        "speech is the training data, e.g. to teach --dynamic-context alone)",
    )
    p.add_argument("--general", help="general speech to replay (manifest; its 'adapt' split), so others do not regress")
    p.add_argument(
        "--canary",
        help="general speakers for validation, never replayed or tested (manifest; its "
        "'validation' split): the checkpoint kept is the one that keeps them working",
    )
    p.add_argument(
        "--minutes",
        type=float,
        help="use N minutes of target speech, utterances spread evenly over its adapt split (default: all)",
    )
    p.add_argument(
        "--time-budget",
        type=duration,
        help="a cap on the whole command, e.g. 10m; validation decides "
        "how long to train, and the run warns if the cap binds first",
    )
    p.add_argument("--layerwise-epochs", type=int, default=d.layerwise_epochs)
    p.add_argument(
        "--epochs",
        type=epochs,
        default=d.epochs,
        help="end-to-end epochs at most, or 'auto' (default): from the amount of data",
    )
    p.add_argument(
        "--holdout", type=float, default=d.holdout, help="share of the target utterances kept for validation"
    )
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="stop after this many validations without improvement (0: never)",
    )
    p.add_argument(
        "--canary-weight",
        type=float,
        default=d.canary_weight,
        help="weight of the canary loss in the selection score (target loss + weight x canary loss)",
    )
    p.add_argument("--evals-per-epoch", type=int, default=d.evals_per_epoch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--layerwise-lr", type=float, default=d.layerwise_lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="30 s windows per step (all processes)")
    p.add_argument("--replay", type=float, default=d.replay, help="share of general windows")
    p.add_argument(
        "--fill", type=float, default=d.fill, help="share of each 30 s window holding speech (rest: padding)"
    )
    p.add_argument(
        "--distill",
        type=float,
        default=d.distill,
        help="weight of the teacher's soft targets on general (replay) windows; the rest: transcripts",
    )
    p.add_argument(
        "--target-distill",
        type=float,
        default=d.target_distill,
        help="the same on target-speaker windows, and on --general without --target (default 0: their "
        "transcripts alone; chosen on the validation speakers, docs/experiments/adaptation.md)",
    )
    p.add_argument(
        "--encoder-match",
        type=float,
        default=d.encoder_match,
        help="weight of the end-to-end stage's encoder-output match to the dense model (0: off)",
    )
    p.add_argument(
        "--dynamic-context",
        type=float,
        default=d.dynamic_context,
        help="share of windows trained on their own audio length (e.g. 0.5): the model then runs its "
        "encoder on the audio's length, not 30 s (0: off)",
    )
    p.add_argument(
        "--context-bucket", type=float, default=d.context_bucket, help="seconds the context is rounded up to"
    )
    p.add_argument("--context-margin", type=float, default=d.context_margin, help="seconds of context after the audio")
    p.add_argument(
        "--speech-cuts",
        type=float,
        default=d.speech_cuts,
        help="share of windows cut inside their speech and transcribed by the teacher, as a streaming "
        "buffer is (at most --dynamic-context; e.g. 0.25)",
    )
    p.add_argument("--lora-rank", type=int, default=0, help="train LoRA adapters of this rank (merged at the end)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=duration, default=d.checkpoint_every, help="e.g. 2m; 0: every step")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run that left OUT.partial")
    p.add_argument("--out", required=True, help="output folder (written atomically when adaptation ends)")
    p.add_argument("--json", help="also write the report as JSON here")


SAVE_MARGIN = 10.0  # seconds of a time budget kept for writing the model


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()

    from ..adapt.core import adapt_
    from ..adapt.train import Dist
    from ..models.checkpoint import check_output_dir, save

    config = AdaptConfig(  # validate before the slow loads
        minutes=args.minutes,
        replay=args.replay,
        fill=args.fill,
        encoder_match=args.encoder_match,
        holdout=args.holdout,
        patience=args.patience,
        canary_weight=args.canary_weight,
        evals_per_epoch=args.evals_per_epoch,
        layerwise_epochs=args.layerwise_epochs,
        epochs=args.epochs,
        lr=args.lr,
        layerwise_lr=args.layerwise_lr,
        batch_size=args.batch_size,
        distill=args.distill,
        target_distill=args.target_distill,
        lora_rank=args.lora_rank,
        dynamic_context=args.dynamic_context,
        context_bucket=args.context_bucket,
        context_margin=args.context_margin,
        speech_cuts=args.speech_cuts,
        time_budget=args.time_budget,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        precision=args.precision,
        max_steps=args.max_steps,
    )
    target, general = args.target, args.general
    if target is None:
        if general is None:
            raise InvalidInput("nothing to train on: give --target (a speaker) and/or --general (general speech)")
        logger.info("no --target: training on the general speech alone (no replay, no target speaker)")
        target, general = general, None
        config = dataclasses.replace(config, replay=0.0)
    out = check_output_dir(args.out)
    state_dir = out.with_name(out.name + ".partial")
    if any(state_dir.glob("state-rank*.pt")) and not args.resume:
        raise InvalidInput(
            f"an interrupted run left {state_dir}: pass --resume to continue it, or delete it to start over"
        )
    for path in (target, general, args.canary):
        if path and not Path(path).exists():
            raise MissingFile(f"{path} does not exist: give a JSON-lines manifest or a folder of audio")
    student = adaptwin.load_whisper(args.model)
    teacher = adaptwin.load_whisper(args.teacher)
    if config.time_budget is not None:  # the budget is the whole command's: loading and saving included
        left = config.time_budget - (time.perf_counter() - started) - SAVE_MARGIN
        config = dataclasses.replace(config, time_budget=max(left, 1.0))
    report = adapt_(student, teacher, target, general, config, canary=args.canary, state_dir=state_dir, progress=True)
    if not Dist.from_env().main:
        return 0
    print(report.format())
    save(
        student.model,
        out,
        student.processor or teacher.processor,
        extra={"compressed_from": str(args.teacher), "adapted_from": str(args.model)},
    )
    shutil.rmtree(state_dir, ignore_errors=True)  # only once the model is safely written
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=1))
    print(f"saved {out}")
    return 0
