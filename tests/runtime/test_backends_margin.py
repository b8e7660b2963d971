"""The run-time context margin of ``StepperBackend`` (the offline path) and that streaming keeps
the model's own margin after its padded buffer."""

from types import SimpleNamespace

import numpy as np
import pytest
from fake_whisper import FakeBackend, script_audio

from adaptwin.audio import SAMPLE_RATE
from adaptwin.errors import InvalidInput
from adaptwin.models.context import RUN_MARGIN, AudioContext
from adaptwin.runtime.backends import StepperBackend
from adaptwin.runtime.mic import simulate
from adaptwin.runtime.streaming import OnlineProcessor


def engine(context=AudioContext(1.0, 0.5)):
    meta = {"context": context.to_dict()} if context else {}
    return SimpleNamespace(config=SimpleNamespace(max_source_positions=1500, adaptwin=meta))


def test_the_backend_hears_its_margin_after_the_audio():
    clip = [np.zeros(int(2.2 * SAMPLE_RATE), np.float32)]
    assert StepperBackend(engine(), "x").frames(clip) == 100 * int(np.ceil(2.2 + RUN_MARGIN))
    assert StepperBackend(engine(), "x", margin=0.0).frames(clip) == 300  # the model's own 0.5 s
    assert StepperBackend(engine(), "x").frames(clip, margin=0.0) == 300
    assert StepperBackend(engine(None), "x").frames(clip) is None  # no dynamic context: the window
    with pytest.raises(InvalidInput, match="margin"):
        StepperBackend(engine(), "x", margin=-1.0)


def test_streaming_keeps_the_models_own_margin():
    class Cut(FakeBackend):
        def __init__(self):
            super().__init__()
            self.margins = []

        def frames(self, audios, margin=None):
            self.margins.append(margin)
            return 200

        def generate(self, audios, *, margin=None, **kw):
            self.margins.append(margin)
            return super().generate(audios, **kw)

    backend = Cut()
    simulate(OnlineProcessor(backend, min_chunk=0.5), script_audio(6))
    assert backend.margins and set(backend.margins) == {0.0}
