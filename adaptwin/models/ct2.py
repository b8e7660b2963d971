"""Read CTranslate2 / faster-whisper ``model.bin`` files and map them onto Hugging Face Whisper.

Format (CTranslate2 ``ModelSpec._serialize``): uint32 binary version, name, uint32
revision, uint32 count, then per variable: name, uint8 rank, rank x uint32 dims, uint8
dtype id, uint32 byte count, raw bytes; finally uint32 alias count and (alias, target)
name pairs. Strings are uint16 length (with NUL) + UTF-8 + NUL.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value[0]

    def string(self) -> str:
        n = self.take("H")
        text = bytes(self.data[self.pos : self.pos + n - 1]).decode("utf-8")
        self.pos += n
        return text


def read_model_bin(data: bytes | memoryview, origin: str = "model.bin") -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model file (aliases resolved) as numpy arrays."""
    r = _Reader(data)
    try:
        version = r.take("I")
        if not 1 <= version <= 10:
            raise ValueError
        name = r.string()
        r.take("I")  # spec revision
        arrays: dict[str, np.ndarray] = {}
        for _ in range(r.take("I")):
            var = r.string()
            shape = [r.take("I") for _ in range(r.take("B"))]
            dtype = _DTYPES[r.take("B")]
            nbytes = r.take("I")
            if r.pos + nbytes > len(r.data):
                raise EOFError
            raw = r.data[r.pos : r.pos + nbytes]
            r.pos += nbytes
            if dtype == "bfloat16":
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype)
            arrays[var] = arr.reshape(shape)
        for _ in range(r.take("I")):
            alias, target = r.string(), r.string()
            arrays[alias] = arrays[target]
    except (struct.error, EOFError, KeyError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(
            f"{origin} is truncated or not a CTranslate2 model file ({type(exc).__name__} at byte {r.pos} of "
            f"{len(r.data)}): re-download or reinstall it"
        ) from None
    if name != "WhisperSpec":
        raise InvalidInput(f"{origin} holds a CTranslate2 {name!r}, not a Whisper model")
    if any(k.endswith("weight_scale") for k in arrays):
        raise InvalidInput(
            f"{origin} is int8-quantized; adaptwin needs the float16/float32 conversion "
            "(ct2-transformers-converter --quantization float16)"
        )
    return arrays


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.float32))


def dims(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    layer = re.compile(r"^(encoder|decoder)/layer_(\d+)/")
    found = [m.groups() for m in map(layer.match, arrays) if m]
    enc_layers = len({i for side, i in found if side == "encoder"})
    dec_layers = len({i for side, i in found if side == "decoder"})
    d_model, n_mels, _ = arrays["encoder/conv1/weight"].shape
    return dict(
        d_model=int(d_model),
        num_mel_bins=int(n_mels),
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=int(arrays["encoder/num_heads"]),
        decoder_attention_heads=int(arrays["decoder/num_heads"]),
        encoder_ffn_dim=int(arrays["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(arrays["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(arrays["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(arrays["decoder/position_encodings/encodings"].shape[0]),
        vocab_size=int(arrays["decoder/embeddings/weight"].shape[0]),
    )


def to_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """HF ``WhisperForConditionalGeneration`` state dict from CTranslate2 Whisper variables."""
    sd: dict[str, torch.Tensor] = {}
    d = dims(arrays)
    D = d["d_model"]

    def linear(hf: str, ct: str) -> None:
        sd[f"{hf}.weight"] = _t(arrays[f"{ct}/weight"])
        if f"{ct}/bias" in arrays:
            sd[f"{hf}.bias"] = _t(arrays[f"{ct}/bias"])

    def norm(hf: str, ct: str) -> None:
        sd[f"{hf}.weight"] = _t(arrays[f"{ct}/gamma"])
        sd[f"{hf}.bias"] = _t(arrays[f"{ct}/beta"])

    def split(hf: str, names: tuple[str, ...], ct: str) -> None:
        w = _t(arrays[f"{ct}/weight"])
        b = _t(arrays[f"{ct}/bias"]) if f"{ct}/bias" in arrays else torch.zeros(w.shape[0])
        for i, n in enumerate(names):
            sd[f"{hf}.{n}.weight"] = w[i * D : (i + 1) * D].clone()
            if n == "k_proj":  # Whisper's key projection has no bias
                kb = b[i * D : (i + 1) * D]
                if kb.abs().max() > 0:
                    raise InvalidInput(f"{ct} has a non-zero key bias, which Whisper cannot hold")
            else:
                sd[f"{hf}.{n}.bias"] = b[i * D : (i + 1) * D].clone()

    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        sd[f"{hf}.embed_positions.weight"] = _t(arrays[f"{side}/position_encodings/encodings"])
        norm(f"{hf}.layer_norm", f"{side}/layer_norm")
        for i in range(d[f"{side}_layers"]):
            ct, h = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            split(f"{h}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{ct}/self_attention/linear_0")
            linear(f"{h}.self_attn.out_proj", f"{ct}/self_attention/linear_1")
            norm(f"{h}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
            linear(f"{h}.fc1", f"{ct}/ffn/linear_0")
            linear(f"{h}.fc2", f"{ct}/ffn/linear_1")
            norm(f"{h}.final_layer_norm", f"{ct}/ffn/layer_norm")
            if side == "decoder":
                split(f"{h}.encoder_attn", ("q_proj",), f"{ct}/attention/linear_0")
                split(f"{h}.encoder_attn", ("k_proj", "v_proj"), f"{ct}/attention/linear_1")
                linear(f"{h}.encoder_attn.out_proj", f"{ct}/attention/linear_2")
                norm(f"{h}.encoder_attn_layer_norm", f"{ct}/attention/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.decoder.embed_tokens.weight"] = _t(arrays["decoder/embeddings/weight"])
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    return sd
