"""Model-free Whisper decoding in NumPy: prompt, logit rules, greedy and beam search.

Any engine plugs in through ``Stepper``: ``step(tokens, state) -> (logits, state)`` runs
the decoder over new tokens with its KV cache, ``reorder(state, rows)`` picks cache rows
(for beams). The rules follow openai/whisper's decoding.py: suppressed tokens, blank/EOT
suppressed at the first step, and the timestamp rules when timestamps are on.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidInput

NEG = -np.inf
TASKS = ("transcribe", "translate")  # translate: into English
PREFILL_CHUNK = 32  # prompt tokens per decoder call: only the last position's logits are used, and a
# whole long prompt (previous text + forced prefix, up to ~300 tokens) at once would materialise
# logits [N, T, 51865] (~60 MB for T=300, several times that inside an int8 graph)


class Stepper(Protocol):
    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """tokens int64 [N, T] (new tokens only) -> logits [N, T, V] and the updated state.
        A stepper whose ``positions`` attribute is true also takes ``at`` [K] (int64), the
        positions whose logits to return: [N, K, V]."""
        ...

    def reorder(self, state: Any, rows: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class Vocab:
    """The special tokens decoding needs (from a generation config)."""

    eot: int
    sot_prompt: tuple[int, ...]  # e.g. (<|startoftranscript|>, <|en|>, <|transcribe|>)
    no_timestamps: int | None
    timestamp_begin: int | None  # id of <|0.00|>
    suppress: tuple[int, ...] = ()
    begin_suppress: tuple[int, ...] = ()
    no_speech: int | None = None  # <|nospeech|> (<|nocaptions|> in older vocabularies)

    def prompt(
        self, timestamps: bool = False, previous: list[int] | None = None, prev_token: int | None = None
    ) -> list[int]:
        """Decoder prompt: optional previous-text context, the start sequence, <|notimestamps|>."""
        head = [prev_token, *previous[-223:]] if previous and prev_token is not None else []
        tail = [] if timestamps or self.no_timestamps is None else [self.no_timestamps]
        return head + list(self.sot_prompt) + tail

    @classmethod
    def from_generation_config(cls, gen: Any, language: str | None = "en", task: str = "transcribe") -> Vocab:
        if task not in TASKS:
            raise InvalidInput(f"task={task!r}: choose one of {', '.join(TASKS)}")
        if task == "translate" and task not in (getattr(gen, "task_to_id", None) or {}):
            raise InvalidInput("an English-only model cannot translate: use a multilingual one such as base")
        start = [gen.decoder_start_token_id]
        if getattr(gen, "is_multilingual", False):
            lang_ids = getattr(gen, "lang_to_id", {}) or {}
            if language is not None:
                code = language if language.startswith("<|") else f"<|{language}|>"
                if code not in lang_ids:
                    raise InvalidInput(f"language {language!r} is not one of this model's languages")
                start.append(lang_ids[code])
            task_ids = getattr(gen, "task_to_id", {}) or {}
            if task in task_ids:
                start.append(task_ids[task])
        no_ts = getattr(gen, "no_timestamps_token_id", None)
        eot = gen.eos_token_id if isinstance(gen.eos_token_id, int) else gen.eos_token_id[0]
        # <|nospeech|> sits just before <|notimestamps|> in every Whisper vocabulary (transformers
        # finds it the same way)
        return cls(
            eot=eot,
            sot_prompt=tuple(start),
            no_timestamps=no_ts,
            timestamp_begin=None if no_ts is None else no_ts + 1,
            no_speech=None if no_ts is None else no_ts - 1,
            suppress=tuple(getattr(gen, "suppress_tokens", None) or ()),
            begin_suppress=tuple(getattr(gen, "begin_suppress_tokens", None) or ()),
        )


def language_tokens(gen: Any) -> dict[str, int]:
    """{"en": id of <|en|>, ...}: a multilingual model's language tokens (none for an English-only one)."""
    if not getattr(gen, "is_multilingual", False):
        return {}
    return {code.removeprefix("<|").removesuffix("|>"): i for code, i in (getattr(gen, "lang_to_id", {}) or {}).items()}


def language_probs(stepper: Stepper, state: Any, batch: int, sot: int, ids: list[int]) -> np.ndarray:
    """openai/whisper's language detection: the decoder's distribution right after
    <|startoftranscript|>, over the language tokens ``ids`` alone. -> [B, len(ids)]; ``state``
    is left as it was (a stepper returns a new state)."""
    logits, _ = prefill(stepper, state, np.full((batch, 1), sot, dtype=np.int64))  # [B, V]
    return np.exp(_log_softmax(logits[:, ids]))


