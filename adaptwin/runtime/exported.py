"""What every engine of an ``adaptwin-export`` folder shares: configs, processor, features.
Read with json, NumPy and ``tokenizers`` only: the deployed runtime needs neither PyTorch
nor transformers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .features import LogMel, Processor


def cross_feed(cross: list) -> dict[str, Any]:
    """Name the per-layer cross-attention keys/values: cross.{i}.key, cross.{i}.value."""
    return {f"cross.{i // 2}.{('key', 'value')[i % 2]}": t for i, t in enumerate(cross)}


def features(processor: Any, audios: list[np.ndarray], where: Any, frames: int | None = None) -> np.ndarray:
    """[B, n_mels, 3000] float32 log-mel windows of 16 kHz clips (<= 30 s each), or their first
    ``frames`` (a dynamic audio context)."""
    if processor is None or processor.feature_extractor is None:
        raise InvalidInput(
            f"{where} has no processor files (processor_config.json or preprocessor_config.json): "
            "cannot compute features; export from a model folder that has them"
        )
    extractor = processor.feature_extractor
    if frames is not None and isinstance(extractor, LogMel):  # computes only the frames it returns
        return extractor(audios, sampling_rate=16000, return_tensors="np", frames=frames).input_features
    feats = extractor(audios, sampling_rate=16000, return_tensors="np").input_features
    return feats if frames is None else feats[..., :frames]


class ExportedWhisper:
    float_type: type = np.float32

    def __init__(self, folder: str | os.PathLike, required: tuple[str, ...], processor: Any = None) -> None:
        self.path = Path(folder).expanduser()
        missing = [f for f in (*required, "config.json") if not (self.path / f).is_file()]
        if missing:
            name = str(folder).rstrip("/")
            raise InvalidInput(
                f"{name} is not an exported model for this backend (missing {', '.join(missing)}): "
                f"export it first, e.g. `adaptwin-export {name} --out {name}-onnx`, and pass that folder"
            )
        config = json.loads((self.path / "config.json").read_text())
        if config.get("model_type") != "whisper":
            raise InvalidInput(f"{self.path} holds a {config.get('model_type')!r} model, not Whisper")
        self.config = SimpleNamespace(**config)
        generation = self.path / "generation_config.json"
        keys = ("decoder_start_token_id", "eos_token_id", "pad_token_id", "suppress_tokens", "begin_suppress_tokens")
        gen = {k: config.get(k) for k in keys}
        gen.update(json.loads(generation.read_text()) if generation.is_file() else {})
        self.generation_config = SimpleNamespace(**gen)
        self.processor = processor if processor is not None else Processor(self.path, self.config.num_mel_bins)
        info = self.path / "adaptwin_export.json"
        self.info = json.loads(info.read_text()) if info.is_file() else {}

    def features(self, audios: list[np.ndarray], frames: int | None = None) -> np.ndarray:
        return features(self.processor, audios, self.path, frames).astype(self.float_type)
