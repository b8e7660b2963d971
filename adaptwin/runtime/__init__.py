"""Inference engines behind one interface, and the transcription built on it."""

from .backends import Backend, StepperBackend, get_backend
from .gate import NoSpeechGate
from .segments import Segment, Word
from .whisper import TranscriptionInfo, Whisper

__all__ = [
    "Backend",
    "NoSpeechGate",
    "Segment",
    "StepperBackend",
    "TranscriptionInfo",
    "Whisper",
    "Word",
    "get_backend",
]
