"""AdaPTwin: joint low-rank compression of Whisper's attention product twins.

Names are imported on first use, so the deployment path (``adaptwin.runtime`` with ONNX
Runtime) never loads PyTorch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "AdaPTwinConfig": ".compress",
    "FORMAT_VERSION": ".models.structure",
    "Calibration": ".compress",
    "CompressionReport": ".compress",
    "ModuleReport": ".compress",
    "compress_": ".compress",
    "LoadedWhisper": ".models.checkpoint",
    "load_whisper": ".models.checkpoint",
    "save": ".models.checkpoint",
    "AdaptConfig": ".adapt",
    "AdaptReport": ".adapt",
    "adapt_": ".adapt",
    "Whisper": ".runtime",
    "NoSpeechGate": ".runtime",
    "AdaptwinError": ".errors",
}

__all__ = [
    "AdaptConfig",
    "AdaptReport",
    "AdaptwinError",
    "adapt_",
    "AdaPTwinConfig",
    "Calibration",
    "CompressionReport",
    "FORMAT_VERSION",
    "LoadedWhisper",
    "ModuleReport",
    "NoSpeechGate",
    "Whisper",
    "__version__",
    "compress_",
    "load_whisper",
    "save",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'adaptwin' has no attribute {name!r}")
