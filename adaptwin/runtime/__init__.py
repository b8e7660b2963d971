"""Running models: backends shared by evaluation, transcription and streaming."""

from .backends import Backend, TorchBackend, get_backend

__all__ = ["Backend", "TorchBackend", "get_backend"]
