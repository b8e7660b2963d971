"""AdaPTwin: joint low-rank compression of Whisper's attention product twins."""

from .calibrate import Calibration
from .checkpoint import LoadedWhisper, load_whisper, save
from .compress import CompressionReport, ModuleReport, compress_
from .config import FORMAT_VERSION, AdaPTwinConfig

__version__ = "0.1.0"

__all__ = [
    "AdaPTwinConfig",
    "Calibration",
    "CompressionReport",
    "FORMAT_VERSION",
    "ModuleReport",
    "__version__",
    "compress_",
    "LoadedWhisper",
    "load_whisper",
    "save",
]
