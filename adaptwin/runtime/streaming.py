"""Streaming transcription: a model-free commit policy and an online processor.

``LocalAgreement(n)`` commits the longest common prefix of the last ``n`` hypotheses
(whisper_streaming's policy). ``OnlineProcessor`` decodes the growing audio buffer with the
words already committed in it *forced* as the decoder's prefix, so each hypothesis only
continues the decided text: hypotheses line up without relying on word times, and every
decode generates only the undecided tail. The buffer is cut at committed segment ends (a
timestamp closing a segment), and never grows past ``max_buffer`` seconds however long the
stream runs; text before the buffer is the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import InvalidInput
from ..models.context import HOP_SECONDS
from . import heap
from .decoding import Hypothesis, Vocab
from .gate import NoSpeechGate
from .segments import SECONDS_PER_TIMESTAMP, Word, ends_repeated, loop_index


class LocalAgreement:
    """Commit the items on which the last ``n`` hypotheses agree.

    Each hypothesis is the sequence that *continues after everything already committed*;
    items are compared by ``key``. Returned items come from the newest hypothesis.
    """

    def __init__(self, n: int = 2, key: Callable[[Any], Hashable] = lambda item: item) -> None:
        if n < 1:
            raise InvalidInput(f"LocalAgreement needs n >= 1, got {n}")
        self.n, self.key = n, key
        self.history: list[list] = []

    def update(self, continuation: list, ready: int | None = None) -> list:
        """Add the newest hypothesis; return the agreed items, at most its first ``ready``
        (None: all). Items past ``ready`` still count for the agreement with the next one."""
        self.history = (self.history + [list(continuation)])[-self.n :]
        if len(self.history) < self.n:
            return []
        k = 0
        while all(k < len(h) for h in self.history) and len({self.key(h[k]) for h in self.history}) == 1:
            k += 1
        if ready is not None:
            k = min(k, max(0, ready))
        agreed = self.history[-1][:k]
        self.history = [h[k:] for h in self.history]
        return agreed

    def pending(self) -> list:
        """The newest hypothesis beyond what is committed (shown as tentative)."""
        return list(self.history[-1]) if self.history else []

    def flush(self) -> list:
        """End of stream (or of an utterance): commit what the newest hypothesis still holds."""
        items = self.pending()
        self.history = []
        return items

    def reset(self) -> None:
        self.history = []


@dataclass(frozen=True)
class Unit:
    """One word of a hypothesis with the timestamp tokens that precede it."""

    tokens: tuple[int, ...]
    word: Word  # absolute (estimated) times

    @property
    def key(self) -> str:
        return self.word.key


def units_of(
    tokens: list[int],
    boundary: int,
    timestamp_begin: int,
    decode: Callable[[list[int]], str],
    offset: float,
    window: float,
) -> list[Unit]:
    """Words of ``tokens`` (Whisper output with timestamps), those from index ``boundary``
    on. Times: each segment's span shared among its words by character count."""
    groups: list[list[int]] = []  # token indices of each unit: leading timestamps + one word
    pieces = [decode([t]) if t < timestamp_begin else "" for t in tokens]
    lead: list[int] = []
    for i, t in enumerate(tokens):
        if t >= timestamp_begin:
            lead.append(i)
        elif lead or not groups or pieces[i].startswith(" ") or i == boundary:
            groups.append(lead + [i])
            lead = []
        else:
            groups[-1].append(i)
    spans = _segment_spans(tokens, timestamp_begin, window)
    chars = [sum(len(pieces[i].strip()) for i in g) for g in groups]
    units = []
    for seg_start, seg_end, members in _by_segment(groups, spans):
        total = sum(chars[g] for g in members) or 1
        at = seg_start
        for g in members:
            length = (seg_end - seg_start) * chars[g] / total
            if groups[g][-1] >= boundary:
                text = "".join(pieces[i] for i in groups[g])
                word = Word(
                    round(offset + at, 3), round(offset + at + length, 3), text if text.startswith(" ") else " " + text
                )
                units.append(Unit(tuple(tokens[i] for i in groups[g]), word))
            at += length
    return units


