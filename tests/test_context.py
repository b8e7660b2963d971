"""Dynamic audio context arithmetic (adaptwin.models.context): buckets round up and never cut
speech; a model without the capability always gets the full window."""

from types import SimpleNamespace

import pytest

from adaptwin.errors import InvalidInput
from adaptwin.models.context import HOP_SECONDS, AudioContext, encoder_frames, model_context


def config(context=None, positions=1500):
    meta = {"context": context.to_dict()} if context else {"attention": {}}
    return SimpleNamespace(max_source_positions=positions, adaptwin=meta)


@pytest.mark.parametrize("bucket, margin", [(1.0, 0.5), (2.0, 0.0), (0.5, 1.25)])
def test_buckets_round_up_and_never_cut_speech(bucket, margin):
    ctx = AudioContext(bucket, margin)
    for i in range(0, 3000, 7):
        audio = i / 100
        seconds = ctx.seconds(audio, 30.0)
        if audio + margin <= 30.0:
            assert seconds >= audio + margin - 1e-9  # the audio and its margin fit
            assert seconds - bucket < max(audio + margin, 1e-9) + 1e-9  # the smallest bucket that does
        else:
            assert seconds == 30.0  # never past the window
        assert abs(seconds / bucket - round(seconds / bucket)) < 1e-9 or seconds == 30.0
        assert seconds >= bucket or seconds == 30.0


def test_frames_follow_the_audio_only_for_models_that_learnt_it():
    dynamic = config(AudioContext(1.0, 0.5))
    assert encoder_frames(dynamic, 2.2) == 300  # 2.2 s + 0.5 s -> 3 s -> 300 frames
    assert encoder_frames(dynamic, 0.0) == 100
    assert encoder_frames(dynamic, 29.9) == 3000 and encoder_frames(dynamic, 45.0) == 3000
    assert encoder_frames(dynamic, 2.2, "full") == 3000
    for plain in (config(), SimpleNamespace(max_source_positions=1500)):  # compressed, or a plain Whisper
        assert model_context(plain) is None
        assert {encoder_frames(plain, s) for s in (0.0, 2.2, 10.0, 30.0)} == {3000}
    odd = config(AudioContext(0.25, 0.0), positions=50)  # 1 s window: frames stay even
    assert all(encoder_frames(odd, i / 100) % 2 == 0 for i in range(100))
    assert round(encoder_frames(odd, 0.3) * HOP_SECONDS, 2) == 0.5


def test_bad_contexts_are_refused():
    with pytest.raises(InvalidInput, match="bucket"):
        AudioContext(0.0)
    with pytest.raises(InvalidInput, match="margin"):
        AudioContext(1.0, -1.0)
    with pytest.raises(InvalidInput, match="auto, full"):
        encoder_frames(config(), 1.0, "short")
    assert AudioContext.from_dict(AudioContext(2.0, 0.25).to_dict()) == AudioContext(2.0, 0.25)
    assert AudioContext.from_dict({"dynamic": False, "bucket": 1.0}) is None


def test_a_run_margin_lengthens_the_context_but_never_shortens_the_models():
    dynamic = config(AudioContext(1.0, 0.5))
    assert encoder_frames(dynamic, 2.2, margin=1.5) == 400  # 2.2 s + 1.5 s -> 4 s
    assert encoder_frames(dynamic, 2.2, margin=0.0) == encoder_frames(dynamic, 2.2) == 300  # its own 0.5 s
    assert encoder_frames(dynamic, 29.0, margin=5.0) == 3000  # never past the window
    assert encoder_frames(config(), 2.2, margin=1.5) == 3000  # a model without the capability: the window
