"""Dynamic audio context: how many encoder frames a clip needs.

Whisper's encoder always sees a 30 s window; most of it is padding for a short clip. A model
adapted with ``--dynamic-context`` has learnt to work on its speech plus a margin, rounded
up to a bucket, and records that in ``config.adaptwin["context"]``; every other model gets
the full window. Pure arithmetic on configs: the runtime uses it without PyTorch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from ..errors import InvalidInput

CONTEXTS = ("auto", "full")
# seconds a dynamic-context model hears after the audio when it transcribes (at least; its own
# margin if longer): chosen on the validation speakers, where short clips lost words at the
# 0.5 s margin of training and a longer one cost no measurable time (docs/experiments/runtime.md)
RUN_MARGIN = 1.5
HOP_SECONDS = 0.01  # one log-mel frame; the encoder halves the frames (conv stride 2)


@dataclass(frozen=True)
class AudioContext:
    """A model's dynamic context: encoder input cut to the audio plus ``margin`` seconds,
    rounded up to whole ``bucket`` seconds (few distinct shapes: engines and caches see a
    handful of lengths, not one per clip), at least one bucket."""

    bucket: float = 1.0
    margin: float = 0.5

    def __post_init__(self) -> None:
        if not self.bucket > 0:
            raise InvalidInput(f"context bucket={self.bucket} seconds must be > 0")
        if not self.margin >= 0:
            raise InvalidInput(f"context margin={self.margin} seconds must be >= 0")

    def seconds(self, audio_seconds: float, window: float) -> float:
        """The context for ``audio_seconds`` of audio: never shorter than the audio plus the
        margin, never longer than the ``window``."""
        buckets = max(1, math.ceil((audio_seconds + self.margin) / self.bucket - 1e-9))
        return min(window, buckets * self.bucket)

    def to_dict(self) -> dict[str, Any]:
        return {"dynamic": True, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "AudioContext | None":
        if not d or not d.get("dynamic"):
            return None
        return cls(**{k: float(d[k]) for k in ("bucket", "margin") if k in d})


def model_context(config: Any) -> AudioContext | None:
    """The dynamic context a model was adapted for (None: full 30 s windows only)."""
    meta = getattr(config, "adaptwin", None) or {}
    return AudioContext.from_dict(meta.get("context"))


def encoder_frames(config: Any, audio_seconds: float, context: str = "auto", margin: float = 0.0) -> int:
    """Log-mel frames to feed the encoder for a clip (or a batch's longest clip) of
    ``audio_seconds``: the full window unless ``context`` is "auto" and the model supports a
    dynamic one, then at least ``margin`` seconds after the audio (the model's own margin
    when that is longer). Always even (the encoder's stride) and at most the full window."""
    if context not in CONTEXTS:
        raise InvalidInput(f"context={context!r}: choose one of {', '.join(CONTEXTS)}")
    full = 2 * int(config.max_source_positions)
    dynamic = model_context(config) if context == "auto" else None
    if dynamic is None:
        return full
    if margin > dynamic.margin:
        dynamic = replace(dynamic, margin=margin)
    seconds = dynamic.seconds(audio_seconds, full * HOP_SECONDS)
    frames = int(round(seconds / HOP_SECONDS))
    return min(full, frames + frames % 2)
