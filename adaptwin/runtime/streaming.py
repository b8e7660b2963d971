"""Streaming transcription: a model-free commit policy and an online processor.

``LocalAgreement(n)`` commits the longest common prefix of the last ``n`` hypotheses
(whisper_streaming's policy). ``OnlineProcessor`` feeds growing audio to a backend, asks
the policy what is final, prompts with committed text, and trims its buffer at committed
segment ends (and, failing that, at the last committed word), so the window never exceeds
``max_buffer`` seconds however long the stream runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE
from .segments import Segment, Word, parse_window, words_of


class LocalAgreement:
    """Commit the words on which the last ``n`` hypotheses agree."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError(f"LocalAgreement needs n >= 1, got {n}")
        self.n = n
        self.history: list[list[Word]] = []
        self.committed_until = 0.0  # end time of the last committed word
        self._last_committed: list[Word] = []

    def update(self, hypothesis: list[Word]) -> list[Word]:
        """Feed the newest hypothesis (absolute times); returns the newly committed words."""
        fresh = [w for w in hypothesis if w.end > self.committed_until + 1e-3]
        fresh = _drop_repeated_head(fresh, self._last_committed, self.committed_until)
        self.history = (self.history + [fresh])[-self.n:]
        if len(self.history) < self.n:
            return []
        agreed = []
        for words in zip(*self.history):
            if len({w.key for w in words}) != 1:
                break
            agreed.append(words[-1])  # the newest hypothesis' times
        if agreed:
            self.committed_until = agreed[-1].end
            self._last_committed = (self._last_committed + agreed)[-4:]
            self.history = [h[len(agreed):] for h in self.history]
        return agreed

    def commit_until(self, time: float) -> list[Word]:
        """Force-commit the pending words that end by ``time`` (the buffer is cut there)."""
        words = [w for w in self.pending() if w.end <= time + 1e-3]
        if words:
            self.committed_until = words[-1].end
            self._last_committed = (self._last_committed + words)[-4:]
        self.history = []
        return words

    def pending(self) -> list[Word]:
        """The newest hypothesis beyond what is committed (shown as tentative)."""
        return list(self.history[-1]) if self.history else []

    def flush(self) -> list[Word]:
        """End of stream: commit what the newest hypothesis still holds."""
        words = self.pending()
        self.history = []
        if words:
            self.committed_until = words[-1].end
            self._last_committed = (self._last_committed + words)[-4:]
        return words

    def reset(self) -> None:
        self.history = []


def _drop_repeated_head(fresh: list[Word], committed: list[Word], until: float) -> list[Word]:
    """A hypothesis may restate the last committed words with shifted times: drop a head of
    ``fresh`` that repeats the tail of ``committed`` (up to 4 words) and starts before the
    committed end (a real repetition, later in time, is kept)."""
    for k in range(min(4, len(committed), len(fresh)), 0, -1):
        if fresh[0].start < until and [w.key for w in fresh[:k]] == [w.key for w in committed[-k:]]:
            return fresh[k:]
    return fresh


@dataclass
class Emitted:
    """A committed word and when the processor committed it."""

    word: Word
    stream_time: float  # seconds of audio received when it was committed
    wall_time: float  # time.perf_counter() at commit


