"""Torch graphs -> ONNX files: encoder, first-step decoder, decoder with past, merged decoder.

Weights shared between graphs (the three decoders hold the same matrices) are written
once into ``model.onnx_data``, which every graph references by offset, so the folder costs
one copy of the model. ``int8`` quantizes every MatMul weight per output channel with ONNX
Runtime's dynamic quantization; ``fp16`` exports the graphs in half precision (for GPUs).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInput
from ..models.graphs import DecoderGraph, EncoderGraph
from ..models.modules import split_lookup
from ..optional import require
from .names import GRAPHS, INT8_BLOCKS, PRECISIONS  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

DATA_FILE = "model.onnx_data"
_INLINE_BYTES = 1024  # smaller tensors stay inside the graph files
_ALIGN_LARGE, _LARGE = 65536, 2**20  # like onnx's external-data writer: big tensors page-aligned for mmap


def need_onnx():
    require("onnx", "ONNX export")
    require("onnxruntime", "ONNX export (validation)")


def cross_names(layers: int) -> list[str]:
    return [f"cross.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def past_names(layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


class _Decoder(nn.Module):
    """Flat-signature wrapper: (input_ids, logits_at, *cross, *past) -> (logits, *present);
    ``logits_at`` [K]: the positions of ``input_ids`` whose logits are returned."""

    def __init__(self, graph: DecoderGraph, with_past: bool) -> None:
        super().__init__()
        self.graph, self.with_past, self.layers = graph, with_past, len(graph.layers)

    def forward(self, input_ids, logits_at, *flat):
        n = 2 * self.layers
        pairs = lambda ts: [(ts[i], ts[i + 1]) for i in range(0, len(ts), 2)]  # noqa: E731
        past = pairs(flat[n:]) if self.with_past else None
        logits, presents = self.graph(input_ids, pairs(flat[:n]), past, at=logits_at)
        return (logits, *[t for kv in presents for t in kv])


def _int8_embedding(graph: DecoderGraph, blockwise: bool) -> None:
    """Look tokens up in an int8 copy of the [D, V] table, quantized as the logits weight will
    be: per token (``_share_int8_table`` then makes it the quantizer's copy) or, ``blockwise``,
    in the 8-bit blocks of ``block_quantize`` (byte-identical to the logits' ``MatMulNBits``
    weight, which ``write_shared`` then stores once). Either way the folder holds one table.
    A split head's two tables are looked up in blocks (shared with the logits' weights when
    those are blockwise, as in the decoder and all schemes)."""
    if graph.order is not None:
        q, scale = block_quantize(graph.kept.detach().float().numpy())  # [K, blocks, 32], [K, blocks]
        kept = _BlockEmbedding(torch.from_numpy(q), torch.from_numpy(scale), graph.kept.shape[0])
        q, scale = block_quantize(graph.table.detach().float().numpy())  # [V - K, blocks, 32], [V - K, blocks]
        other = _BlockEmbedding(torch.from_numpy(q), torch.from_numpy(scale), graph.table.shape[0], graph.inner)
        graph.embed = _SplitEmbedding(graph.order, graph.kept.shape[1], kept, other)
        return
    if blockwise:
        q, scale = block_quantize(graph.table.detach().float().numpy())  # [V, blocks, 32], [V, blocks]
        graph.embed = _BlockEmbedding(torch.from_numpy(q), torch.from_numpy(scale), graph.table.shape[0], graph.inner)
        return
    scale = graph.table.abs().amax(dim=0).clamp_min(1e-12) / 127.0  # [V]
    graph.embed = _QuantEmbedding(torch.round(graph.table / scale).to(torch.int8), scale, graph.inner)


class _QuantEmbedding(nn.Module):
    def __init__(self, table: torch.Tensor, scale: torch.Tensor, inner: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("table", table)  # [D, V] int8 ([r, V] for a factorized head)
        self.register_buffer("scale", scale)  # [V]
        # None, or the head's [r, D] factor: the decoder graph's own tensor, so the export stores it once
        self.register_buffer("inner", inner)

    def forward(self, ids):
        x = (self.table[:, ids].float() * self.scale[ids]).permute(1, 2, 0)  # [D or r, B, T] -> [B, T, D or r]
        return x if self.inner is None else x @ self.inner  # [B, T, r] @ [r, D] -> [B, T, D]


class _BlockEmbedding(nn.Module):
    def __init__(self, q: torch.Tensor, scale: torch.Tensor, width: int, inner: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("q", q)  # [V, blocks, INT8_BLOCK] uint8, zero point 128
        self.register_buffer("scale", scale)  # [V, blocks]
        self.width = width  # D (or r): the last block may be padded
        self.register_buffer("inner", inner)  # None, or the head's [r, D] factor

    def forward(self, ids):
        x = (self.q[ids].float() - 128.0) * self.scale[ids].unsqueeze(-1)  # [B, T, blocks, INT8_BLOCK]
        x = x.flatten(-2)[..., : self.width]  # [B, T, D or r]
        return x if self.inner is None else x @ self.inner  # [B, T, r] @ [r, D] -> [B, T, D]


class _SplitEmbedding(nn.Module):
    def __init__(self, order: torch.Tensor, kept: int, kept_rows: nn.Module, other_rows: nn.Module) -> None:
        super().__init__()
        self.register_buffer("order", order)  # the decoder graph's own [V] tensor
        self.kept, self.kept_rows, self.other_rows = kept, kept_rows, other_rows

    def forward(self, ids):
        return split_lookup(ids, self.order, self.kept, self.kept_rows, self.other_rows)  # [B, T, D]


def export_torch_graphs(
    model: nn.Module, folder: Path, *, precision: str = "fp32", opset: int = 17, int8_blocks: str = "decoder"
) -> dict[str, Path]:
    """Trace the four graphs of ``model`` into ``folder`` (one file each, weights inline or
    in per-file external data); returns their paths. ``int8_blocks``: the scheme
    ``quantize_int8`` will apply (the int8 token lookup is quantized as the logits will be)."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    model = copy.deepcopy(model).float().eval()
    cfg = model.config
    layers, mels = cfg.decoder_layers, cfg.num_mel_bins
    frames = 2 * cfg.max_source_positions
    encoder = EncoderGraph(model).to(dtype)
    decoder = DecoderGraph(model)
    if precision == "int8":
        _int8_embedding(decoder, blockwise=int8_blocks != "ffn")
    decoder = decoder.to(dtype)

    with torch.no_grad():
        feats = torch.randn(1, mels, frames, dtype=dtype)
        enc_out = encoder(feats)
        cross = list(enc_out[1:])
        ids = torch.full((1, 2), cfg.decoder_start_token_id, dtype=torch.long)
        at = torch.arange(2)
        first = _Decoder(decoder, with_past=False)(ids, at, *cross)
        past = list(first[1:])

    axes_cross = {n: {0: "batch", 2: "encoder_length"} for n in cross_names(layers)}
    jobs = {
        "encoder_model": (
            encoder,
            (feats,),
            ["input_features"],
            ["last_hidden_state", *cross_names(layers)],
            {
                "input_features": {0: "batch", 2: "frames"},
                "last_hidden_state": {0: "batch", 1: "encoder_length"},
                **axes_cross,
            },
        ),
        "decoder_model": (
            _Decoder(decoder, False),
            (ids, at, *cross),
            ["input_ids", "logits_at", *cross_names(layers)],
            ["logits", *past_names(layers, "present")],
            None,
        ),
        "decoder_with_past_model": (_Decoder(decoder, True), (ids[:, :1], at[:1], *cross, *past), None, None, None),
    }
    dec_in = ["input_ids", "logits_at", *cross_names(layers), *past_names(layers, "past")]
    dec_out = ["logits", *past_names(layers, "present")]
    dec_axes = {
        "input_ids": {0: "batch", 1: "tokens"},
        "logits_at": {0: "positions"},
        "logits": {0: "batch", 1: "positions"},
        **axes_cross,
        **{n: {0: "batch", 2: "past_length"} for n in past_names(layers, "past")},
        **{n: {0: "batch", 2: "total_length"} for n in past_names(layers, "present")},
    }
    jobs["decoder_model"] = (
        *jobs["decoder_model"][:4],
        {k: v for k, v in dec_axes.items() if not k.startswith("past.")},
    )
    jobs["decoder_with_past_model"] = (
        jobs["decoder_with_past_model"][0],
        jobs["decoder_with_past_model"][1],
        dec_in,
        dec_out,
        dec_axes,
    )

    paths = {}
    for name, (module, args, inputs, outputs, axes) in jobs.items():
        path = folder / name / f"{name}.onnx"
        path.parent.mkdir()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        paths[name] = path
    # The merged decoder is the with-past graph: it also takes an empty past (length 0) on the first step.
    paths["decoder_model_merged"] = paths["decoder_with_past_model"]
    return paths


