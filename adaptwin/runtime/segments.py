"""Timestamped results: parsing Whisper's timestamp tokens into segments and words (model-free)."""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_PER_TIMESTAMP = 0.02


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the audio
    end: float
    text: str
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str  # with its leading space, as the tokenizer gives it

    @property
    def key(self) -> str:
        """Comparison form: case and punctuation do not make two hypotheses disagree."""
        return word_key(self.text)


def word_key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch == "'")


LOOP_REPEATS = 4  # a pattern of 1..LOOP_PERIOD words said this many times in a row is a decoding loop
LOOP_PERIOD = 4


def loop_index(keys: list[str]) -> int | None:
    """Index where a decoding loop ("to five to five to five to five ...") becomes one: the
    first word after one period of a pattern of 1..4 words repeated 4+ times in a row."""
    for i in range(len(keys)):
        if not keys[i]:
            continue
        for p in range(1, LOOP_PERIOD + 1):
            run = LOOP_REPEATS * p
            if i + run <= len(keys) and all(keys[i + k] == keys[i + k % p] for k in range(run)):
                return i + p
    return None


def cut_loop(text: str) -> str:
    """``text`` without a decoding loop's repetitions: the pattern is kept once ("Ha ha ha ha
    ha ..." -> "Ha"). A loop is never what was said, and its repetitions cost one error each."""
    words = text.split()
    at = loop_index([word_key(w) for w in words])
    return text if at is None else " ".join(words[:at])


def ends_repeated(text: str, new: int | None = None, times: int = 2) -> int:
    """Words in the sequence of 2+ words that ``text`` ends with, said ``times`` times in a row
    ("Not always. Not always." -> 2), case and punctuation aside; 0 when there is none. With
    ``new``, the last time lies within its last ``new`` words ("... it cannot be. It cannot
    be." with those four new)."""
    keys = [word_key(w) for w in text.split()]
    new = len(keys) if new is None else new
    for p in range(2, min(new, len(keys) // times) + 1):
        if all(keys[-p:] == keys[len(keys) - (k + 1) * p : len(keys) - k * p] for k in range(1, times)):
            return p
    return 0


@dataclass(frozen=True)
class WindowResult:
    spans: list[tuple[float, float, list[int]]]  # (start, end, text tokens) within the window
    consumed: float  # seconds of the window that are final; the rest is decoded again
    complete: bool  # the last span ended with a timestamp


def parse_window(tokens: list[int], timestamp_begin: int, window_seconds: float) -> WindowResult:
    """Split one window's generated tokens at timestamp pairs (openai/whisper's rules).

    ``<|t0|> text <|t1|><|t1|> text <|t2|>``: complete spans, the whole window is consumed.
    When the last span has no closing timestamp, it is dropped and decoding resumes from
    its opening timestamp, so words cut by the window edge are never emitted twice or lost.
    """

    def time(tok: int) -> float:
        return (tok - timestamp_begin) * SECONDS_PER_TIMESTAMP

    is_ts = [t >= timestamp_begin for t in tokens]
    if not any(is_ts):  # no timestamps at all: one span over the window
        return WindowResult([(0.0, window_seconds, list(tokens))] if tokens else [], window_seconds, False)
    pairs = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]  # index of the second of each pair
    single_ending = len(tokens) >= 2 and is_ts[-1] and not is_ts[-2]
    spans, last = [], 0
    for i in pairs:
        piece = tokens[last:i]  # <|a|> text <|b|>
        text = [t for t in piece if t < timestamp_begin]
        if text:
            spans.append((time(piece[0]), time(piece[-1]), text))
        last = i
    tail = tokens[last:]
    if single_ending:  # the last span closed: keep it and consume the whole window
        text = [t for t in tail if t < timestamp_begin]
        if text:
            spans.append((time(tail[0]), time(tail[-1]), text))
        return WindowResult(spans, window_seconds, True)
    if pairs:  # an open span at the end: resume decoding from its opening timestamp
        consumed = time(tokens[last]) if is_ts[last] else window_seconds
        return WindowResult(spans, min(consumed, window_seconds), False)
    # a lone opening timestamp and text that runs to the window edge
    text = [t for t in tokens if t < timestamp_begin]
    stamps = [time(t) for t in tokens if t >= timestamp_begin]
    end = stamps[-1] if len(stamps) > 1 else window_seconds
    return WindowResult([(stamps[0], max(end, stamps[0]), text)] if text else [], window_seconds, False)


def words_of(segment: Segment, pieces: list[str]) -> list[Word]:
    """Words of a segment with times spread over its span by character count (Whisper
    gives segment times; a word's share of the span follows its length)."""
    words: list[str] = []
    for piece in pieces:  # token strings; a leading space starts a new word
        if not words or piece.startswith(" ") or not piece.strip():
            if piece.strip():
                words.append(piece)
        else:
            words[-1] += piece
    total = sum(len(w.strip()) for w in words) or 1
    span = max(segment.end - segment.start, 0.0)
    out, at = [], segment.start
    for w in words:
        length = span * len(w.strip()) / total
        out.append(Word(round(at, 3), round(at + length, 3), w if w.startswith(" ") else " " + w))
        at += length
    return out