@dataclass
class OnlineProcessor:
    backend: object  # StepperBackend
    language: str | None = "en"
    agreement: int = 2
    min_chunk: float = 0.5  # seconds of new audio before decoding again
    trim_after: float = 15.0  # try to trim the buffer once it is longer than this
    max_buffer: float = 28.0  # hard bound on the decoded window
    vad: object | None = None  # .speech(chunk) -> bool; silence is not decoded
    silence_flush: float = 0.6  # commit the pending words after this much silence
    policy: LocalAgreement = field(init=False)

    def __post_init__(self) -> None:
        from .decoding import Vocab

        if not 0 < self.min_chunk < self.max_buffer <= 30.0:
            raise ValueError("need 0 < min_chunk < max_buffer <= 30 seconds")
        self.policy = LocalAgreement(self.agreement)
        self.vocab = Vocab.from_generation_config(self.backend.engine.generation_config, self.language)
        self.tokenizer = self.backend.engine.processor.tokenizer
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0.0  # stream time of buffer[0]
        self.received = 0.0  # stream time of the end of received audio
        self.unprocessed = 0.0  # seconds received since the last decode
        self.silence = 0.0  # trailing silence, seconds
        self.committed: list[Word] = []
        self.segment_ends: list[float] = []  # ends of complete segments in the current hypothesis
        self.decodes = 0

    # --- input -------------------------------------------------------------------------
    def insert_audio(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        seconds = len(chunk) / SAMPLE_RATE
        self.received += seconds
        speech = True if self.vad is None else bool(self.vad.speech(chunk))
        self.silence = 0.0 if speech else self.silence + seconds
        if not speech and not self.policy.pending() and len(self.buffer) == 0:
            self.buffer_start = self.received  # leading silence is never decoded
            return
        self.buffer = np.concatenate([self.buffer, chunk])
        self.unprocessed += seconds

    # --- decoding ----------------------------------------------------------------------
    def process(self) -> list[Emitted]:
        """Decode if enough new audio arrived; returns newly committed words."""
        if self.unprocessed < self.min_chunk or len(self.buffer) == 0:
            return []
        if self.vad is not None and self.silence >= self.silence_flush:
            return self._end_utterance()
        hypothesis = self._decode()
        emitted = self._emit(self.policy.update(hypothesis))
        return emitted + self._trim()

    def finish(self) -> list[Emitted]:
        """End of stream: decode what is left and commit everything pending."""
        emitted = []
        if len(self.buffer) and (self.unprocessed > 0 or not self.policy.history):
            emitted = self._emit(self.policy.update(self._decode()))  # (a trim may have cleared the history)
        emitted += self._emit(self.policy.flush())
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = self.received
        return emitted

    def pending_text(self) -> str:
        return "".join(w.text for w in self.policy.pending())

    def _end_utterance(self) -> list[Emitted]:
        """Silence after speech: decode once more, commit it all, start a fresh buffer."""
        emitted = self.finish()
        self.unprocessed = 0.0
        return emitted

    def _decode(self) -> list[Word]:
        window = self.buffer[-int(self.max_buffer * SAMPLE_RATE):]
        offset = self.received - len(window) / SAMPLE_RATE
        prompt = self.tokenizer.encode("".join(w.text for w in self.committed[-60:]), add_special_tokens=False)
        hyp = self.backend.generate([window], language=self.language, timestamps=True, previous=prompt or None,
                                    max_new_tokens=160)[0]
        self.decodes += 1
        self.unprocessed = 0.0
        result = parse_window(hyp.tokens, self.vocab.timestamp_begin, len(window) / SAMPLE_RATE)
        words, self.segment_ends = [], []
        for start, end, tokens in result.spans:
            segment = Segment(offset + start, offset + end, "", tuple(tokens))
            words += words_of(segment, [self.tokenizer.decode([t]) for t in tokens])
            self.segment_ends.append(offset + end)
        return words

    def _emit(self, words: list[Word]) -> list[Emitted]:
        now = time.perf_counter()
        self.committed += words
        self.committed = self.committed[-200:]  # the prompt needs only the recent text
        return [Emitted(w, self.received, now) for w in words]

    def _trim(self) -> list[Emitted]:
        """Once the buffer is long, cut it at the last committed segment end. It never
        passes ``max_buffer``: failing a segment end, cut at the last committed word, and
        if nothing was committed for that long, commit the pending words up to the cut
        (so a cut never drops words)."""
        length = len(self.buffer) / SAMPLE_RATE
        if length <= self.trim_after:
            return []
        done = self.policy.committed_until
        cut = max((e for e in self.segment_ends if e <= done + 1e-3), default=self.buffer_start)
        limit = self.max_buffer - self.min_chunk
        emitted = []
        if self.received - cut > limit:
            cut = max(cut, done)
            if self.received - cut > limit:
                cut = self.received - limit
                emitted = self._emit(self.policy.commit_until(cut))
        if cut > self.buffer_start:
            self.buffer = self.buffer[int((cut - self.buffer_start) * SAMPLE_RATE):]
            self.buffer_start = cut
            self.policy.reset()
        return emitted
