"""Frozen, validated compression options, serialised with a format version."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InvalidInput
from ..models.structure import FORMAT_VERSION, check_format

SCOPES = ("encoder", "decoder", "all")
BUDGET_BY = ("params", "time")
PROBES = ("logits", "kl")
ATTENTION_KINDS = ("encoder_self", "decoder_self", "cross")
TWINS = ("qk", "vo")


def _default_attention(scope: str) -> tuple[str, ...]:
    return {
        "encoder": ("encoder_self",),
        "decoder": ("decoder_self", "cross"),
        "all": ATTENTION_KINDS,
    }[scope]


@dataclass(frozen=True)
class AdaPTwinConfig:
    """What to compress and how hard.

    Give either ``budget`` (fraction of the scope's parameters to remove, or with
    ``budget_by="time"`` of the selected matmuls' time measured on ONNX Runtime; ranks are
    then allocated where they cost least error), ``max_ms`` (the selected matmuls' time per
    window, measured), or explicit ranks (``rank_qk``/``rank_vo`` for every selected
    attention, ``ranks`` per module name to override).
    """

    scope: str = "encoder"
    budget: float | None = None
    budget_by: str = "params"
    max_ms: float | None = None  # time budget: ms per window of the selected matmuls (see latency.py)
    tokens_per_window: int = 48  # decoded tokens per window when weighing decoder steps against the encoder
    rank_qk: int | None = None
    rank_vo: int | None = None
    rank_ffn: int | None = None  # with ffn=True and explicit ranks: the rank of every FFN matrix
    ranks: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    attention: tuple[str, ...] | None = None  # None: every attention kind inside `scope`
    twins: tuple[str, ...] = TWINS
    ffn: bool = False
    # the tied token embedding / output projection as one data-aware low-rank pair (decoder side)
    head: bool = False
    rank_head: int | None = None  # with head=True and explicit ranks: its rank
    # with head=True: the rows of this many of the most frequent tokens (``token_prior``) and the
    # special tokens stay dense, and the rank applies to the other rows only (0: one low-rank
    # pair for the whole vocabulary). Chosen on the validation speakers
    # (docs/experiments/compression.md)
    head_keep: int = 12000
    rank_step: int = 8  # attention ranks move in steps of this many per head
    ffn_rank_step: int = 32
    damping: float = 1e-4  # ridge added to calibration second moments, relative to mean diagonal
    # what the sensitivity probe compares with the dense model when the decoder is in scope:
    # "logits" (their relative error) or "kl" (the root of the mean KL divergence of the
    # next-token distributions, which ignores the tail of unlikely tokens the logits' error is
    # dominated by). The encoder scope always compares the encoder's output.
    probe: str = "logits"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise InvalidInput(f"unknown scope {self.scope!r}: choose one of {', '.join(SCOPES)}")
        if self.attention is None:
            object.__setattr__(self, "attention", _default_attention(self.scope))
        object.__setattr__(self, "attention", tuple(self.attention))
        object.__setattr__(self, "twins", tuple(self.twins))
        object.__setattr__(self, "ranks", {k: dict(v) for k, v in dict(self.ranks).items()})
        bad = [a for a in self.attention if a not in ATTENTION_KINDS]
        if bad:
            raise InvalidInput(f"unknown attention kind(s) {bad}: choose from {', '.join(ATTENTION_KINDS)}")
        bad = [t for t in self.twins if t not in TWINS]
        if bad or not self.twins:
            raise InvalidInput(f"twins must be a non-empty subset of {TWINS}, got {self.twins}")
        if self.budget_by not in BUDGET_BY:
            raise InvalidInput(f"budget_by={self.budget_by!r}: choose one of {', '.join(BUDGET_BY)}")
        if self.max_ms is not None:
            if not float(self.max_ms) > 0:
                raise InvalidInput(f"max_ms={self.max_ms} must be a positive number of milliseconds per window")
            if self.budget is not None:
                raise InvalidInput("give either budget (a fraction to remove) or max_ms (a time to reach), not both")
            object.__setattr__(self, "budget_by", "time")
        if not (isinstance(self.tokens_per_window, int) and self.tokens_per_window >= 1):
            raise InvalidInput(f"tokens_per_window={self.tokens_per_window!r} must be a positive integer")
        if self.budget is not None or self.max_ms is not None:
            if self.budget is not None and not (0.0 < float(self.budget) < 1.0):
                raise InvalidInput(
                    f"budget={self.budget} is the fraction of parameters to remove and must lie in (0, 1), "
                    "e.g. 0.3 to remove 30 %"
                )
            if any(r is not None for r in (self.rank_qk, self.rank_vo, self.rank_ffn, self.rank_head)) or self.ranks:
                raise InvalidInput(
                    "give either a budget (or max_ms) or explicit ranks (rank_qk/rank_vo/rank_ffn/ranks), not both"
                )
        elif all(r is None for r in (self.rank_qk, self.rank_vo, self.rank_ffn, self.rank_head)) and not self.ranks:
            raise InvalidInput(
                "nothing to do: give a budget (e.g. 0.3), a time (max_ms=) or explicit ranks (rank_qk=/rank_vo=)"
            )
        if (self.head or self.rank_head is not None) and self.scope == "encoder":
            raise InvalidInput(
                "the vocabulary head belongs to the decoder: use scope='decoder' or 'all' with head=True"
            )
        if self.rank_head is not None and not self.head:
            raise InvalidInput("rank_head was given but head=False: pass head=True (--head) to factorize the head")
        if self.rank_ffn is not None and not self.ffn:
            raise InvalidInput("rank_ffn was given but ffn=False: pass ffn=True (--ffn) to split the FFN matrices")
        for name, value in (
            ("rank_qk", self.rank_qk),
            ("rank_vo", self.rank_vo),
            ("rank_ffn", self.rank_ffn),
            ("rank_head", self.rank_head),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInput(f"{name}={value!r} must be a positive integer (at most the head width)")
        for module, r in self.ranks.items():
            for twin, value in r.items():
                if twin not in TWINS + ("ffn", "head") or not isinstance(value, int) or value < 1:
                    raise InvalidInput(f"ranks[{module!r}][{twin!r}]={value!r}: twin must be qk/vo/ffn/head, rank >= 1")
        if not (isinstance(self.head_keep, int) and self.head_keep >= 0):
            raise InvalidInput(f"head_keep={self.head_keep!r} must be a number of tokens >= 0 (0: no dense rows)")
        for name in ("rank_step", "ffn_rank_step"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be >= 1")
        if self.probe not in PROBES:
            raise InvalidInput(f"probe={self.probe!r}: choose one of {', '.join(PROBES)}")
        if self.probe == "kl" and self.scope == "encoder":
            raise InvalidInput(
                "probe='kl' compares the decoder's token distributions, but scope='encoder' probes the encoder's "
                "output: use scope='all' (or 'decoder'), or probe='logits'"
            )
        if not self.damping >= 0:
            raise InvalidInput(f"damping={self.damping} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["attention"] = list(self.attention)
        d["twins"] = list(self.twins)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AdaPTwinConfig":
        d = dict(d)
        version = d.pop("format_version", FORMAT_VERSION)
        check_format(version)
        if version < 3:
            d.setdefault("head_keep", 0)  # older heads were one low-rank pair
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known})
