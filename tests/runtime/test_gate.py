"""The no-speech gate: level, VAD and the decoder's no-speech probability, on every path."""

import numpy as np
import pytest
from fake_whisper import HALLUCINATION, FakeBackend, NonzeroVAD, script_audio

from adaptwin.audio import SAMPLE_RATE
from adaptwin.runtime.decoding import Hypothesis
from adaptwin.runtime.gate import NoSpeechGate, has_words
from adaptwin.runtime.longform import transcribe
from adaptwin.runtime.mic import simulate
from adaptwin.runtime.streaming import OnlineProcessor

HALLUCINATED = f"w{HALLUCINATION - 10}"


def test_gate_rule_is_openai_whispers():
    gate = NoSpeechGate()
    sure_silence = Hypothesis([5], logprob=-4.0, no_speech_prob=0.9)  # avg -2.0
    confident = Hypothesis([5], logprob=-0.4, no_speech_prob=0.7)  # avg -0.2: kept, as in openai/whisper
    sure = Hypothesis([5], logprob=-0.4, no_speech_prob=0.85)  # Whisper's confident " you" on noise
    speech = Hypothesis([5], logprob=-4.0, no_speech_prob=0.1)
    assert gate.no_speech(sure_silence, " you") and not gate.no_speech(confident, " you")
    assert not gate.no_speech(speech, " you")
    assert gate.no_speech(sure, " you") and not NoSpeechGate(sure_threshold=1.0).no_speech(sure, " you")
    assert gate.no_speech(sure, " Thanks for watching!")
    # a confident sentence scored "sure no speech" is speech: the sure rule is for short text
    assert not gate.no_speech(sure, " Press one to switch to playback mode.")
    assert NoSpeechGate(sure_max_words=10).no_speech(sure, " Press one to switch to playback mode.")
    assert gate.no_speech(confident, " you", failed=True)  # a loop that survived every fallback, on "no speech"
    assert gate.no_speech(sure_silence, " a long unlikely text that goes on and on")
    assert not gate.no_speech(speech, " you", failed=True)
    assert gate.silent(np.zeros(100, np.float32)) and gate.silent(np.zeros(0, np.float32))
    assert not gate.silent(np.full(100, 1e-3, np.float32))
    assert not has_words(" . . .") and not has_words("") and has_words(" 42") and has_words(" you")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"no_speech_threshold": 1.5},
        {"logprob_threshold": 0.5},
        {"vad": "webrtc"},
        {"no_speech_threshold": 0.9, "sure_threshold": 0.8},
        {"sure_max_words": -1},
    ],
)
def test_gate_options_are_validated(kwargs):
    with pytest.raises(ValueError):
        NoSpeechGate(**kwargs)


def _with_silence(words: int, seconds: float, noise: float = 0.0) -> np.ndarray:
    rest = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    if noise:  # negative samples: sound the fake hears as no word
        rest[:] = -noise
    return np.concatenate([script_audio(words), rest, script_audio(words)])


def test_long_form_skips_silence_and_drops_what_the_model_calls_silent():
    audio = _with_silence(4, 100.0)
    gated = FakeBackend(hallucinate=True)
    words = " ".join(s.text for s in transcribe(gated, audio)).split()
    assert words == [f"w{k}" for k in range(4)] * 2
    open_ = FakeBackend(hallucinate=True)
    ungated = " ".join(s.text for s in transcribe(open_, audio, gate=None)).split()
    assert HALLUCINATED in ungated  # the test can fail: without the gate the fake hallucinates
    assert sum(gated.calls) < 0.5 * sum(open_.calls)  # 100 s of silence were never decoded


def test_long_form_without_vad_relies_on_the_no_speech_probability():
    audio = _with_silence(3, 70.0, noise=0.5)  # not silent, VAD off: every window is decoded
    backend = FakeBackend(hallucinate=True)
    words = " ".join(s.text for s in transcribe(backend, audio, gate=NoSpeechGate(vad="none"))).split()
    assert HALLUCINATED not in words and words.count("w0") == 2


