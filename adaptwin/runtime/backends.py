"""One interface for every inference engine: PyTorch, ONNX Runtime and TensorRT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import InvalidInput
from ..models.context import CONTEXTS, RUN_MARGIN, encoder_frames
from .decoding import DecodingOptions, Vocab, decode, language_probs, language_tokens
from .gate import NoSpeechGate, has_words, load_gate_vad, speech_mask
from .ort import OrtWhisper
from .segments import cut_loop, ends_repeated
from .trt import TrtWhisper

TOKENS_PER_SECOND = 8  # decoding budget per second of audio (generous: fast speech is ~5 tokens/s)


class Backend(Protocol):
    name: str

    def transcribe_batch(
        self,
        audios: list[np.ndarray],
        *,
        language: str | None = "en",
        num_beams: int = 1,
        gate: NoSpeechGate | None = NoSpeechGate(),
    ) -> list[str]:
        """Text of each (<= 30 s, 16 kHz mono) clip; "" for a clip without speech."""
        ...

    def detect_language(self, audios: list[np.ndarray]) -> list[tuple[str, float]]:
        """(language code, probability) of each clip."""
        ...


def token_budget(audios: list[np.ndarray]) -> int:
    """New-token limit for a batch: speech carries at most ~5 tokens/s, and the cap stops
    hallucination loops from costing minutes."""
    longest = max(len(a) for a in audios) / SAMPLE_RATE
    return min(220, int(TOKENS_PER_SECOND * longest) + 16)


@dataclass
class StepperBackend:
    """Whisper decoding over any engine exposing ``features``/``encode``/``step``/``reorder``."""

    engine: Any  # TorchWhisper, OrtWhisper or TrtWhisper
    name: str
    # "auto": the encoder sees the audio's length (bucketed) when the model was adapted for a
    # dynamic context, else the full 30 s window; "full": always the window
    context: str = "auto"
    # on a dynamic context, the encoder hears at least this many seconds after the audio
    margin: float = RUN_MARGIN

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise InvalidInput(f"context={self.context!r}: choose one of {', '.join(CONTEXTS)}")
        if not 0 <= self.margin <= 30:
            raise InvalidInput(f"run margin={self.margin} seconds must lie in [0, 30] (--run-margin)")

    def frames(self, audios: list[np.ndarray], margin: float | None = None) -> int | None:
        """Encoder input frames for a batch (its longest clip decides); None: the full window.
        ``margin``: seconds heard after the audio at least (None: the backend's ``margin``)."""
        config = self.engine.config
        margin = self.margin if margin is None else margin
        frames = encoder_frames(config, max(len(a) for a in audios) / SAMPLE_RATE, self.context, margin)
        return None if frames == 2 * config.max_source_positions else frames

    def generate(
        self,
        audios: list[np.ndarray],
        *,
        language: str | None = "en",
        num_beams: int = 1,
        timestamps: bool = False,
        previous: list[int] | None = None,
        max_new_tokens: int | None = None,
        prefix: list[int] | None = None,
        full_context: bool = False,
        margin: float | None = None,
        task: str = "transcribe",
    ):
        """Best hypothesis per clip. ``language`` None: a multilingual model detects each clip's
        (``Hypothesis.language``). ``full_context``: the 30 s window even for a model that
        learnt a dynamic context; ``margin``: as for ``frames``. ``task``: "transcribe" or
        "translate" (into English)."""
        Vocab.from_generation_config(self.engine.generation_config, language, task)  # bad options fail here
        frames = None if full_context else self.frames(audios, margin)
        state = self.engine.encode(self.engine.features(audios, frames))
        known = self._languages(language, state, len(audios))
        hyps = [None] * len(audios)
        # clips of one language decode together; those of another from their rows of the state
        for code in dict.fromkeys(c for c, _ in known):
            rows = [i for i, (c, _) in enumerate(known) if c == code]
            part = state if len(rows) == len(audios) else self.engine.reorder(state, np.asarray(rows))
            clips = [audios[i] for i in rows]
            decoded = self._decode(part, clips, code, task, timestamps, previous, max_new_tokens, prefix, num_beams)
            for i, hyp in zip(rows, decoded):
                hyp.language, hyp.language_prob = code, known[i][1]
                hyps[i] = hyp
        return hyps

    def detect_language(self, audios: list[np.ndarray]) -> list[tuple[str, float]]:
        """(language code, probability) per clip (<= 30 s) as a multilingual model hears it;
        ("en", 1.0) from an English-only model."""
        state = self.engine.encode(self.engine.features(audios, self.frames(audios)))
        return self._languages(None, state, len(audios))

    def _languages(self, language: str | None, state, batch: int) -> list[tuple[str, float | None]]:
        """(code, detection probability or None when given) per clip of ``state``."""
        gen = self.engine.generation_config
        codes = language_tokens(gen)
        if language is not None:  # "de" or "<|de|>"; an English-only model hears English
            return [(language.removeprefix("<|").removesuffix("|>") if codes else "en", None)] * batch
        if not codes:
            return [("en", 1.0)] * batch
        probs = language_probs(self.engine, state, batch, gen.decoder_start_token_id, list(codes.values()))
        names = list(codes)
        return [(names[int(row.argmax())], float(row.max())) for row in probs]

    def _decode(self, state, audios, language, task, timestamps, previous, max_new_tokens, prefix, num_beams):
        """Best hypothesis per clip of ``audios``, whose encoder output is ``state``."""
        gen = self.engine.generation_config
        batch = len(audios)
        vocab = Vocab.from_generation_config(gen, language, task)
        prefix = list(prefix or [])
        positions = self.engine.config.max_target_positions
        wanted = max_new_tokens or token_budget(audios)
        # the decoder has ``positions`` slots for prompt, forced prefix and new tokens: previous
        # text (optional context) gives way first, so that new tokens keep a quarter of them
        start = vocab.prompt(timestamps, None, None)
        keep = positions - 1 - len(start) - len(prefix) - min(wanted, positions // 4) - 1
        if keep <= 0 and previous:
            previous = None
        elif previous:
            previous = previous[-keep:]
        prompt = vocab.prompt(timestamps, previous, getattr(gen, "prev_sot_token_id", None))
        room = positions - len(prompt) - len(prefix) - 1
        if room < 1:
            raise InvalidInput(
                f"a forced prefix of {len(prefix)} tokens leaves no room in the decoder's {positions} positions; "
                "pass a shorter prefix"
            )
        limit = min(wanted, room)
        options = DecodingOptions(beam_size=num_beams, max_new_tokens=limit, timestamps=timestamps)
        return decode(self.engine, state, batch, prompt, vocab, options, prefix)

    def transcribe_batch(
        self,
        audios: list[np.ndarray],
        *,
        language: str | None = "en",
        num_beams: int = 1,
        gate: NoSpeechGate | None = NoSpeechGate(),
    ) -> list[str]:
        """Text of each clip. A decode that loops or is unlikely is tried again with beam search
        (openai/whisper's fallback). With a ``gate``, clips that are silent or hold no VAD speech
        frame are not decoded, and hypotheses the gate rejects are ""."""
        texts = [""] * len(audios)
        keep = list(range(len(audios)))
        if gate is not None:
            vad = self.vad_for(gate)
            keep = [
                i for i in keep if not gate.silent(audios[i]) and (vad is None or speech_mask(vad, audios[i]).any())
            ]
        if not keep:
            return texts
        tok = self.engine.processor.tokenizer
        decoded = lambda hyp: tok.decode(hyp.tokens, skip_special_tokens=True).strip()  # noqa: E731
        clips = [audios[i] for i in keep]
        # Without the 30 s window's padding to tell where the speech ends, a decoder on a cut
        # context can read its audio (or its end) twice ("Not always. Not always."): a failed
        # decode there.
        cut = self.frames(clips) is not None
        hyps = self.generate(clips, language=language, num_beams=num_beams)
        failed = [hyp.failed(decoded(hyp)) or (cut and ends_repeated(decoded(hyp)) > 0) for hyp in hyps]
        # openai/whisper's fallback, as in long-form transcription: a looping or unlikely clip is
        # decoded again with beam search (on the whole window), unless the gate drops it anyway
        again = [
            j
            for j, f in enumerate(failed)
            if f and not (gate is not None and gate.no_speech(hyps[j], decoded(hyps[j]), failed=True))
        ]
        if again:
            retry = self.generate(
                [clips[j] for j in again], language=language, num_beams=max(num_beams, 5), full_context=True
            )
            for j, hyp in zip(again, retry):
                if not hyp.failed(decoded(hyp)):
                    hyps[j], failed[j] = hyp, False
                elif cut:  # both failed: the whole window's attempt is the model's usual answer
                    hyps[j] = hyp
        for i, hyp, f in zip(keep, hyps, failed):
            text = cut_loop(decoded(hyp)) if f else decoded(hyp)  # every attempt looped: keep the pattern once
            if gate is None or (has_words(text) and not gate.no_speech(hyp, text, failed=f)):
                texts[i] = text
        return texts

    def vad_for(self, gate: NoSpeechGate):
        """One VAD per backend and kind (Silero loads an ONNX session)."""
        cache = self.__dict__.setdefault("_vads", {})
        if gate.vad not in cache:
            cache[gate.vad] = load_gate_vad(gate)
        return cache[gate.vad]


def get_backend(name: str, model, context: str = "auto", margin: float = RUN_MARGIN, **engine_kwargs) -> Backend:
    """A backend by name for ``model``: anything ``load_whisper`` accepts (or a ``LoadedWhisper``)
    for torch; an ``adaptwin-export`` folder for ort (ONNX) and trt (TensorRT engines).
    ``context``: "auto" or "full", ``margin``: seconds heard after the audio on a dynamic
    context (``StepperBackend``)."""
    if context not in CONTEXTS:
        raise InvalidInput(f"context={context!r}: choose one of {', '.join(CONTEXTS)}")
    if name == "torch":
        from ..models.checkpoint import LoadedWhisper, load_whisper

        if not isinstance(model, LoadedWhisper):
            model = load_whisper(model)
        from .torch_engine import TorchWhisper

        return StepperBackend(TorchWhisper(model, **engine_kwargs), "torch", context, margin)
    model = getattr(model, "path", model)  # a LoadedWhisper: its folder
    if name == "ort":
        return StepperBackend(OrtWhisper(model, **engine_kwargs), "ort", context, margin)
    if name == "trt":
        return StepperBackend(TrtWhisper(model, **engine_kwargs), "trt", context, margin)
    raise InvalidInput(f"unknown backend {name!r}: choose torch, ort or trt")