@dataclass(frozen=True)
class DecodingOptions:
    beam_size: int = 1
    max_new_tokens: int = 220
    timestamps: bool = False
    max_initial_timestamp: float = 1.0  # seconds; the first timestamp may not be later
    length_penalty: float | None = None  # None: rank finished beams by mean log-probability

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise InvalidInput(f"beam_size must be >= 1, got {self.beam_size}")
        if self.max_new_tokens < 1:
            raise InvalidInput(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Hypothesis:
    tokens: list[int] = field(default_factory=list)  # generated tokens, without the prompt or EOT
    logprob: float = 0.0
    finished: bool = False
    no_speech_prob: float = 0.0  # P(<|nospeech|>) right after <|startoftranscript|>, as openai/whisper
    # log-probability of each generated token after the forced prefix (greedy decoding; empty for beams)
    token_logprobs: list[float] = field(default_factory=list)
    language: str | None = None  # the language decoded in (detected when none was given); None: unknown
    language_prob: float | None = None  # the detection's probability of it (None: given, not detected)

    @property
    def avg_logprob(self) -> float:
        """Mean log-probability per generated token, EOT included (openai/whisper's measure)."""
        return self.logprob / (len(self.tokens) + 1)

    def failed(self, text: str) -> bool:
        """openai/whisper's test of a failed decode: repetitive (a loop) or unlikely text."""
        return compression_ratio(text) > MAX_COMPRESSION_RATIO or self.avg_logprob < MIN_AVG_LOGPROB


# openai/whisper's thresholds for a failed decode: repetitive text or an unlikely one
MAX_COMPRESSION_RATIO, MIN_AVG_LOGPROB = 2.4, -1.0


def compression_ratio(text: str) -> float:
    """Bytes / gzip-compressed bytes: high for looping, repetitive output."""
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


def apply_rules(logits: np.ndarray, generated: list[list[int]], vocab: Vocab, options: DecodingOptions) -> np.ndarray:
    """Mask forbidden next tokens in-place. logits [N, V] float32; generated: tokens so far per row."""
    if vocab.suppress:
        logits[:, list(vocab.suppress)] = NEG
    if vocab.no_timestamps is not None:
        logits[:, vocab.no_timestamps] = NEG
    for row, tokens in enumerate(generated):
        if not tokens and vocab.begin_suppress:
            logits[row, list(vocab.begin_suppress)] = NEG
        if options.timestamps and vocab.timestamp_begin is not None:
            _timestamp_rules(logits[row], tokens, vocab, options)
    return logits


def _timestamp_rules(row: np.ndarray, tokens: list[int], vocab: Vocab, options: DecodingOptions) -> None:
    begin = vocab.timestamp_begin
    last = len(tokens) >= 1 and tokens[-1] >= begin
    penultimate = len(tokens) < 2 or tokens[-2] >= begin
    if last:
        if penultimate:  # a pair just closed: text (or EOT) must follow
            row[begin:] = NEG
        else:  # an open timestamp: another timestamp or EOT must follow
            row[: vocab.eot] = NEG
    stamps = [t for t in tokens if t >= begin]
    if stamps:  # timestamps never go backwards (and a closed pair needs a strictly later one)
        floor = stamps[-1] if last and not penultimate else stamps[-1] + 1
        row[begin:floor] = NEG
    if not tokens:  # the first token is a timestamp no later than max_initial_timestamp
        row[:begin] = NEG
        row[begin + int(round(options.max_initial_timestamp / 0.02)) + 1 :] = NEG
    logprobs = _log_softmax(row)
    if np.logaddexp.reduce(logprobs[begin:]) > logprobs[:begin].max():
        row[:begin] = NEG  # timestamps together are likelier than any single text token


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis, in x's precision: [N, V] -> [N]."""
    top = x.max(axis=-1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=-1))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    top = x.max(axis=-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


def decode(
    stepper: Stepper,
    state: Any,
    batch: int,
    prompt: list[int],
    vocab: Vocab,
    options: DecodingOptions,
    prefix: list[int] | tuple[int, ...] = (),
) -> list[Hypothesis]:
    """Best hypothesis per input row (``state`` holds ``batch`` rows of encoder output).
    ``prefix``: tokens forced at the start of every hypothesis (already decided text);
    they are fed with the prompt in one step and count as generated for the rules.
    Each hypothesis carries its ``no_speech_prob`` for the caller's gate."""
    prompt = list(prompt) + list(prefix)
    tokens = np.tile(np.asarray(prompt, dtype=np.int64), (batch, 1))  # [B, T]
    no_speech = np.zeros(batch)
    if vocab.no_speech is not None and vocab.sot_prompt[0] in prompt:
        logits, state, at_sot = prefill(stepper, state, tokens, at=prompt.index(vocab.sot_prompt[0]))  # [B, V] each
        if vocab.no_speech < at_sot.shape[-1]:
            no_speech = np.exp(_log_softmax(at_sot)[:, vocab.no_speech])  # [B]
    else:
        logits, state = prefill(stepper, state, tokens)
    search = _greedy if options.beam_size == 1 else _beam
    hyps = search(stepper, state, logits, batch, vocab, options, list(prefix))
    for h, p in zip(hyps, no_speech):
        h.no_speech_prob = float(p)
    return hyps


def prefill(stepper: Stepper, state: Any, tokens: np.ndarray, at: int | None = None):
    """Run the decoder over the prompt ``tokens`` [N, T]: in one call for a stepper that
    projects only the positions asked for, else in chunks of ``PREFILL_CHUNK``. Returns the
    logits of the last position [N, V] and the state after the whole prompt, and with ``at``
    also the logits at position ``at`` [N, V]."""
    if getattr(stepper, "positions", False):
        last = tokens.shape[1] - 1
        logits, state = stepper.step(tokens, state, at=np.asarray([last] if at is None else [at, last], np.int64))
        return (logits[:, -1], state) if at is None else (logits[:, -1], state, logits[:, 0])
    kept = None
    for start in range(0, tokens.shape[1], PREFILL_CHUNK):
        logits, state = stepper.step(tokens[:, start : start + PREFILL_CHUNK], state)
        if at is not None and start <= at < start + PREFILL_CHUNK:
            kept = logits[:, at - start]
    if at is None:
        return logits[:, -1], state
    return logits[:, -1], state, kept


def _greedy(stepper, state, logits, batch, vocab, options, prefix) -> list[Hypothesis]:
    """``logits`` [B, V]: the prompt's last position (already prefilled into ``state``)."""
    hyps = [Hypothesis(list(prefix)) for _ in range(batch)]
    tokens = None  # [B, 1]: each step's choice, fed to the next step
    for i in range(options.max_new_tokens):
        if i:
            logits, state = stepper.step(tokens, state)
            logits = logits[:, -1]
        last = apply_rules(logits.astype(np.float32), [h.tokens for h in hyps], vocab, options)
        best = last.argmax(axis=-1)  # [B]
        # only the chosen token's log-probability is needed: no [B, V] float64 log-softmax per step
        chosen = last[np.arange(batch), best] - _logsumexp(last)  # [B]
        for h, tok, lp in zip(hyps, best, chosen):
            if h.finished:
                continue
            h.logprob += float(lp)
            if tok == vocab.eot:
                h.finished = True
            else:
                h.tokens.append(int(tok))
                h.token_logprobs.append(float(lp))
        if all(h.finished for h in hyps):
            break
        tokens = np.where([h.finished for h in hyps], vocab.eot, best)[:, None].astype(np.int64)  # [B, 1]
    return hyps


def _beam(stepper, state, logits, batch, vocab, options, prefix) -> list[Hypothesis]:
    k = options.beam_size
    # the prompt ran once per input; its state and last logits are copied to the K beams
    expand = np.repeat(np.arange(batch), k)  # rows: audio-major, beam-minor
    state, logits = stepper.reorder(state, expand), logits[expand]
    beams = [[Hypothesis(list(prefix), logprob=0.0 if j == 0 else NEG) for j in range(k)] for _ in range(batch)]
    done: list[list[Hypothesis]] = [[] for _ in range(batch)]
    tokens = None  # [B*K, 1]: each step's choices, fed to the next step
    for i in range(options.max_new_tokens):
        if i:
            logits, state = stepper.step(tokens, state)
            logits = logits[:, -1]
        flat = [h for row in beams for h in row]
        logprobs = _log_softmax(apply_rules(logits.astype(np.float32), [h.tokens for h in flat], vocab, options))
        rows, nxt = [], []
        for b in range(batch):
            if len(done[b]) >= k:  # this audio is finished: keep feeding its first beam
                rows += [b * k] * k
                nxt += [vocab.eot] * k
                continue
            scores = np.array([h.logprob for h in beams[b]])[:, None] + logprobs[b * k : (b + 1) * k]  # [K, V]
            order = top_indices(scores, 2 * k)
            new = []
            for idx in order:
                j, tok = divmod(int(idx), scores.shape[1])
                if not np.isfinite(scores[j, tok]):
                    break
                hyp = Hypothesis(
                    beams[b][j].tokens + ([] if tok == vocab.eot else [tok]), float(scores[j, tok]), tok == vocab.eot
                )
                if hyp.finished:
                    if len(done[b]) < k:
                        done[b].append(hyp)
                else:
                    new.append((j, tok, hyp))
                if len(new) == k:
                    break
            while len(new) < k:  # keep K rows even when candidates run out
                new.append((0, vocab.eot, Hypothesis(list(prefix), logprob=NEG)))
            beams[b] = [h for _, _, h in new]
            rows += [b * k + j for j, _, _ in new]
            nxt += [t for _, t, _ in new]
        if all(len(d) >= k for d in done):
            break
        state = stepper.reorder(state, np.asarray(rows))
        tokens = np.asarray(nxt, dtype=np.int64)[:, None]
    best = []
    for b in range(batch):
        pool = done[b] or [h for h in beams[b] if np.isfinite(h.logprob)]
        best.append(max(pool, key=lambda h: _rank(h, options.length_penalty)))
    return best


def top_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the ``n`` largest ``scores``, largest first. A partition then a sort of
    the few: fully sorting [K, V] (~260k for 5 beams) took longer than a decoder step."""
    flat = scores.ravel()
    if n >= flat.size:
        return np.argsort(-flat, kind="stable")
    top = np.argpartition(-flat, n - 1)[:n]
    return top[np.argsort(-flat[top], kind="stable")]


def _rank(h: Hypothesis, penalty: float | None) -> float:
    length = len(h.tokens) + 1  # (a forced prefix adds the same length to every beam)
    return h.logprob / (length if penalty is None else ((5 + length) / 6) ** penalty)
