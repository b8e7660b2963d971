"""Long audio (minutes to hours) in 30 s windows with timestamp tokens, as a generator of segments."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import InvalidInput
from .decoding import Vocab
from .gate import NoSpeechGate, has_words, load_gate_vad, speech_mask
from .segments import Segment, cut_loop, parse_window

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0
MIN_WINDOW_SECONDS = 0.1  # a shorter tail is padding, not speech
VAD_FRAME = 512  # samples per VAD decision (Silero's 32 ms frame)
SPEECH_PAD = 0.4  # seconds kept before the first speech frame after skipped silence


def transcribe(
    backend,
    audio: np.ndarray,
    *,
    language: str | None = "en",
    num_beams: int = 1,
    condition_on_previous_text: bool = True,
    progress: Callable[[float], None] | None = None,
    gate: NoSpeechGate | None = NoSpeechGate(),
    task: str = "transcribe",
    initial_prompt: str | None = None,
) -> Iterator[Segment]:
    """Segments of ``audio`` (16 kHz mono) as they are decoded. ``backend``: a ``StepperBackend``.

    Each window starts where the last complete segment ended; an open segment at the window
    edge is decoded again in the next window, so no word is doubled or dropped at seams.
    The previous text is the prompt of the next window (``condition_on_previous_text``).
    With a ``gate``, stretches without speech are skipped before decoding and windows the
    model calls silent yield nothing. ``language`` None: a multilingual model detects it on
    the first window it decodes and keeps it. ``task`` "translate": into English (multilingual
    models). ``initial_prompt``: text (names, spellings, a style) given as the previous text of
    the first window, as in openai/whisper.
    """
    engine = backend.engine
    vocab = Vocab.from_generation_config(engine.generation_config, language, task)
    if vocab.timestamp_begin is None:
        raise InvalidInput("this model has no timestamp tokens: long-form transcription needs them")
    tokenizer = engine.processor.tokenizer
    seek, total = 0, len(audio)
    speech = _speech_frames(backend, audio, gate)
    previous: list[int] = []
    if initial_prompt and initial_prompt.strip():
        previous = tokenizer.encode(" " + initial_prompt.strip(), add_special_tokens=False)
    first = True  # the initial prompt reaches the first window even without condition_on_previous_text
    while total - seek > MIN_WINDOW_SECONDS * SAMPLE_RATE:
        seek = _next_speech(speech, seek, total)
        if seek is None:
            break
        window = audio[seek : seek + int(WINDOW_SECONDS * SAMPLE_RATE)]
        seconds = len(window) / SAMPLE_RATE
        if language is None:
            language = backend.detect_language([window])[0][0]
            logger.info("detected language %r", language)
        prompt = previous if condition_on_previous_text or first else None
        hyp, text, failed = _decode_window(backend, window, language, task, num_beams, prompt, tokenizer, gate)
        if first and not condition_on_previous_text:
            previous = []
        first = False
        if failed:  # drop the prompt that may feed a hallucination
            previous = []
        if gate is not None and gate.no_speech(hyp, text, failed):
            logger.debug(
                "no speech at %.1f-%.1f s (p=%.2f, avg log-prob %.2f)",
                seek / SAMPLE_RATE,
                seek / SAMPLE_RATE + seconds,
                hyp.no_speech_prob,
                hyp.avg_logprob,
            )
            seek += len(window)
            _report(progress, seek, total)
            continue
        result = parse_window(hyp.tokens, vocab.timestamp_begin, seconds)
        consumed = result.consumed
        if consumed <= 0:  # the model re-opened at 0: take what it said and move on
            consumed = max((end for _, end, _ in result.spans), default=seconds) or seconds
        offset = seek / SAMPLE_RATE
        for start, end, text_tokens in result.spans:
            if start >= consumed and not result.complete:
                continue  # starts in the part that is decoded again
            text = tokenizer.decode(text_tokens, skip_special_tokens=True)
            text = cut_loop(text) if failed else text  # every attempt looped: keep the pattern once
            if has_words(text) if gate is not None else text.strip():
                yield Segment(
                    round(offset + start, 3), round(offset + min(end, seconds), 3), text.strip(), tuple(text_tokens)
                )
            if not failed:  # a loop never becomes the next window's prompt
                previous = (previous + text_tokens)[-223:]
        seek += max(int(consumed * SAMPLE_RATE), 1)
        _report(progress, seek, total)


def detect_language(backend, audio: np.ndarray, gate: NoSpeechGate | None = NoSpeechGate()) -> tuple[str, float] | None:
    """(code, probability) of the language of ``audio``'s first 30 s of speech, as
    ``transcribe`` would detect it; None when the ``gate`` finds no speech."""
    seek = _next_speech(_speech_frames(backend, audio, gate), 0, len(audio))
    if seek is None:
        return None
    return backend.detect_language([audio[seek : seek + int(WINDOW_SECONDS * SAMPLE_RATE)]])[0]


def _next_speech(speech: np.ndarray | None, seek: int, total: int) -> int | None:
    """Where the next window starts: just before the next speech frame at or after ``seek``
    (``seek`` itself without VAD flags); None when no speech (or no audio) is left."""
    if speech is not None:
        ahead = np.flatnonzero(speech[seek // VAD_FRAME :])
        if not len(ahead):
            return None
        seek = max(seek, (seek // VAD_FRAME + int(ahead[0])) * VAD_FRAME - int(SPEECH_PAD * SAMPLE_RATE))
    return seek if total - seek > MIN_WINDOW_SECONDS * SAMPLE_RATE else None


def _report(progress, seek: int, total: int) -> None:
    if progress is not None:
        progress(min(seek, total) / SAMPLE_RATE)


def _speech_frames(backend, audio: np.ndarray, gate: NoSpeechGate | None) -> np.ndarray | None:
    """Per-``VAD_FRAME`` speech flags of the whole file (None: no VAD, decode everything)."""
    if gate is None:
        return None
    vad = backend.vad_for(gate) if hasattr(backend, "vad_for") else load_gate_vad(gate)
    if gate.silent(audio):
        return np.zeros(-(-len(audio) // VAD_FRAME), dtype=bool)
    if vad is None:
        return None
    return speech_mask(vad, audio, VAD_FRAME)


def _decode_window(backend, window, language, task, num_beams, previous, tokenizer, gate=None):
    """Greedy with the previous text as prompt; if the result loops or is unlikely, again
    without the prompt, then with beam search (deterministic stand-ins for openai/whisper's
    temperature fallback). Returns (hypothesis, its text, failed): when every attempt failed,
    the unprompted greedy one. As in openai/whisper, a window the ``gate`` calls silent gets no
    fallback: it is dropped anyway; but only once decoded without the prompt, which can make a
    decoder loop, or call speech silent, where the audio alone would not."""
    attempts = [(num_beams, previous), (num_beams, None), (max(num_beams, 5), None)]
    if not previous:
        attempts = attempts[1:]
    tried = []
    for beams, prompt in attempts:
        hyp = backend.generate(
            [window],
            language=language,
            num_beams=beams,
            timestamps=True,
            previous=prompt or None,
            max_new_tokens=220,
            task=task,
        )[0]
        text = tokenizer.decode(hyp.tokens, skip_special_tokens=True)
        failed = hyp.failed(text)
        silent = gate is not None and gate.no_speech(hyp, text, failed)
        if prompt and silent:
            continue  # the prompt is never the reason a window is lost
        if not failed or silent:
            return hyp, text, failed
        tried.append((beams, prompt, hyp, text))
    return next((h, t, True) for b, p, h, t in tried if b == num_beams and p is None)