def _segment_spans(tokens: list[int], begin: int, window: float) -> list[tuple[int, float, float]]:
    """(first token index, start, end) of each segment; an open last segment ends at the window end."""
    spans, start, first, text = [], 0.0, 0, False
    for i, t in enumerate(tokens):
        if t < begin:
            text = True
            continue
        time_ = (t - begin) * SECONDS_PER_TIMESTAMP
        if text:  # closes the segment
            spans.append((first, start, time_))
            text = False
            first = i + 1
        else:  # opens one
            start, first = time_, i
    if text:
        spans.append((first, start, max(window, start)))
    return spans


def _by_segment(groups: list[list[int]], spans: list[tuple[int, float, float]]):
    """Yield (start, end, unit indices) per segment; units are placed by their last token."""
    if not spans:
        return
    bounds = [s[0] for s in spans[1:]] + [10**9]
    members: list[list[int]] = [[] for _ in spans]
    j = 0
    for g, idx in enumerate(groups):
        while idx[-1] >= bounds[j]:
            j += 1
        members[j].append(g)
    for (_, start, end), m in zip(spans, members):
        if m:
            yield start, max(end, start), m


def repeat_start(words: list[str], new: int, times: int = 2) -> int | None:
    """Index of the first of the last ``new`` ``words`` that starts saying the 2+ words before
    it again, for the ``times``-th time in a row, within the new words (None: none does)."""
    first = len(words) - new
    for end in range(first + 1, len(words) + 1):
        if p := ends_repeated(" ".join(words[:end]), end - first, times):
            return end - p
    return None


def loop_start(units: list) -> int | None:
    """Index where a decoding loop becomes one (``segments.loop_index`` on the units' words)."""
    return loop_index([u.key for u in units])


@dataclass
class Emitted:
    """A committed word and when the processor committed it."""

    word: Word
    stream_time: float  # seconds of audio received when it was committed
    wall_time: float  # time.perf_counter() at commit


# The streaming policy measured for a model whose encoder sees its buffer's length
# (docs/experiments/streaming.md, chosen on validation speakers): its decodes cost the buffer,
# not a 30 s window, so it decodes more often, makes the words final at a shorter pause, keeps
# the audio over that pause as context, and does not commit a word its buffer may have cut.
# Other models keep ``OnlineProcessor``'s defaults. ``confidence`` stays off: measured, the
# words it saved cost more latency than the targets leave.
DYNAMIC_CONTEXT_POLICY = {
    "min_chunk": 0.35,
    "silence_flush": 0.3,
    "forget": 2.0,
    "trim_after": 6.0,
    "hold": 0.1,
    "confidence": 0.0,
    "unsure_hold": 0.0,
}


def policy_for(backend: Any) -> dict[str, float]:
    """``OnlineProcessor`` options measured for ``backend``'s model: ``DYNAMIC_CONTEXT_POLICY``
    when a one-second buffer gets a cut context (the model learnt a dynamic context and the
    backend runs it so), else none."""
    dynamic = backend.frames([np.zeros(SAMPLE_RATE, np.float32)]) is not None
    return dict(DYNAMIC_CONTEXT_POLICY) if dynamic else {}


_SAMPLE = 1 / SAMPLE_RATE


def _word_probabilities(hyp: Hypothesis, boundary: int, units: list[Unit], timestamp_begin: int) -> list[float]:
    """Per unit (the words of ``hyp.tokens`` from index ``boundary`` on, in order): the
    probability of its least likely text token; 1.0 where the decoder gave none (beam search)."""
    logprobs = hyp.token_logprobs
    if len(logprobs) != len(hyp.tokens) - boundary:
        return [1.0] * len(units)
    out, at = [], 0
    for u in units:
        text = [lp for t, lp in zip(u.tokens, logprobs[at : at + len(u.tokens)]) if t < timestamp_begin]
        out.append(float(np.exp(min(text))) if text else 1.0)
        at += len(u.tokens)
    return out


def _reached(seconds: float, target: float) -> bool:
    """``seconds`` (a sum of frame lengths) reaches ``target`` within half a sample: ten 0.1 s
    frames add up to 0.9999999999999999."""
    return seconds > target - _SAMPLE / 2