def quantize_int8(source: Path, target: Path, *, blocks: str = "decoder", decoder: bool = False) -> Path:
    """ONNX Runtime dynamic quantization, per output channel, of the MatMul weights, except
    those that ``blocks`` sends to ``MatMulNBits`` (8-bit values in blocks of 32 inputs, whose
    kernel also quantizes activations per block of 32, so an outlier channel only coarsens
    its own block; ``_blockwise``). The second FFN matrix's input (after GELU) carries
    Whisper's activation outliers, which per-tensor activation scales cannot hold (quantized
    that way, it doubled the encoder's int8 error): blockwise in every scheme. ``"decoder"``
    (the default; ``decoder`` says this graph is one) puts every weight of a decoder graph,
    the logits included, in blocks: there a token's activations share one scale that its
    outlier channels set; in blocks the logits error drops by a fifth at the same speed
    (docs/experiments/runtime.md). ``"all"`` adds the encoder (more exact, slower).

    Weights use 7 bits (``reduce_range``): on x86 CPUs without VNNI (AVX2 only) ONNX Runtime
    multiplies uint8 activations by int8 weights with VPMADDUBSW, whose pairwise sums
    saturate at 16 bits. With full-range weights base at -30 % lost its output there (logits
    rms error 68 %, top-1 80 %; full-range exports validated on the AVX-512 Xeon of the earlier
    benchmarks); with 7-bit weights it validates there (rms 3 %, top-1 100 %), and an export
    must run on whatever CPU it is copied to."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if blocks not in INT8_BLOCKS[1:]:  # "auto" is resolved by ``export``, which knows the model
        raise InvalidInput(f"blocks must be one of {INT8_BLOCKS[1:]}, got {blocks!r}")
    graph = onnx.load(str(source), load_external_data=False).graph
    matrices = {t.name for t in graph.initializer if len(t.dims) == 2}

    def blockwise(name: str) -> bool:
        return "/fc2/" in name or blocks == "all" or (blocks == "decoder" and decoder)

    names = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in matrices and blockwise(n.name)]
    target.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs one line per tensor on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=names,
            use_external_data_format=False,
        )
    finally:
        root.setLevel(level)
    _blockwise(target, names)
    _share_int8_table(target)
    return target


INT8_BLOCK = 32  # inputs per quantization block of a blockwise weight (MatMulNBits)
# 7-bit magnitudes, as for the other weights: an int8 kernel on an AVX2-only CPU may sum
# pairs of 8-bit products in 16 bits, which |w| <= 63 cannot overflow whichever operand is unsigned
INT8_LEVELS = 63


def block_quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] float weights of ``x @ w`` -> ``MatMulNBits``' layout: q [N, blocks, INT8_BLOCK]
    uint8 (zero point 128) and scales [N, blocks] float32, symmetric per block of INT8_BLOCK
    rows, magnitudes up to INT8_LEVELS (the last block zero-padded)."""
    k, n = w.shape
    blocks = -(-k // INT8_BLOCK)
    padded = np.zeros((blocks * INT8_BLOCK, n), np.float32)
    padded[:k] = w
    wb = padded.T.reshape(n, blocks, INT8_BLOCK)  # [N, blocks, block]
    scale = np.abs(wb).max(-1) / INT8_LEVELS  # [N, blocks]
    scale[scale == 0] = 1.0
    q = (np.clip(np.round(wb / scale[..., None]), -INT8_LEVELS, INT8_LEVELS) + 128).astype(np.uint8)
    return q, scale.astype(np.float32)


def _blockwise(path: Path, names: list[str]) -> None:
    """Replace the named float MatMuls (``x @ W``, W a [K, N] initializer) by 8-bit
    ``MatMulNBits`` (com.microsoft) with ``block_quantize``'s weights; accuracy level 4
    computes in int8 with activations quantized per block."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    wanted, replaced = set(names), 0
    for i, node in enumerate(list(graph.node)):
        if node.name not in wanted or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # [K, N]
        if w.ndim != 2:
            continue
        k, n = w.shape
        q, scale = block_quantize(w)
        stem = node.input[1]
        graph.initializer.extend(
            [numpy_helper.from_array(q, f"{stem}_q8"), numpy_helper.from_array(scale, f"{stem}_s8")]
        )
        new = helper.make_node(
            "MatMulNBits",
            [node.input[0], f"{stem}_q8", f"{stem}_s8"],
            list(node.output),
            name=node.name + "_q8",
            domain="com.microsoft",
            K=k,
            N=n,
            bits=8,
            block_size=INT8_BLOCK,
            accuracy_level=4,
        )
        graph.node.remove(node)
        graph.node.insert(i, new)
        replaced += 1
    if not replaced:
        return
    used = {x for nd in graph.node for x in nd.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    if not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(proto, str(path))


def _share_int8_table(path: Path) -> None:
    """Point the int8 token lookup at the quantizer's copy of the logits weight (same [D, V]
    layout, per-token scales), so ``write_shared`` stores it once."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    pairs = (("graph.embed.table", "graph.table_quantized"), ("graph.embed.scale", "graph.table_scale"))
    if not all(a in inits and b in inits for a, b in pairs):
        return  # the encoder, or a decoder whose logits weight was not quantized
    for mine, theirs in pairs:
        array = numpy_helper.to_array(inits[theirs])
        if array.shape != tuple(inits[mine].dims):
            return
        inits[mine].CopyFrom(numpy_helper.from_array(array, mine))
    onnx.save(proto, str(path))


