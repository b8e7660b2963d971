"""whisper.cpp's model file (the ggml format of its `convert-pt-to-ggml.py`) from our weights, and
a reader for checking what was written.

Layout, all little-endian: the magic, eleven int32 hyper-parameters (the last is the file's
type, with the quantization version folded in for quantized files), the mel filter bank
(n_mel, n_fft, then n_mel x n_fft float32), the byte-level vocabulary without the special
tokens (whisper.cpp adds those from n_vocab), then every tensor: n_dims, name length, type,
the dimensions innermost first, the name, the data. Tensor names are openai/whisper's.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInput
from ..models.tokenizer import byte_to_unicode

MAGIC = 0x67676D6C
F32, F16, Q8_0 = 0, 1, 8  # ggml tensor types
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # ggml file types ("mostly" this type)
QNT_VERSION, QNT_FACTOR = 2, 1000  # quantized files store ftype + QNT_VERSION * QNT_FACTOR
Q8_BLOCK = 32  # values per q8_0 block: one float16 scale, then 32 int8

# Hugging Face names -> openai/whisper's, applied to the part after "model.encoder." etc.
_LAYER = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
_TOP = {
    "encoder.layer_norm": "encoder.ln_post",
    "decoder.layer_norm": "decoder.ln",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
}
# kept in float32 whatever the file type (whisper.cpp reads them so)
_ALWAYS_F32 = ("encoder.positional_embedding", "decoder.positional_embedding")


def ggml_name(hf_name: str) -> str | None:
    """openai/whisper's name of a Hugging Face parameter (None: not stored, e.g. the tied head)."""
    if not hf_name.startswith("model."):
        return None  # proj_out: tied to the token embedding
    name = hf_name.removeprefix("model.")
    m = re.match(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$", name)
    if m:
        side, i, module, kind = m.groups()
        return f"{side}.blocks.{i}.{_LAYER[module]}.{kind}"
    for hf, ours in _TOP.items():
        if name.startswith(hf):
            return ours + name[len(hf) :]
    return name  # encoder.conv1.weight and the like are named alike


def byte_level_vocab(tokenizer) -> list[bytes]:
    """The vocabulary without added tokens, in id order, as the raw bytes of each token."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
    decode = {c: b for b, c in byte_to_unicode().items()}
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise InvalidInput("the tokenizer's vocabulary is not numbered 0..n-1: cannot write a ggml vocabulary")
    return [bytes(decode[c] for c in token) for token, _ in ordered]


def quantize_q8_0(x: np.ndarray) -> bytes:
    """ggml's q8_0 of a float array whose innermost size is a multiple of 32: per block of 32,
    the scale max|x|/127 as float16 and 32 int8 (rounded half away from zero, as ggml does)."""
    blocks = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, Q8_BLOCK)  # [n_blocks, 32]
    d = np.abs(blocks).max(axis=1) / 127.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    v = blocks * inv[:, None]
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", (Q8_BLOCK,))])
    out["d"], out["qs"] = d.astype(np.float16), q
    return out.tobytes()


def dequantize_q8_0(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=[("d", "<f2"), ("qs", "i1", (Q8_BLOCK,))])
    return (blocks["qs"].astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(shape)


def _tensor_type(name: str, array: np.ndarray, file_type: str) -> int:
    if file_type == "f32" or array.ndim < 2 or name in _ALWAYS_F32 or name.endswith(".bias"):
        return F32
    if file_type == "q8_0" and array.ndim == 2 and array.shape[-1] % Q8_BLOCK == 0:
        return Q8_0
    return F16  # the convolutions stay float16 in quantized files, as whisper.cpp expects


def write_ggml(model, processor, out: str | Path, file_type: str = "f16") -> Path:
    """Write a dense Whisper model (``load_whisper(...).model`` and its processor) as a whisper.cpp file."""
    if file_type not in FILE_TYPES:
        raise InvalidInput(f"ggml type {file_type!r}: choose one of {', '.join(FILE_TYPES)}")
    if getattr(model.config, "adaptwin", None):
        raise InvalidInput(
            "whisper.cpp runs dense weights only, and this model is compressed: convert the dense model it came "
            "from (as a baseline), or use adaptwin-export for ONNX graphs that run the small matmuls"
        )
    c = model.config
    filters = np.asarray(processor.feature_extractor.mel_filters, dtype=np.float32).T  # [n_mels, n_fft/2 + 1]
    ftype = FILE_TYPES[file_type] + (QNT_VERSION * QNT_FACTOR if file_type == "q8_0" else 0)
    hparams = (
        c.vocab_size,
        c.max_source_positions,
        c.d_model,
        c.encoder_attention_heads,
        c.encoder_layers,
        c.max_target_positions,
        c.d_model,
        c.decoder_attention_heads,
        c.decoder_layers,
        c.num_mel_bins,
        ftype,
    )
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<12i", MAGIC, *hparams))
            f.write(struct.pack("<2i", *filters.shape))
            f.write(filters.astype("<f4").tobytes())
            vocab = byte_level_vocab(processor.tokenizer)
            f.write(struct.pack("<i", len(vocab)))
            for token in vocab:
                f.write(struct.pack("<i", len(token)) + token)
            for hf_name, tensor in model.state_dict().items():
                name = ggml_name(hf_name)
                if name is None:
                    continue
                array = tensor.detach().float().cpu().numpy()
                if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                    array = array.reshape(-1, 1)  # whisper.cpp adds them to [frames, channels] as [channels, 1]
                kind = _tensor_type(name, array, file_type)
                encoded = name.encode()
                f.write(struct.pack("<3i", array.ndim, len(encoded), kind))
                f.write(struct.pack(f"<{array.ndim}i", *reversed(array.shape)))
                f.write(encoded)
                if kind == Q8_0:
                    f.write(quantize_q8_0(array))
                else:
                    f.write(array.astype("<f4" if kind == F32 else "<f2").tobytes())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


@dataclass
class GgmlFile:
    hparams: dict[str, int]
    filters: np.ndarray  # [n_mels, n_fft/2 + 1]
    vocab: list[bytes]
    tensors: dict[str, tuple[int, tuple[int, ...], np.ndarray]]  # name -> (type, shape outermost first, values)


HPARAM_NAMES = (
    "n_vocab",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
    "n_mels",
    "ftype",
)


def read_ggml(path: str | Path) -> GgmlFile:
    """Read a whisper.cpp model file back (values as float32 arrays; q8_0 dequantized)."""
    data = Path(path).read_bytes()
    at = 0

    def take(fmt: str):
        nonlocal at
        values = struct.unpack_from(fmt, data, at)
        at += struct.calcsize(fmt)
        return values

    if take("<i")[0] != MAGIC:
        raise InvalidInput(f"{path} is not a ggml model file (bad magic)")
    hparams = dict(zip(HPARAM_NAMES, take("<11i")))
    n_mel, n_fft = take("<2i")
    filters = np.frombuffer(data, "<f4", n_mel * n_fft, at).reshape(n_mel, n_fft)
    at += 4 * n_mel * n_fft
    vocab = []
    for _ in range(take("<i")[0]):
        (n,) = take("<i")
        vocab.append(data[at : at + n])
        at += n
    tensors = {}
    while at < len(data):
        n_dims, name_len, kind = take("<3i")
        shape = tuple(reversed(take(f"<{n_dims}i")))
        name = data[at : at + name_len].decode()
        at += name_len
        count = int(np.prod(shape))
        if kind == Q8_0:
            size = count // Q8_BLOCK * (2 + Q8_BLOCK)
            values = dequantize_q8_0(data[at : at + size], shape)
        else:
            size = count * (4 if kind == F32 else 2)
            values = np.frombuffer(data, "<f4" if kind == F32 else "<f2", count, at).astype(np.float32).reshape(shape)
        at += size
        tensors[name] = (kind, shape, values)
    return GgmlFile(hparams, filters, vocab, tensors)
