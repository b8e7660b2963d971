"""No text from silence or noise: a model-free gate applied by every transcription path.

Whisper hallucinates on non-speech ("you", "I'm going to go to the next room." in a loop).
Three checks, cheapest first:

1. **level**: audio whose peak is below ``silence_peak`` is digital silence and is never decoded;
2. **VAD**: a window in which the voice activity detector finds no speech frame is never
   decoded (Silero when faster-whisper's wheel is installed, else an energy threshold);
3. **the decoder's own evidence**: a hypothesis is dropped when the probability of
   ``<|nospeech|>`` after ``<|startoftranscript|>`` is above ``no_speech_threshold`` and the
   text is unlikely (mean log-probability below ``logprob_threshold``: openai/whisper's rule)
   or failed every fallback (a loop), and when that probability is above ``sure_threshold``
   and the text is short (at most ``sure_max_words`` words): Whisper says a confident " you"
   to noise, which the first rule keeps, but a window of confident speech can score as high
   and must not be lost.
   Text without a single letter or digit ("." or ". . .") is no text.
The thresholds are measured on speech and non-speech in ``benchmarks/no_speech.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .vad import load_vad


@dataclass(frozen=True)
class NoSpeechGate:
    no_speech_threshold: float = 0.6  # openai/whisper and faster-whisper's default
    logprob_threshold: float = -1.0  # idem
    sure_threshold: float = 0.8  # above it the model is sure: no short text, however confident
    sure_max_words: int = 3  # "you", "Thank you.", "Thanks for watching!"
    silence_peak: float = 1e-4  # about -80 dBFS: below any microphone's noise floor
    vad: str = "auto"  # auto | silero | energy | none

    def __post_init__(self) -> None:
        if not 0.0 <= self.no_speech_threshold <= self.sure_threshold <= 1.0:
            raise InvalidInput(
                "need 0 <= no_speech_threshold <= sure_threshold <= 1, got "
                f"{self.no_speech_threshold} and {self.sure_threshold}"
            )
        if self.sure_max_words < 0:
            raise InvalidInput(f"sure_max_words is a word count (>= 0), got {self.sure_max_words}")
        if self.logprob_threshold > 0:
            raise InvalidInput(f"logprob_threshold is a log-probability (<= 0), got {self.logprob_threshold}")
        if self.vad not in ("auto", "silero", "energy", "none"):
            raise InvalidInput(f"unknown VAD {self.vad!r}: choose auto, silero, energy or none")

    def silent(self, audio: np.ndarray) -> bool:
        """Digital silence (or an empty clip): nothing to decode."""
        return len(audio) == 0 or float(np.abs(audio).max()) < self.silence_peak

    def no_speech(self, hyp: Any, text: str, failed: bool = False) -> bool:
        """Drop ``hyp`` (a ``decoding.Hypothesis``) whose new ``text`` (a forced prefix not
        included) is this: the model says no speech and the text is unlikely, short, or a
        loop that survived every fallback."""
        if hyp.no_speech_prob <= self.no_speech_threshold:
            return False
        if failed or hyp.avg_logprob < self.logprob_threshold:
            return True
        return hyp.no_speech_prob > self.sure_threshold and len(text.split()) <= self.sure_max_words


def has_words(text: str) -> bool:
    """At least one letter or digit: punctuation alone (". . .") is no text."""
    return any(ch.isalnum() for ch in text)


def speech_mask(vad: Any, audio: np.ndarray, frame: int = 512) -> np.ndarray:
    """Per-frame speech flags [ceil(len / frame)] of ``audio`` from a fresh VAD pass."""
    if hasattr(vad, "reset"):
        vad.reset()
    if hasattr(vad, "probabilities"):
        probs = vad.probabilities(np.concatenate([audio, np.zeros(-len(audio) % frame, np.float32)]))
        return probs >= vad.threshold
    n = -(-len(audio) // frame)
    return np.array([vad.speech(audio[i * frame : (i + 1) * frame]) for i in range(n)], dtype=bool)


def load_gate_vad(gate: NoSpeechGate | None):
    """The VAD a gate asks for (None: no VAD)."""
    if gate is None or gate.vad == "none":
        return None

    return load_vad(gate.vad)
