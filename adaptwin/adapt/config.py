"""Frozen, validated adaptation options, serialised with the model they produced."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InvalidInput
from ..models.context import AudioContext

PRECISIONS = ("auto", "fp32", "bf16")
# epochs=None: the whole epochs nearest to this many window passes, within [1, MAX_EPOCHS];
# validation then keeps the best checkpoint and may stop sooner
AUTO_PASSES = 300
MAX_EPOCHS = 8


@dataclass(frozen=True)
class AdaptConfig:
    """How to adapt a compressed model to one speaker.

    Stage 1 (layer-wise) teaches each compressed block to reproduce the dense block on the
    adaptation audio; stage 2 (end-to-end) trains on the transcripts with distillation from
    the dense teacher, with a share of general speech replayed so other speakers keep working.
    """

    minutes: float | None = None  # target-speaker audio to use, spread over its adapt split (None: all)
    # share of stage-2 windows drawn from general speech: half kept unseen voices better than a
    # quarter in trials (docs/experiments/adaptation.md)
    replay: float = 0.5
    # speech per 30 s window, as a fraction: the rest stays padding, as when a short clip is
    # transcribed (fully packed windows taught the model to hallucinate after short prompts)
    fill: float = 0.6
    # stage 1 is off by default: in trials it did no better than giving its time to
    # end-to-end epochs (docs/experiments/adaptation.md, as are the learning-rate trials)
    layerwise_epochs: int = 0
    layerwise_lr: float = 5e-5
    # end-to-end epochs at most; None: from the number of windows (AUTO_PASSES / windows, at most MAX_EPOCHS)
    epochs: int | None = None
    lr: float = 3e-5
    batch_size: int = 4  # 30 s windows per optimizer step (over all processes)
    # weight of the teacher's soft targets on replayed general windows (1 - distill: the transcript)
    distill: float = 0.8
    # the same on the target speaker's windows (None: distill); 0 learns its transcripts alone
    target_distill: float | None = 0.0
    # stage 2 also keeps the encoder output near the dense one on every frame, padding included
    # (relative squared error, this weight): the frozen decoder reads that output, so matching
    # it on every voice is what keeps other voices working
    encoder_match: float = 5.0
    topk: int = 64  # teacher logits kept per token for distillation
    # dynamic audio context: this share of the end-to-end windows (and every validation window)
    # is cut to its audio plus context_margin seconds, rounded up to whole context_bucket
    # seconds, and trained toward the teacher's full-window outputs; the saved model then runs
    # its encoder on the audio's length (0: off, the model keeps the 30 s window)
    dynamic_context: float = 0.0
    context_bucket: float = 1.0
    context_margin: float = 0.5
    # share of the windows whose audio is cut at a random point inside the speech, with the
    # teacher's transcript of the cut audio (timestamps included) as their target, trained at
    # the dynamic context: a streaming buffer ends inside a word, a whole utterance never does
    speech_cuts: float = 0.0
    lora_rank: int = 0  # > 0: train LoRA adapters on the factors (merged back at the end)
    lora_alpha: float = 16.0
    # validation: a share of the target utterances is held out, and up to canary_utterances of
    # the canary speakers are scored evals_per_epoch times an epoch; the checkpoint with the lowest
    # target CE + canary_weight * canary CE is kept; patience validations without one stop training
    holdout: float = 0.15
    canary_utterances: int = 48
    evals_per_epoch: int = 2
    patience: int = 3
    canary_weight: float = 1.0
    time_budget: float | None = None  # seconds for the whole run: a cap (the run warns when it binds)
    checkpoint_every: float = 120.0  # seconds between resumable checkpoints (0: after every step)
    seed: int = 0
    precision: str = "auto"  # "auto": bf16 autocast where the hardware has it, else fp32
    language: str = "en"
    max_steps: int | None = None  # stop after this many optimizer steps in all (tests, smoke runs)

    def __post_init__(self) -> None:
        if self.minutes is not None and not self.minutes > 0:
            raise InvalidInput(f"minutes={self.minutes} must be > 0 (or None to use all target audio)")
        if not 0.0 <= self.replay < 1.0:
            raise InvalidInput(f"replay={self.replay} is a share of the windows and must lie in [0, 1)")
        if not 0.0 < self.fill <= 1.0:
            raise InvalidInput(f"fill={self.fill} is the share of each window holding speech and must lie in (0, 1]")
        for name in ("distill", "target_distill"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise InvalidInput(f"{name}={v} must lie in [0, 1] (0: transcripts only, 1: teacher only)")
        for name in ("layerwise_epochs", "epochs", "lora_rank"):
            if name == "epochs" and self.epochs is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise InvalidInput(f"{name}={getattr(self, name)!r} must be a non-negative integer")
        if not 0.0 <= self.dynamic_context <= 1.0:
            raise InvalidInput(
                f"dynamic_context={self.dynamic_context} is the share of windows trained on their own "
                "length and must lie in [0, 1] (0: off)"
            )
        self.audio_context()  # bucket and margin checked here
        if not 0.0 <= self.speech_cuts <= self.dynamic_context:
            raise InvalidInput(
                f"speech_cuts={self.speech_cuts} is a share of the windows trained at the dynamic context "
                f"and must lie in [0, dynamic_context={self.dynamic_context}]"
            )
        if not 0.0 <= self.holdout < 0.5:
            raise InvalidInput(
                f"holdout={self.holdout} is the share of target utterances kept for validation: [0, 0.5)"
            )
        if not self.canary_weight >= 0:
            raise InvalidInput(f"canary_weight={self.canary_weight} must be >= 0")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise InvalidInput(f"patience={self.patience!r} must be a non-negative integer (0: never stop early)")
        for name in ("batch_size", "topk", "canary_utterances", "evals_per_epoch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidInput(f"{name}={getattr(self, name)!r} must be a positive integer")
        if not self.encoder_match >= 0:
            raise InvalidInput(f"encoder_match={self.encoder_match} is a loss weight and must be >= 0")
        for name in ("lr", "layerwise_lr", "lora_alpha"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name}={getattr(self, name)} must be > 0")
        if self.layerwise_epochs == 0 and self.epochs == 0:
            raise InvalidInput("nothing to do: layerwise_epochs and epochs are both 0")
        if self.time_budget is not None and not self.time_budget > 0:
            raise InvalidInput(f"time_budget={self.time_budget} seconds must be > 0")
        if self.checkpoint_every < 0:
            raise InvalidInput("checkpoint_every must be >= 0 seconds")
        if self.precision not in PRECISIONS:
            raise InvalidInput(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidInput("max_steps must be >= 1")

    def end_to_end_epochs(self, windows: int) -> int:
        """The most end-to-end epochs over ``windows`` training windows (a function of the data,
        never of the machine)."""
        if self.epochs is not None:
            return self.epochs
        return max(1, min(MAX_EPOCHS, round(AUTO_PASSES / max(1, windows))))

    def audio_context(self) -> AudioContext | None:
        """The dynamic context this adaptation teaches (None when it keeps the 30 s window)."""
        context = AudioContext(self.context_bucket, self.context_margin)
        return context if self.dynamic_context > 0 else None

    def distill_for(self, source: str) -> float:
        """The teacher's weight on a window of ``source`` ("target" or "general")."""
        return self.target_distill if source == "target" and self.target_distill is not None else self.distill

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AdaptConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def training_key(self) -> dict[str, Any]:
        """The options a resumed run must share with the interrupted one (not budgets or cadence)."""
        d = self.to_dict()
        for k in ("time_budget", "checkpoint_every", "max_steps"):
            d.pop(k)
        return d
