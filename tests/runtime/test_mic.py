import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from fake_whisper import FakeBackend, script_audio

from adaptwin.audio import SAMPLE_RATE
from adaptwin.runtime.mic import RingBuffer, run_mic
from adaptwin.runtime.streaming import OnlineProcessor


class FakeSoundDevice:
    """sounddevice's InputStream/query_devices, fed from a recording 20x faster than real time."""

    def __init__(self, audio, overflow_every=0):
        self.audio, self.overflow_every = audio, overflow_every
        self.done = threading.Event()

    def query_devices(self):
        return [{"name": "Fake USB mic", "max_input_channels": 1}, {"name": "HDMI out", "max_input_channels": 0}]

    def InputStream(self, samplerate, channels, dtype, device, blocksize, callback):  # noqa: N802
        if device not in (None, 0):
            raise ValueError(f"No input device matching {device!r}")
        fake = self

        class Stream:
            def __enter__(self):
                self.thread = threading.Thread(target=self.run, daemon=True)
                self.thread.start()
                return self

            def run(self):
                for n, i in enumerate(range(0, len(fake.audio), blocksize)):
                    block = fake.audio[i : i + blocksize].reshape(-1, 1)
                    status = SimpleNamespace(input_overflow=bool(fake.overflow_every and n % fake.overflow_every == 1))
                    callback(block, len(block), None, status)
                    time.sleep(blocksize / SAMPLE_RATE / 20)
                fake.done.set()

            def __exit__(self, *exc):
                self.thread.join()

        return Stream()


def test_mic_path_commits_all_words_and_counts_overruns():
    audio = script_audio(20)
    sd = FakeSoundDevice(audio, overflow_every=25)
    online = OnlineProcessor(FakeBackend(), min_chunk=0.5)
    seen = []
    stats = run_mic(online, sd=sd, stop=sd.done, on_words=lambda words, pending: seen.extend(words))
    assert [e.word.text.strip() for e in stats.words] == [f"w{k}" for k in range(20)]
    assert seen == stats.words
    assert stats.overflows >= 1 and stats.dropped_seconds == 0.0


def test_wrong_device_lists_the_inputs():
    sd = FakeSoundDevice(np.zeros(100, np.float32))
    with pytest.raises(RuntimeError, match=r"(?s)cannot open input device 7.*0: Fake USB mic.*--device") as err:
        run_mic(OnlineProcessor(FakeBackend()), device=7, sd=sd)
    assert "HDMI" not in str(err.value)


def test_ctrl_c_flushes_the_last_words(monkeypatch):
    import adaptwin.runtime.mic as mic

    audio = script_audio(6)
    sd = FakeSoundDevice(audio)
    online = OnlineProcessor(FakeBackend(), min_chunk=0.5)

    def sleep(seconds):  # Ctrl-C once the audio is over, in the loop's wait
        if sd.done.is_set():
            raise KeyboardInterrupt
        time.sleep(seconds)

    monkeypatch.setattr(mic, "time", SimpleNamespace(perf_counter=time.perf_counter, sleep=sleep))
    stats = run_mic(online, block=0.02, sd=sd)
    assert [e.word.text.strip() for e in stats.words] == [f"w{k}" for k in range(6)]


def test_ring_buffer_overwrites_oldest_and_counts():
    ring = RingBuffer(seconds=1.0)
    ring.push(np.arange(10_000, dtype=np.float32))
    ring.push(np.arange(10_000, 20_000, dtype=np.float32))
    out = ring.pop()
    assert len(out) == SAMPLE_RATE and out[0] == 4000 and out[-1] == 19_999
    assert ring.dropped == 4000 and len(ring.pop()) == 0


def test_a_slow_decode_is_followed_at_once(monkeypatch):
    """The loop calls ``process`` as soon as the processor has work (as ``simulate`` models
    it): a decode slower than a chunk is followed by the next one without sleeping."""
    import adaptwin.runtime.mic as mic

    events = []  # "decode" or "sleep", in order
    clock = SimpleNamespace(perf_counter=time.perf_counter, sleep=lambda s: (events.append("sleep"), time.sleep(s)))
    monkeypatch.setattr(mic, "time", clock)
    sd = FakeSoundDevice(script_audio(12))
    online = OnlineProcessor(FakeBackend(), min_chunk=0.5)
    real_process = online.process

    def slow():
        events.append("decode")
        time.sleep(0.05)  # a second of the fake's audio: two chunks
        return real_process()

    online.process = slow
    stats = run_mic(online, sd=sd, stop=sd.done)
    assert [e.word.text.strip() for e in stats.words] == [f"w{k}" for k in range(12)]
    after = [b for a, b in zip(events, events[1:]) if a == "decode"]
    assert events[0] == "sleep" and after[:3] == ["decode"] * 3
