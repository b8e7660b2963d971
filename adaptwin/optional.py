"""Optional heavy packages, imported in one place with the command that installs them."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from .errors import MissingDependency

HINTS = {
    "onnxruntime": "pip install 'adaptwin[onnx]' (or onnxruntime-gpu for CUDA)",
    "onnx": "pip install 'adaptwin[onnx]'",
    "sounddevice": "pip install 'adaptwin[mic]'",
    "rdata": "pip install 'adaptwin[data]'",
    "tensorrt": "pip install 'adaptwin[trt]' on an x86-64 CUDA machine (NVIDIA's tensorrt wheels), or on Jetson "
    "install JetPack's python3-libnvinfer",
}


def require(module: str, purpose: str) -> ModuleType:
    """``import module``, or a ``MissingDependency`` naming ``purpose`` and how to install it."""
    try:
        return import_module(module)
    except ImportError as exc:
        hint = HINTS.get(module.split(".")[0], f"pip install {module.split('.')[0]}")
        raise MissingDependency(f"{purpose} needs {module} ({exc}): {hint}") from None