def test_confident_speech_the_model_scores_as_no_speech_is_kept_on_every_path():
    """Whisper can give a window of clear speech a no-speech probability above 0.8; only a
    short confident text (" you" on noise) is dropped whatever its log-probability."""
    from adaptwin.runtime import StepperBackend

    audio = script_audio(12)
    sure_speech = FakeBackend(speech_no_speech=0.85)
    words = " ".join(s.text for s in transcribe(sure_speech, audio)).split()
    assert words == [f"w{k}" for k in range(12)]
    assert StepperBackend.transcribe_batch(_AsStepper(sure_speech), [audio])[0].split() == words
    short = script_audio(2)
    assert StepperBackend.transcribe_batch(_AsStepper(sure_speech), [short]) == [""]
    assert list(transcribe(sure_speech, short)) == []


class _PromptMisleads(FakeBackend):
    """Scores all it hears as likely no speech (0.83); prompted with the previous text, it
    loops, or (``unlikely``) says a few unlikely words: the two ways real windows were lost."""

    unlikely = False

    def generate(self, audios, *, previous=None, **kw):
        out = super().generate(audios, previous=previous, **kw)
        for hyp in out:
            hyp.no_speech_prob = 0.83
            if previous and self.unlikely:
                hyp.tokens, hyp.logprob = list(hyp.tokens)[:3], -1.5 * 4
            elif previous:
                hyp.tokens = list(hyp.tokens) + [108, 109] * 40
        return out


@pytest.mark.parametrize("unlikely", [False, True])
def test_the_prompt_is_never_the_reason_a_long_form_window_is_lost(unlikely):
    audio = script_audio(80)  # 40 s: the second window is prompted with the first one's text
    backend = _PromptMisleads()
    backend.unlikely = unlikely
    words = " ".join(s.text for s in transcribe(backend, audio)).split()
    assert words == [f"w{k}" for k in range(80)]
    if not unlikely:  # a stream retries a loop on its prompt (its fallback is a costly beam search)
        online = OnlineProcessor(_PromptMisleads(), vad=NonzeroVAD())
        keys = [e.word.key for e, _ in simulate(online, audio)]
        assert keys == [f"w{k}" for k in range(80)]


def test_stream_drops_a_confident_hallucination_after_committed_speech():
    """The sure rule counts the new words only: the forced prefix (committed speech still in
    the buffer) does not make a confident " w900" on noise long text."""
    audio = np.concatenate([script_audio(8), np.full(4 * SAMPLE_RATE, -0.5, np.float32)])
    online = OnlineProcessor(FakeBackend(hallucinate=True, confident=True), vad=None)
    keys = [e.word.key for e, _ in simulate(online, audio)]
    assert keys == [f"w{k}" for k in range(8)]
    open_ = OnlineProcessor(FakeBackend(hallucinate=True, confident=True), vad=None, gate=None)
    assert HALLUCINATED in [e.word.key for e, _ in simulate(open_, audio)]  # the test can fail


def test_silent_file_is_an_empty_transcript():
    backend = FakeBackend(hallucinate=True)
    assert list(transcribe(backend, np.zeros(10 * 60 * SAMPLE_RATE, np.float32))) == []
    assert backend.calls == []  # 10 minutes of digital silence cost no decode


def test_stream_commits_nothing_during_silence_or_noise():
    audio = np.full(20 * SAMPLE_RATE, -0.5, np.float32)  # "noise": loud, but no word
    for vad in (None, "energy"):
        from adaptwin.runtime.vad import EnergyVAD

        online = OnlineProcessor(FakeBackend(hallucinate=True), vad=None if vad is None else EnergyVAD())
        assert simulate(online, audio) == []
    online = OnlineProcessor(FakeBackend(hallucinate=True), gate=None)
    assert [e.word.key for e, _ in simulate(online, audio)]  # ungated, the fake's words get in
    online = OnlineProcessor(FakeBackend(hallucinate=True))
    assert simulate(online, np.zeros(20 * SAMPLE_RATE, np.float32)) == [] and online.decodes == 0


