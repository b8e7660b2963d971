"""What every engine of an ``adaptwin-export`` folder shares: configs, processor, features."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def cross_feed(cross: list) -> dict[str, Any]:
    """Name the per-layer cross-attention keys/values: cross.{i}.key, cross.{i}.value."""
    return {f"cross.{i // 2}.{('key', 'value')[i % 2]}": t for i, t in enumerate(cross)}


def features(processor: Any, audios: list[np.ndarray], where: Any) -> np.ndarray:
    """[B, n_mels, 3000] float32 log-mel windows of 16 kHz clips (<= 30 s each)."""
    if processor is None:
        raise ValueError(f"{where} has no processor files (processor_config.json or preprocessor_config.json): "
                         "cannot compute features; export from a model folder that has them")
    from ..audio import SAMPLE_RATE

    return processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features


class ExportedWhisper:
    float_type: type = np.float32

    def __init__(self, folder: str | os.PathLike, required: tuple[str, ...], processor: Any = None) -> None:
        from transformers import GenerationConfig, WhisperConfig

        self.path = Path(folder).expanduser()
        missing = [f for f in (*required, "config.json") if not (self.path / f).is_file()]
        if missing:
            name = str(folder).rstrip("/")
            raise ValueError(f"{name} is not an exported model for this backend (missing {', '.join(missing)}): "
                             f"export it first, e.g. `adaptwin-export {name} --out {name}-onnx`, and pass that folder")
        self.config = WhisperConfig.from_pretrained(str(self.path))
        self.generation_config = GenerationConfig.from_pretrained(str(self.path)) if (
            self.path / "generation_config.json").is_file() else GenerationConfig.from_model_config(self.config)
        self.processor = processor
        if processor is None and any((self.path / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
            from transformers import WhisperProcessor

            self.processor = WhisperProcessor.from_pretrained(str(self.path))
        info = self.path / "adaptwin_export.json"
        self.info = json.loads(info.read_text()) if info.is_file() else {}

    def features(self, audios: list[np.ndarray]) -> np.ndarray:
        return features(self.processor, audios, self.path).astype(self.float_type)
