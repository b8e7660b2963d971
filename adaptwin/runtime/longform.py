"""Long audio (minutes to hours) in 30 s windows with timestamp tokens, as a generator of segments."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..audio import SAMPLE_RATE
from .segments import Segment, parse_window

WINDOW_SECONDS = 30.0
MIN_WINDOW_SECONDS = 0.1  # a shorter tail is padding, not speech
# openai/whisper's thresholds for a failed window: repetitive text or an unlikely one
MAX_COMPRESSION_RATIO, MIN_AVG_LOGPROB = 2.4, -1.0


def compression_ratio(text: str) -> float:
    """Bytes / gzip-compressed bytes: high for looping, repetitive output."""
    import zlib

    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


def _failed(hyp, text: str) -> bool:
    avg = hyp.logprob / max(1, len(hyp.tokens) + 1)
    return compression_ratio(text) > MAX_COMPRESSION_RATIO or avg < MIN_AVG_LOGPROB


def transcribe(backend, audio: np.ndarray, *, language: str | None = "en", num_beams: int = 1,
               condition_on_previous_text: bool = True, progress: Callable[[float], None] | None = None) -> Iterator[Segment]:
    """Segments of ``audio`` (16 kHz mono) as they are decoded. ``backend``: a ``StepperBackend``.

    Each window starts where the last complete segment ended; an open segment at the window
    edge is decoded again in the next window, so no word is doubled or dropped at seams.
    The previous text is the prompt of the next window (``condition_on_previous_text``).
    """
    from .decoding import Vocab

    engine = backend.engine
    vocab = Vocab.from_generation_config(engine.generation_config, language)
    if vocab.timestamp_begin is None:
        raise ValueError("this model has no timestamp tokens: long-form transcription needs them")
    tokenizer = engine.processor.tokenizer
    seek, total = 0, len(audio)
    previous: list[int] = []
    while total - seek > MIN_WINDOW_SECONDS * SAMPLE_RATE:
        window = audio[seek: seek + int(WINDOW_SECONDS * SAMPLE_RATE)]
        seconds = len(window) / SAMPLE_RATE
        hyp = _decode_window(backend, window, language, num_beams, previous if condition_on_previous_text else None,
                             tokenizer)
        if hyp is None:  # every attempt looked like a hallucination: drop the prompt that may feed it
            previous = []
            hyp = backend.generate([window], language=language, num_beams=num_beams, timestamps=True)[0]
        result = parse_window(hyp.tokens, vocab.timestamp_begin, seconds)
        consumed = result.consumed
        if consumed <= 0:  # the model re-opened at 0: take what it said and move on
            consumed = max((end for _, end, _ in result.spans), default=seconds) or seconds
        offset = seek / SAMPLE_RATE
        for start, end, text_tokens in result.spans:
            if start >= consumed and not result.complete:
                continue  # starts in the part that is decoded again
            text = tokenizer.decode(text_tokens, skip_special_tokens=True)
            if text.strip():
                yield Segment(round(offset + start, 3), round(offset + min(end, seconds), 3), text.strip(),
                              tuple(text_tokens))
            previous = (previous + text_tokens)[-223:]
        seek += max(int(consumed * SAMPLE_RATE), 1)
        if progress is not None:
            progress(min(seek, total) / SAMPLE_RATE)


def _decode_window(backend, window, language, num_beams, previous, tokenizer):
    """Greedy with the previous text as prompt; if the result loops or is unlikely, again
    without the prompt, then with beam search (deterministic stand-ins for openai/whisper's
    temperature fallback). None when every attempt failed."""
    attempts = [(num_beams, previous), (num_beams, None), (max(num_beams, 5), None)]
    if not previous:
        attempts = attempts[1:]
    for beams, prompt in attempts:
        hyp = backend.generate([window], language=language, num_beams=beams, timestamps=True, previous=prompt or None,
                               max_new_tokens=220)[0]
        if not _failed(hyp, tokenizer.decode(hyp.tokens, skip_special_tokens=True)):
            return hyp
    return None
