"""A scripted stand-in for a Whisper backend, for testing windowing and streaming logic.

The "audio" encodes words: word k of the script is a run of samples with value
``(k + 1) / 1000`` lasting ``WORD`` seconds, separated by short zero gaps; negative
samples are sound without words (noise). The fake model
"hears" every word run inside the window and answers like Whisper: segments of up to
three words between timestamp tokens, and a word cut by the window edge is left in an
open segment (no closing timestamp).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from adaptwin.audio import SAMPLE_RATE
from adaptwin.runtime.decoding import Hypothesis

EOT, SOT, NO_TS, TS0 = 0, 1, 999, 1000  # as in Whisper, timestamps start right after <|notimestamps|>
WORD, GAP = 0.4, 0.1


def script_audio(n_words: int, pause_every: int = 0, pause: float = 1.5) -> np.ndarray:
    pieces = []
    for k in range(n_words):
        pieces += [
            np.full(int(WORD * SAMPLE_RATE), (k + 1) / 1000, np.float32),
            np.zeros(int(GAP * SAMPLE_RATE), np.float32),
        ]
        if pause_every and (k + 1) % pause_every == 0:
            pieces.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
    return np.concatenate(pieces)


def runs_of(audio: np.ndarray) -> list[tuple[int, float, float]]:
    """(word index, start s, end s) of each word run."""
    padded = np.concatenate([[0.0], audio, [0.0]])
    edges = np.flatnonzero(np.diff(padded) != 0)  # sample indices where the value changes
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        value = padded[a + 1]
        if value > 0:
            out.append((int(round(value * 1000)) - 1, a / SAMPLE_RATE, b / SAMPLE_RATE))
    return out


class FakeTokenizer:
    """Token id 10 + k is the word " wk"."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(f" w{i - 10}" for i in ids if 10 <= i < TS0)

    def encode(self, text, add_special_tokens=False):
        return [10 + int(w[1:]) for w in text.split()]


HALLUCINATION = 10 + 900  # the word " w900", said (unsurely) where the fake hears no word


class NonzeroVAD:
    """The fake's speech is its nonzero samples."""

    def speech(self, chunk: np.ndarray) -> bool:
        return bool(np.any(np.asarray(chunk) != 0))


class FakeBackend:
    """``hallucinate``: where it hears no word, answer " w900" like Whisper on silence: a
    high no-speech probability and an unlikely text (a likely one when ``confident``, like
    Whisper's " you" on noise). ``speech_no_speech``: the no-speech probability of what it
    hears (Whisper can score confident speech above 0.8)."""

    name = "fake"

    def __init__(self, hallucinate: bool = False, confident: bool = False, speech_no_speech: float = 0.01):
        self.hallucinate, self.confident, self.speech_no_speech = hallucinate, confident, speech_no_speech
        gen = SimpleNamespace(
            decoder_start_token_id=SOT,
            eos_token_id=EOT,
            no_timestamps_token_id=NO_TS,
            suppress_tokens=[],
            begin_suppress_tokens=[],
            is_multilingual=False,
            prev_sot_token_id=3,
        )
        self.engine = SimpleNamespace(
            generation_config=gen,
            processor=SimpleNamespace(tokenizer=FakeTokenizer()),
            config=SimpleNamespace(max_target_positions=448),
        )
        self.prefixes = []  # the forced prefix of every decode
        self.calls = []

    def generate(
        self,
        audios,
        *,
        language="en",
        num_beams=1,
        timestamps=False,
        previous=None,
        max_new_tokens=None,
        prefix=None,
        full_context=False,
        margin=None,
        task="transcribe",
    ):
        self.previous = getattr(self, "previous", []) + [previous]  # the prompt of every decode
        out = []
        for audio in audios:
            self.calls.append(len(audio) / SAMPLE_RATE)
            self.prefixes.append(list(prefix or []))
            tokens = self._hear(audio, timestamps)
            if prefix:  # forced start: continue after as many words as the prefix holds
                words = sum(1 for t in prefix if t < NO_TS)
                seen, i = 0, 0
                while i < len(tokens) and seen < words:
                    seen += tokens[i] < NO_TS
                    i += 1
                tokens = list(prefix) + tokens[i:]
            heard = any(t < NO_TS for t in tokens[len(prefix or []) :])
            if self.hallucinate and not heard:
                tokens = list(prefix or []) + ([TS0, HALLUCINATION, TS0 + 50] if timestamps else [HALLUCINATION])
                per_token = -0.1 if self.confident else -2.0
                out.append(Hypothesis(tokens=tokens, logprob=per_token * (len(tokens) + 1), no_speech_prob=0.9))
            else:
                p = self.speech_no_speech
                out.append(Hypothesis(tokens=tokens, logprob=-0.1 * (len(tokens) + 1), no_speech_prob=p))
        return out

    def frames(self, audios, margin=None):
        return None  # the full window: no dynamic context

    def detect_language(self, audios):
        self.detected = getattr(self, "detected", 0) + len(audios)
        return [("en", 1.0)] * len(audios)  # an English-only model

    def vad_for(self, gate):
        return None if gate.vad == "none" else NonzeroVAD()

    def _hear(self, audio, timestamps):
        seconds = len(audio) / SAMPLE_RATE
        runs = [(k, a, b, b >= seconds - 1e-9) for k, a, b in runs_of(audio)]
        runs = [
            r for r in runs if not (r[1] == 0.0 and r[2] - r[1] < WORD - 1e-6)
        ]  # a word cut at the start is not heard
        if not timestamps:
            return [10 + k for k, *_ in runs]
        tokens = []
        ts = lambda t: TS0 + int(round(t / 0.02))  # noqa: E731
        for j in range(0, len(runs), 3):
            group = runs[j : j + 3]
            tokens.append(ts(group[0][1]))
            tokens += [10 + k for k, *_ in group]
            if not group[-1][3]:  # the segment closes unless its last word runs into the edge
                tokens.append(ts(group[-1][2]))
        return tokens
