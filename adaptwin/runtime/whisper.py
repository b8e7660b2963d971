"""The inference facade: one object, any engine, faster-whisper's shape.

from adaptwin import Whisper

model = Whisper("base-tw30-int8", backend="ort")
segments, info = model.transcribe("talk.wav")  # segments: a generator, decoded as you iterate
for s in segments:
    print(f"[{s.start:.1f} -> {s.end:.1f}] {s.text}")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..models.context import RUN_MARGIN
from . import longform
from .backends import get_backend
from .decoding import DecodingOptions, Vocab
from .gate import NoSpeechGate
from .segments import Segment
from .streaming import OnlineProcessor
from .vad import load_vad


@dataclass(frozen=True)
class TranscriptionInfo:
    duration: float  # seconds of audio
    language: str | None  # given, or detected on the first 30 s of speech (None: no speech to detect it on)
    backend: str
    no_speech_gate: bool
    language_probability: float | None = None  # the detection's (None: the language was given)


class Whisper:
    """A model ready to transcribe: ``model`` is anything ``load_whisper`` accepts (or what it
    returns) for ``backend="torch"``, an ``adaptwin-export`` folder for ``"ort"``/``"trt"``, or
    an engine-backed ``StepperBackend`` already made. ``gate``: the no-speech gate (None: off).
    ``context``: "auto" runs the encoder on the audio's length when the model was adapted for
    a dynamic audio context (``adaptwin adapt --dynamic-context``), "full" always on 30 s;
    ``run_margin``: seconds such a model hears after the audio, at least. ``language`` None: a
    multilingual model detects it (``transcribe``: on the first 30 s of speech, before decoding)."""

    def __init__(
        self,
        model: Any,
        backend: str = "torch",
        *,
        language: str | None = "en",
        threads: int | None = None,
        gate: NoSpeechGate | None = NoSpeechGate(),
        context: str = "auto",
        run_margin: float = RUN_MARGIN,
    ) -> None:
        if hasattr(model, "generate") and hasattr(model, "engine"):  # a backend already
            self.backend = model
        else:
            kwargs = {"threads": threads} if threads and backend in ("torch", "ort") else {}
            self.backend = get_backend(backend, model, context, run_margin, **kwargs)
        Vocab.from_generation_config(self.backend.engine.generation_config, language)  # an unknown one fails here
        self.language, self.gate = language, gate

    def transcribe(
        self,
        audio: str | Path | np.ndarray,
        *,
        beams: int = 1,
        condition_on_previous_text: bool = True,
        progress: Callable[[float], None] | None = None,
        task: str = "transcribe",
        initial_prompt: str | None = None,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments of ``audio`` (a file of any format and length, or 16 kHz mono samples) as a
        generator, and what is known before decoding. Silence gives no segment. ``task``
        "translate": into English (multilingual models); ``initial_prompt``: text the first
        window is decoded after (names, spellings, a style), as in openai/whisper."""
        DecodingOptions(beam_size=beams)  # impossible options fail here, not at the first iteration
        Vocab.from_generation_config(self.backend.engine.generation_config, self.language, task)
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        language, probability = self.language, None
        if language is None:  # detected once, as faster-whisper, so that info can say it before decoding
            language, probability = longform.detect_language(self.backend, audio, self.gate) or (None, None)
        segments = longform.transcribe(
            self.backend,
            audio,
            language=language,
            num_beams=beams,
            condition_on_previous_text=condition_on_previous_text,
            progress=progress,
            gate=self.gate,
            task=task,
            initial_prompt=initial_prompt,
        )
        info = TranscriptionInfo(
            round(len(audio) / SAMPLE_RATE, 3), language, self.backend.name, self.gate is not None, probability
        )
        return segments, info

    def stream(self, *, chunk: float | None = None, agreement: int = 2, vad: str = "auto", **options):
        """An ``OnlineProcessor``: ``insert_audio(samples)``, then ``process()`` -> committed words;
        ``finish()`` at the end (``runtime.mic.run_mic`` feeds it from a microphone). Options left
        out (or None) take the policy measured for this model (``streaming.policy_for``)."""
        return OnlineProcessor.for_backend(
            self.backend,
            language=self.language,
            agreement=agreement,
            min_chunk=chunk,
            vad=load_vad(vad),
            gate=self.gate,
            **options,
        )
