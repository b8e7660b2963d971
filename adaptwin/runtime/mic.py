"""Live microphone and simulated streams through the same ``OnlineProcessor`` loop."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import ExternalFailure, MissingDependency
from ..optional import require
from .streaming import Emitted, OnlineProcessor

logger = logging.getLogger(__name__)


class RingBuffer:
    """Fixed-size float32 ring filled by the audio callback, drained by the decode loop.
    When the reader falls behind, the oldest audio is overwritten and counted."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.data = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
        self.write = 0  # total samples written
        self.read = 0  # total samples read
        self.dropped = 0  # samples overwritten before they were read
        self.lock = threading.Lock()

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)[-len(self.data) :]
        with self.lock:
            n, size = len(samples), len(self.data)
            start = self.write % size
            first = min(n, size - start)
            self.data[start : start + first] = samples[:first]
            self.data[: n - first] = samples[first:]
            self.write += n
            if self.write - self.read > size:
                self.dropped += self.write - self.read - size
                self.read = self.write - size

    def pop(self) -> np.ndarray:
        with self.lock:
            n, size = self.write - self.read, len(self.data)
            start = self.read % size
            idx = (start + np.arange(n)) % size
            out = self.data[idx].copy()
            self.read = self.write
        return out


@dataclass
class StreamStats:
    overflows: int = 0  # input over-runs reported by the audio driver
    dropped_seconds: float = 0.0  # audio lost because decoding fell behind the ring buffer
    words: list[Emitted] = field(default_factory=list)


def input_devices(sd) -> str:
    devices = [
        f"  {i}: {d['name']} ({d['max_input_channels']} ch)"
        for i, d in enumerate(sd.query_devices())
        if d.get("max_input_channels", 0) > 0
    ]
    return "\n".join(devices) if devices else "  (none: is a microphone connected and allowed?)"


def import_sounddevice():
    try:
        sd = require("sounddevice", "the live microphone")
    except OSError:
        raise MissingDependency(
            "sounddevice cannot find the PortAudio library: apt-get install libportaudio2 "
            "(macOS: brew install portaudio)"
        ) from None
    return sd


def run_mic(
    online: OnlineProcessor,
    *,
    device: int | str | None = None,
    block: float = 0.05,
    on_words: Callable[[list[Emitted], str], None] | None = None,
    sd=None,
    stop: threading.Event | None = None,
) -> StreamStats:
    """Listen until Ctrl-C (or ``stop``), committing words as they are decided; the last
    words are flushed on exit. The audio comes in ``block``-second pieces, and the loop calls
    ``process`` as soon as the processor has work (``needed``), as ``simulate`` models it.
    ``sd``: the sounddevice module (tests inject a fake)."""
    sd = sd or import_sounddevice()
    ring, stats = RingBuffer(), StreamStats()

    def callback(indata, frames, time_info, status):
        if status and getattr(status, "input_overflow", False):
            stats.overflows += 1
        ring.push(indata[:, 0] if indata.ndim == 2 else indata)

    try:
        stream = sd.InputStream(
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype="float32",
            device=device,
            blocksize=int(block * SAMPLE_RATE),
            callback=callback,
        )
    except Exception as exc:  # PortAudioError, ValueError for unknown names
        raise ExternalFailure(
            f"cannot open input device {device!r}: {exc}\navailable input devices:\n{input_devices(sd)}\n"
            "choose one with --device N"
        ) from None
    report = on_words or (lambda words, pending: None)
    try:
        with stream:
            while stop is None or not stop.is_set():
                online.insert_audio(ring.pop())
                # after a decode slower than a chunk the next one starts at once, with all that came
                if (wait := online.needed()) > 0:
                    time.sleep(min(wait, block))
                    continue
                words = online.process()
                stats.words += words
                report(words, online.pending_text())
    except KeyboardInterrupt:
        pass
    finally:
        online.insert_audio(ring.pop())
        words = online.finish()
        stats.words += words
        report(words, "")
        stats.dropped_seconds = ring.dropped / SAMPLE_RATE
    return stats


def simulate(
    online: OnlineProcessor,
    audio: np.ndarray,
    *,
    realtime: bool = False,
    on_words: Callable[[list[Emitted], str], None] | None = None,
) -> list[tuple[Emitted, float]]:
    """Feed a recording through the online processor as a live source would: each step
    takes all audio that has arrived by the time the processor has work (``needed``), so a
    slow engine gets bigger steps and falls behind exactly as it would live. Returns (word,
    emission time) pairs on the stream's clock: the wall clock with ``realtime``, else a
    simulated clock where audio arrives at its own pace and decoding takes the time it really
    took."""
    report = on_words or (lambda words, pending: None)
    start = time.perf_counter()
    clock, pos, out = 0.0, 0, []
    while pos < len(audio):
        ready = pos / SAMPLE_RATE + online.needed()  # when the processor has work
        if realtime:
            time.sleep(max(0.0, ready - (time.perf_counter() - start)))
            clock = time.perf_counter() - start
        else:
            clock = max(clock, ready)
        end = min(len(audio), max(pos + 1, round(clock * SAMPLE_RATE)))
        online.insert_audio(audio[pos:end])
        pos = end
        t0 = time.perf_counter()
        words = online.process()
        clock += time.perf_counter() - t0
        if realtime:
            clock = time.perf_counter() - start
        out += [(w, clock) for w in words]
        report(words, online.pending_text())
    t0 = time.perf_counter()
    words = online.finish()
    clock = time.perf_counter() - start if realtime else clock + time.perf_counter() - t0
    out += [(w, clock) for w in words]
    report(words, "")
    return out


def print_words(words: list[Emitted], pending: str, *, out=None, err=None) -> None:
    """Committed text to stdout; the tentative rest on stderr, dimmed when it is a terminal."""
    out, err = out or sys.stdout, err or sys.stderr
    if words:
        out.write("".join(w.word.text for w in words))
        out.flush()
    if err.isatty():
        err.write(f"\r\033[K\033[2m{pending.strip()[-70:]}\033[0m" if pending else "\r\033[K")
        err.flush()
