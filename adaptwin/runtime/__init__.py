"""Inference engines behind one interface, and the transcription built on it."""

from .backends import Backend, StepperBackend, get_backend

__all__ = ["Backend", "StepperBackend", "get_backend"]