@dataclass
class OnlineProcessor:
    backend: Any  # StepperBackend
    language: str | None = "en"  # None: a multilingual model's detected one, fixed by the first committed words
    agreement: int = 2
    min_chunk: float = 0.5  # seconds of new audio before decoding again
    trim_after: float = 10.0  # cut the buffer at a committed segment end once it is longer than this
    max_buffer: float = 28.0  # hard bound on the decoded window
    vad: Any = None  # .speech(chunk) -> bool; silence is not decoded
    silence_flush: float = 0.6  # commit the pending words after this much silence
    vad_frame: float = 0.1  # the VAD judges frames this long, so a pause is timed within a frame, not a chunk
    # forced tokens that make the buffer be cut (None: a third of the decoder's positions)
    max_prefix: int | None = None
    trim_heap: bool = True  # return freed heap pages to the OS after each decode (flat RSS over hours)
    gate: NoSpeechGate | None = field(default_factory=NoSpeechGate)  # decodes the model calls silent commit nothing
    # while the audio's last frame is speech, a word the newest hypothesis ends within this
    # many seconds of the audio's end is not committed yet, though it counts for the agreement
    # with the next hypothesis: the buffer may end inside it, and two decodes a short chunk
    # apart guess a cut word (and a full stop after it) alike. A silent last frame ends no
    # word: then nothing is held (0: off)
    hold: float = 0.0
    # a word any of whose tokens the newest (greedy) hypothesis gave a probability below this is
    # not committed yet either, though it counts for the agreement: two decodes on a buffer that
    # ends inside or just after a word can agree on a guess they are both unsure of. A pause
    # (``silence_flush``) still makes it final (0: off)
    confidence: float = 0.0
    # such a word waits only while it ends within this many seconds of the audio's end, a longer
    # hold than ``hold``: more audio after it, not a pause, decides it (0: a surer decode or a pause)
    unsure_hold: float = 0.0
    # a dynamic-context model hears this much silence after the buffer (within its 30 s
    # window): the padding that tells a decoder where the audio ends (0: only the model's
    # margin). Chosen on validation speakers: far fewer looping hypotheses (each one decoded
    # again on the whole window), the same WER (docs/experiments/streaming.md)
    pad: float = 5.0
    # after this much silence the buffer starts afresh (its text stays the prompt). A shorter
    # pause (>= silence_flush) commits the pending words but keeps the audio, so the words after
    # a pause inside a sentence are decoded with the speech before them (None: silence_flush)
    forget: float | None = None
    # characters of committed text before the buffer given as the decoder's prompt: each decode
    # runs the decoder over the prompt and the forced prefix before its first new token
    prompt_chars: int = 400
    policy: LocalAgreement = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.min_chunk < self.max_buffer <= 30.0:
            raise InvalidInput("need 0 < min_chunk < max_buffer <= 30 seconds")
        if not (self.silence_flush > 0 and self.vad_frame > 0):
            raise InvalidInput("need silence_flush > 0 and vad_frame > 0 seconds")
        if not 0 <= self.hold < self.max_buffer:
            raise InvalidInput(f"hold={self.hold} seconds must lie in [0, max_buffer)")
        if not 0 <= self.confidence < 1:
            raise InvalidInput(f"confidence={self.confidence} must be a probability in [0, 1)")
        if not 0 <= self.unsure_hold < self.max_buffer:
            raise InvalidInput(f"unsure_hold={self.unsure_hold} seconds must lie in [0, max_buffer)")
        if not 0 <= self.pad <= 30.0:
            raise InvalidInput(f"pad={self.pad} seconds must lie in [0, 30] (the window)")
        if not 0 < self.trim_after <= self.max_buffer:
            raise InvalidInput(f"trim_after={self.trim_after} seconds must lie in (0, max_buffer={self.max_buffer}]")
        if self.prompt_chars < 0:
            raise InvalidInput(f"prompt_chars={self.prompt_chars} must be >= 0 (0: no prompt)")
        if self.forget is None:
            self.forget = self.silence_flush
        if self.forget < self.silence_flush:
            raise InvalidInput(f"forget={self.forget} seconds must be at least silence_flush={self.silence_flush}")
        self.policy = LocalAgreement(self.agreement, key=lambda unit: unit.key)
        self.vocab = Vocab.from_generation_config(self.backend.engine.generation_config, self.language)
        if self.vocab.timestamp_begin is None:
            raise InvalidInput("streaming needs a model with timestamp tokens")
        self.tokenizer = self.backend.engine.processor.tokenizer
        if self.max_prefix is None:
            self.max_prefix = self.backend.engine.config.max_target_positions // 3
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0.0  # stream time of buffer[0]
        self.received = 0.0  # stream time of the end of received audio
        self.unprocessed = 0.0  # seconds received since the last decode
        self.silence = 0.0  # trailing silence, seconds
        self.prefix: list[int] = []  # committed tokens of the buffer (timestamps relative to buffer_start)
        self.context = ""  # committed text before the buffer: the prompt
        self.last_word_end = 0.0  # stream time where the last committed word ends
        self.flushed = False  # a pause committed every pending word and no speech came since
        self.heard_end = False  # the newest hypothesis heard silence after the speech, and none came since
        self.heard_language: str | None = None  # the newest hypothesis' language (detected when not given)
        self.decodes = 0
        self.loops = 0  # hypotheses that looped (and were decoded again, then cut)
        self.sure: list[float] = []  # per word of the newest hypothesis: its least likely token's probability

    @classmethod
    def for_backend(cls, backend: Any, **options: Any) -> OnlineProcessor:
        """A processor with the policy measured for ``backend``'s model (``policy_for``); a
        policy option given as None keeps it. A ``silence_flush`` given beyond the measured
        ``forget`` drops that ``forget`` (the audio is then forgotten at the flush)."""
        given = {k: v for k, v in options.items() if v is not None or k not in DYNAMIC_CONTEXT_POLICY}
        policy = policy_for(backend)
        if "silence_flush" in given and "forget" not in given and policy.get("forget", 0) < given["silence_flush"]:
            policy.pop("forget", None)
        return cls(backend, **{**policy, **given})

    # --- input -------------------------------------------------------------------------
    def insert_audio(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        step = max(1, int(self.vad_frame * SAMPLE_RATE))
        for frame in (chunk[i : i + step] for i in range(0, len(chunk), step)):
            seconds = len(frame) / SAMPLE_RATE
            self.received += seconds
            if self.gate is not None and self.gate.silent(frame):
                speech = False  # digital silence, whatever the VAD
            else:
                speech = True if self.vad is None else bool(self.vad.speech(frame))
            self.silence = 0.0 if speech else self.silence + seconds
            if speech:
                self.flushed = self.heard_end = False
            if not speech and len(self.buffer) == 0:
                self.buffer_start = self.received  # leading silence is never decoded
                continue
            self.buffer = np.concatenate([self.buffer, frame])
            self.unprocessed += seconds

    # --- decoding ----------------------------------------------------------------------
    def needed(self) -> float:
        """Seconds of audio still to come before ``process`` may have work (0: it has some now),
        whatever that audio is, so a loop can call it as soon as there is: a ``min_chunk`` of new
        audio, or, while the audio ends in silence, the rest of the pause that makes the words
        final (timed to a VAD frame, not to the next chunk)."""
        if len(self.buffer) == 0:
            return self.min_chunk  # nothing to decode until speech comes
        chunk = self.min_chunk - self.unprocessed
        if self.vad is not None and self.silence > 0:
            # the next pause mark if the silence goes on; speech would need the chunk
            chunk = min(chunk, (self.forget if self.flushed else self.silence_flush) - self.silence)
        return chunk if chunk > _SAMPLE / 2 else 0.0

    def process(self) -> list[Emitted]:
        """Decode if enough new audio arrived, or make the words final at a pause; returns newly
        committed words."""
        if len(self.buffer) == 0:
            return []
        if self.vad is not None and _reached(self.silence, self.silence_flush):
            return self._pause()
        if not _reached(self.unprocessed, self.min_chunk):
            return []
        units = self._decode()
        emitted = self._commit(self.policy.update(units, ready=self._settled(units)))
        return emitted + self._trim()

    def _settled(self, units: list[Unit]) -> int | None:
        """How many of the hypothesis' words may be committed: those before its first word that
        ends within ``hold`` of the audio's end, when that end is speech, or that it is less
        sure of than ``confidence`` (and, with ``unsure_hold``, that ends within it of the end);
        None: all."""
        ready = None
        if self.hold and self.silence == 0:
            limit = self.received - self.hold
            ready = next((i for i, u in enumerate(units) if u.word.end > limit), len(units))
        if self.confidence:
            limit = self.received - self.unsure_hold if self.unsure_hold else float("-inf")
            unsure = next(
                (i for i, (u, p) in enumerate(zip(units, self.sure)) if p < self.confidence and u.word.end > limit),
                len(units),
            )
            ready = unsure if ready is None else min(ready, unsure)
        return ready

    def _pause(self) -> list[Emitted]:
        """Silence of at least ``silence_flush``: the pending words are final; the audio is
        kept until the silence reaches ``forget``."""
        if _reached(self.silence, self.forget):
            return self.finish()
        if self.flushed:  # nothing said since the words were committed: nothing to decode
            self.unprocessed = 0.0
            return self._trim()
        return self._final()

    def _final(self) -> list[Emitted]:
        """Decode what is new and commit everything pending."""
        emitted = []
        # a newest hypothesis that already heard the speech end is final as it is: decoding the
        # silence after it again only delays the final text
        new = self.unprocessed > 0 and not (self.heard_end and self.policy.history)
        if len(self.buffer) and not self.flushed and (new or not self.policy.history):
            emitted = self._commit(self.policy.update(self._decode()))
        emitted += self._commit(self.policy.flush())
        self.flushed = True
        return emitted

    def finish(self) -> list[Emitted]:
        """End of stream or utterance: decode what is left, commit everything pending, and
        start a fresh buffer."""
        emitted = self._final()
        self._cut(self.received)
        self.unprocessed = 0.0
        self.flushed = False
        return emitted

    def pending_text(self) -> str:
        return "".join(u.word.text for u in self.policy.pending())

    def _decode(self) -> list[Unit]:
        """The newest hypothesis' words after the committed prefix."""
        window = self.buffer[-int(self.max_buffer * SAMPLE_RATE) :]
        seconds = len(window) / SAMPLE_RATE
        offset = self.received - seconds
        context = self.context[-self.prompt_chars :] if self.prompt_chars else ""
        if len(self.context) > self.prompt_chars and " " in context:
            context = context[context.find(" ") :]  # whole words
        prompt = self.tokenizer.encode(context, add_special_tokens=False) if context.strip() else None
        units = []
        heard = window
        # the streaming buffer hears ``pad`` instead of the backend's run margin: frames(margin=0)
        # keeps the model's own margin after it
        if self.pad and self.backend.frames([window], margin=0.0) is not None:  # dynamic context, short buffer
            whole = 2 * HOP_SECONDS * getattr(self.backend.engine.config, "max_source_positions", 1500)  # 30 s
            pad = int(min(self.pad, whole - seconds) * SAMPLE_RATE)
            heard = np.concatenate([window, np.zeros(max(0, pad), np.float32)])
        # a hypothesis that loops is decoded again without the prompt and with beam search
        # (openai/whisper's fallback), on the whole window; whatever still loops is cut after its
        # first period, so a loop is never committed, and so never forced into the following
        # decodes. New words that say the words before them again (the committed text
        # included) are a loop too: a decoder on a cut context that has run out of audio reads
        # its buffer again, and a prompt or prefix that ends with a sentence can make a decoder
        # on any context say it again, every decode once more.
        before = " ".join(self.context.split()[-40:]) + " "  # committed text the buffer no longer holds
        for previous, beams, full in ((prompt, 1, False), (None, 5, True)):
            hyp = self.backend.generate(
                [heard],
                language=self.language,
                timestamps=True,
                previous=previous,
                num_beams=beams,
                max_new_tokens=120,
                prefix=self.prefix,
                full_context=full,
                margin=0.0,
            )[0]
            self.decodes += 1
            units = units_of(
                list(hyp.tokens), len(self.prefix), self.vocab.timestamp_begin, self.tokenizer.decode, offset, seconds
            )
            loop = loop_start(units)
            text = self._text(hyp.tokens)
            words = (before + text).split()
            twice = not full and repeat_start(words, len(units)) is not None
            new = "".join(u.word.text for u in units)
            # a loop on the prompt is decoded again without it, whatever the no-speech probability
            failed = (loop is not None or twice) and previous is None
            silent = self.gate is not None and self.gate.no_speech(hyp, new, failed=failed)
            if (loop is None and not twice) or silent:
                break
            self.loops += 1
        if loop is not None:
            units = units[:loop]
        elif not silent and (third := repeat_start(words, len(units), times=3)) is not None:
            units = units[: third - (len(words) - len(units))]  # a third time in a row is a loop, whatever the decode
        if silent:
            units = []  # the model hears no speech: nothing to agree on (and no fallback decode)
        self.sure = _word_probabilities(hyp, len(self.prefix), units, self.vocab.timestamp_begin)
        self.heard_language = getattr(hyp, "language", None)
        self.unprocessed = 0.0
        self.heard_end = self.silence > 0
        if self.trim_heap:
            heap.trim()
        return units

    def _text(self, tokens) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.vocab.timestamp_begin])

    def _commit(self, units: list[Unit]) -> list[Emitted]:
        now = time.perf_counter()
        if units and self.language is None:  # detected: the first committed words fix it for the stream
            self.language = self.heard_language
        for u in units:
            self.prefix += list(u.tokens)
            self.last_word_end = u.word.end
        return [Emitted(u.word, self.received, now) for u in units]

    def _trim(self) -> list[Emitted]:
        """Once the buffer is long, cut it at the last committed segment end; never let it
        pass ``max_buffer`` (failing a segment end, cut after the last committed word, and
        if nothing was committed for that long, commit the pending words up to the cut)."""
        length = len(self.buffer) / SAMPLE_RATE
        if len(self.prefix) > self.max_prefix:
            # forced text and the prompt share the decoder's positions (448 in Whisper): a long
            # committed run (fast speech, or a hallucination that got committed) must not fill them
            self._cut(self.last_word_end)
            return []
        if length <= self.trim_after:
            return []
        begin = self.vocab.timestamp_begin
        closes = [i for i, t in enumerate(self.prefix) if t >= begin and i > 0 and self.prefix[i - 1] < begin]
        if closes:
            i = closes[-1]
            self._cut(self.buffer_start + (self.prefix[i] - begin) * SECONDS_PER_TIMESTAMP, keep_from=i + 1)
            return []
        if length < self.max_buffer - self.min_chunk:
            return []
        emitted = []
        if not self.prefix:  # nothing decided for a whole window: decide what the newest hypothesis says
            emitted = self._commit(self.policy.flush())
        self._cut(self.received if not self.prefix else self.last_word_end)
        return emitted

    def _cut(self, at: float, keep_from: int | None = None) -> None:
        """Drop buffer audio before stream time ``at``. Committed tokens after ``keep_from``
        stay forced (timestamps moved to the new start); the rest become prompt context."""
        at = min(max(at, self.buffer_start), self.received)
        shift = int(round((at - self.buffer_start) / SECONDS_PER_TIMESTAMP))
        begin = self.vocab.timestamp_begin
        kept = self.prefix[keep_from:] if keep_from is not None else []
        done = self.prefix[:keep_from] if keep_from is not None else self.prefix
        self.context = (self.context + self.tokenizer.decode([t for t in done if t < begin]))[-2000:]
        self.prefix = [max(begin, t - shift) if t >= begin else t for t in kept]
        self.buffer = self.buffer[int(round((at - self.buffer_start) * SAMPLE_RATE)) :]
        self.buffer_start = at
        self.policy.reset()
