"""Compression: joint low-rank factorization of the attention product twins and thin FFN
factors, ranks allocated to a budget by measured sensitivity (``compress_``)."""

from .api import CompressionReport, ModuleReport, compress_, is_compressed, part_parameters
from .calibrate import Calibration, build_calibration
from .config import AdaPTwinConfig
from .vocab import token_prior

__all__ = [
    "AdaPTwinConfig",
    "Calibration",
    "build_calibration",
    "CompressionReport",
    "ModuleReport",
    "compress_",
    "is_compressed",
    "part_parameters",
    "token_prior",
]