def write_shared(graphs: dict[str, Path], out: Path) -> dict[str, int]:
    """Write each graph to ``out/<name>.onnx`` with its large tensors in one shared,
    de-duplicated ``out/model.onnx_data``; returns each file's size in bytes."""
    import onnx
    from onnx import numpy_helper

    out.mkdir(parents=True, exist_ok=True)
    offsets: dict[bytes, tuple[int, int]] = {}
    with open(out / DATA_FILE, "wb") as data:
        for name, src in graphs.items():
            proto = onnx.load(str(src), load_external_data=True)
            for tensor in _all_tensors(proto.graph):
                raw = numpy_helper.to_array(tensor).tobytes()
                if len(raw) < _INLINE_BYTES:
                    continue
                key = hashlib.sha256(raw + str((tensor.data_type, tuple(tensor.dims))).encode()).digest()
                if key not in offsets:
                    data.seek(0, 2)
                    align = _ALIGN_LARGE if len(raw) >= _LARGE else 64
                    start = -(-data.tell() // align) * align
                    data.write(b"\0" * (start - data.tell()))
                    data.write(raw)
                    offsets[key] = (start, len(raw))
                start, length = offsets[key]
                for field in ("float_data", "int32_data", "int64_data", "double_data", "raw_data"):
                    tensor.ClearField(field)
                del tensor.external_data[:]
                tensor.data_location = onnx.TensorProto.EXTERNAL
                for k, v in (("location", DATA_FILE), ("offset", str(start)), ("length", str(length))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = k, v
            onnx.save(proto, str(out / f"{name}.onnx"))
    return {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}


def _all_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _all_tensors(sub)
