import numpy as np
import pytest
from fake_whisper import TS0, FakeBackend, script_audio

from adaptwin.audio import SAMPLE_RATE
from adaptwin.runtime.longform import transcribe
from adaptwin.runtime.output import format_segments
from adaptwin.runtime.segments import Segment, parse_window


def test_parse_complete_window():
    ts = lambda t: TS0 + int(round(t / 0.02))  # noqa: E731
    tokens = [ts(0), 11, 12, ts(1.0), ts(1.2), 13, ts(2.0)]
    r = parse_window(tokens, TS0, 30.0)
    assert r.complete and r.consumed == 30.0
    assert [(s, e, t) for s, e, t in r.spans] == [(0.0, 1.0, [11, 12]), (1.2, 2.0, [13])]


def test_parse_open_last_segment_resumes_at_its_start():
    ts = lambda t: TS0 + int(round(t / 0.02))  # noqa: E731
    tokens = [ts(0), 11, ts(1.0), ts(1.2), 12, 13]  # the second segment runs into the window edge
    r = parse_window(tokens, TS0, 30.0)
    assert not r.complete and r.consumed == pytest.approx(1.2)
    assert [t for _, _, t in r.spans] == [[11]]


def test_parse_without_timestamps_is_one_span():
    r = parse_window([11, 12], TS0, 12.5)
    assert r.spans == [(0.0, 12.5, [11, 12])] and r.consumed == 12.5


@pytest.mark.parametrize("n_words", [7, 150, 301])
def test_long_audio_has_no_doubled_or_dropped_words_at_seams(n_words):
    audio = script_audio(n_words, pause_every=11)
    backend = FakeBackend()
    seen = []
    segments = list(transcribe(backend, audio, progress=seen.append))
    words = " ".join(s.text for s in segments).split()
    assert words == [f"w{k}" for k in range(n_words)]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(segments, segments[1:]))  # in order, no overlap
    assert segments[-1].end <= len(audio) / SAMPLE_RATE + 1e-6
    assert seen == sorted(seen) and seen[-1] == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.01)
    if n_words > 100:
        assert max(backend.calls) == pytest.approx(30.0) and len(backend.calls) >= len(audio) / SAMPLE_RATE / 30


def test_model_without_timestamps_is_refused():
    backend = FakeBackend()
    backend.engine.generation_config.no_timestamps_token_id = None
    with pytest.raises(ValueError, match="timestamp"):
        next(transcribe(backend, np.zeros(16000, np.float32)))


def test_output_formats():
    segs = [Segment(0.0, 1.5, "Hello there."), Segment(61.25, 3725.5, "Bye.")]
    srt = "".join(format_segments(segs, "srt"))
    assert "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n" in srt and "01:02:05,500" in srt
    vtt = "".join(format_segments(segs, "vtt"))
    assert vtt.startswith("WEBVTT") and "00:01:01.250 --> 01:02:05.500" in vtt
    import json

    data = json.loads("".join(format_segments(segs, "json", "a.wav")))
    assert data["source"] == "a.wav" and data["segments"][1]["text"] == "Bye."
    assert "".join(format_segments(segs, "txt")) == "Hello there.\nBye.\n"
    with pytest.raises(ValueError, match="format"):
        list(format_segments(segs, "doc"))


def test_a_window_that_loops_under_every_attempt_keeps_the_loop_once():
    """Greedy, unprompted and beam decodes all loop inside the first segment: the segment keeps
    the repeated word once, and the loop is not the next window's prompt."""

    class Looping(FakeBackend):
        def generate(self, audios, *, previous=None, **kw):
            self.prompts = getattr(self, "prompts", []) + [previous]
            out = super().generate(audios, previous=previous, **kw)
            for hyp in out:
                if len(self.calls) <= 3:  # the first window's three attempts
                    hyp.tokens = [hyp.tokens[0], 10, *[11] * 60, *hyp.tokens[1:]]
            return out

    backend = Looping()
    segments = list(transcribe(backend, script_audio(80)))
    assert segments[0].text.split() == ["w0", "w1"]  # "w0", then the looping "w1" once
    assert backend.prompts[3] is None  # the second window: no prompt from the looped one