def test_stream_keeps_speech_around_noise():
    audio = np.concatenate([script_audio(6), np.full(5 * SAMPLE_RATE, -0.5, np.float32), script_audio(6)])
    online = OnlineProcessor(FakeBackend(hallucinate=True))
    keys = [e.word.key for e, _ in simulate(online, audio)]
    assert HALLUCINATED not in keys and keys.count("w5") == 2


def test_batch_transcription_skips_silent_clips_without_decoding():
    backend = FakeBackend(hallucinate=True)
    from adaptwin.runtime import StepperBackend

    batch = [script_audio(3), np.zeros(SAMPLE_RATE, np.float32), np.full(SAMPLE_RATE, -0.5, np.float32)]
    texts = StepperBackend.transcribe_batch(_AsStepper(backend), batch)
    assert texts[0].split() == ["w0", "w1", "w2"] and texts[1:] == ["", ""]
    assert len(backend.calls) == 2  # the digital silence was not decoded
    open_ = StepperBackend.transcribe_batch(_AsStepper(FakeBackend(hallucinate=True)), batch, gate=None)
    assert open_[1] == open_[2] == HALLUCINATED


def test_batch_transcription_decodes_a_loop_again_with_beam_search():
    from adaptwin.runtime import StepperBackend

    class Looping(FakeBackend):
        """Greedy decoding loops ("w98 w99 w98 w99 ..."); beam search does so only when ``stubborn``."""

        stubborn = False

        def generate(self, audios, *, num_beams=1, **kw):
            out = super().generate(audios, num_beams=num_beams, **kw)
            for hyp in out:
                if num_beams == 1 or self.stubborn:
                    hyp.tokens = list(hyp.tokens) + [108, 109] * 40
            return out

    backend = Looping()
    assert StepperBackend.transcribe_batch(_AsStepper(backend), [script_audio(3)])[0].split() == ["w0", "w1", "w2"]
    assert len(backend.calls) == 2  # the greedy decode, then beam search for the looping clip
    backend.stubborn = True  # every attempt loops: the greedy text stays, its loop kept once
    assert StepperBackend.transcribe_batch(_AsStepper(backend), [script_audio(3)])[0].split() == [
        "w0",
        "w1",
        "w2",
        "w98",
        "w99",
    ]


def test_a_text_said_twice_on_a_cut_context_is_decoded_again_on_the_whole_window():
    """On a cut context the decoder can read its audio twice; the retry sees the 30 s window.
    With the full window the same text is believed (someone may say it twice)."""
    from adaptwin.runtime import StepperBackend

    class Twice(FakeBackend):
        def generate(self, audios, *, full_context=False, **kw):
            out = super().generate(audios, **kw)
            for hyp in out:
                if not full_context:
                    hyp.tokens = list(hyp.tokens) * 2
            return out

    class Cut(_AsStepper):
        def frames(self, audios, margin=None):
            return 200  # fewer than the window's frames: a cut context

    backend = Twice()
    assert StepperBackend.transcribe_batch(Cut(backend), [script_audio(3)])[0].split() == ["w0", "w1", "w2"]
    assert len(backend.calls) == 2  # the cut decode, then the whole window
    full = Twice()
    said = StepperBackend.transcribe_batch(_AsStepper(full), [script_audio(3)])[0].split()
    assert said == ["w0", "w1", "w2"] * 2 and len(full.calls) == 1


class _AsStepper:
    """The fake as a StepperBackend: its generate and VAD, StepperBackend's batch logic."""

    def __init__(self, fake):
        self.fake, self.engine, self.name = fake, fake.engine, "fake"

    def generate(self, audios, **kw):
        return self.fake.generate(audios, **kw)

    def vad_for(self, gate):
        return self.fake.vad_for(gate)

    def frames(self, audios, margin=None):
        return self.fake.frames(audios)
