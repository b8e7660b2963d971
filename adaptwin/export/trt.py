"""TensorRT engines from the exported ONNX graphs (``adaptwin-export --engine trt``).

Written against the TensorRT 10 Python API (``tensorrt`` wheel on x86-64 CUDA machines,
JetPack's ``python3-libnvinfer`` on Jetson). TensorRT parses the fp32 graphs; ``fp16``
and ``int8`` are builder precisions (int8 with entropy calibration on real speech).
Engines: encoder, first-step decoder and decoder-with-past (the merged graph's empty-past
trick is for ONNX Runtime; TensorRT gets one profile per graph instead).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data import read_utterances
from ..data.manifest import pack_windows
from ..errors import ExternalFailure, InvalidInput
from ..models.context import HOP_SECONDS, encoder_frames, model_context
from ..optional import require
from ..runtime.decoding import PREFILL_CHUNK, Vocab
from ..runtime.exported import cross_feed
from ..runtime.ort import OrtWhisper

logger = logging.getLogger(__name__)

ENGINE_GRAPHS = ("encoder_model", "decoder_model", "decoder_with_past_model")
# ONNX operators our fp32/fp16 graphs may contain; every one is listed as supported by the
# ONNX-TensorRT parser of TensorRT 10 (onnx/onnx-tensorrt docs/operators.md). int8 graphs
# from ONNX Runtime's quantizer (DynamicQuantizeLinear, MatMulInteger) are not, which is
# why TensorRT builds from the float graphs and quantizes itself.
TRT_OPS = frozenset(
    {
        "Add",
        "Cast",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "Div",
        "Equal",
        "Erf",
        "Expand",
        "Gather",
        "GatherElements",
        "Gemm",
        "Greater",
        "Identity",
        "LayerNormalization",
        "Less",
        "MatMul",
        "Mul",
        "Neg",
        "Not",
        "Pow",
        "Range",
        "ReduceMean",
        "Reshape",
        "Shape",
        "Slice",
        "Softmax",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Tile",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)


def need_tensorrt():
    return require("tensorrt", "--engine trt (TensorRT engines; --engine onnx works without it)")


def profiles(config, max_batch: int, opt_batch: int = 1) -> dict[str, dict[str, tuple[tuple[int, ...], ...]]]:
    """Optimization profiles: per engine, per input, (min, opt, max) shapes. The encoder
    window is static (n_mels x 3000) unless the model was adapted for a dynamic audio
    context (then from its smallest context, optimised for a third of the window); batch,
    prompt length and past length are ranges."""
    mels, full = config.num_mel_bins, 2 * config.max_source_positions
    dynamic = model_context(config) is not None
    window = full * HOP_SECONDS
    frames = (encoder_frames(config, 0.0), encoder_frames(config, window / 3), full) if dynamic else (full,) * 3
    source = tuple(f // 2 for f in frames)
    max_len = config.max_target_positions
    heads = config.decoder_attention_heads
    self_widths, cross_widths = _widths(config, "self_attn"), _widths(config, "encoder_attn")
    batch = (1, opt_batch, max_batch)

    def shape(dims_per_point):
        return tuple(tuple(d) for d in dims_per_point)

    cross = {}
    for i, (r_qk, r_vo) in enumerate(cross_widths):
        cross[f"cross.{i}.key"] = shape([(b, heads, s, r_qk) for b, s in zip(batch, source)])
        cross[f"cross.{i}.value"] = shape([(b, heads, s, r_vo) for b, s in zip(batch, source)])
    past = {}
    for i, (r_qk, r_vo) in enumerate(self_widths):
        for kv, r in (("key", r_qk), ("value", r_vo)):
            past[f"past.{i}.{kv}"] = shape(
                [(batch[0], heads, 1, r), (batch[1], heads, 32, r), (batch[2], heads, max_len - 1, r)]
            )
    return {
        "encoder_model": {"input_features": shape([(b, mels, f) for b, f in zip(batch, frames)])},
        # prompts arrive in chunks of at most PREFILL_CHUNK tokens (the runtime's prefill), later steps one token each
        "decoder_model": {
            "input_ids": shape([(batch[0], 1), (batch[1], 4), (batch[2], PREFILL_CHUNK)]),
            "logits_at": shape([(1,), (4,), (PREFILL_CHUNK,)]),
            **cross,
        },
        "decoder_with_past_model": {
            "input_ids": shape([(batch[0], 1), (batch[1], 1), (batch[2], PREFILL_CHUNK)]),
            "logits_at": shape([(1,), (1,), (PREFILL_CHUNK,)]),
            **cross,
            **past,
        },
    }


def _widths(config, kind: str) -> list[tuple[int, int]]:
    """Per decoder layer (r_qk, r_vo) of its ``self_attn`` or ``encoder_attn``: from the
    compression metadata when present, else the dense head width."""
    dense = config.d_model // config.decoder_attention_heads
    ranks = (getattr(config, "adaptwin", None) or {}).get("attention", {})
    out = []
    for i in range(config.decoder_layers):
        r = ranks.get(f"model.decoder.layers.{i}.{kind}", {})
        out.append((r.get("qk") or dense, r.get("vo") or dense))
    return out


def check_parsable(folder: Path) -> list[str]:
    """Operators in the engine graphs that TensorRT's ONNX parser lacks (empty: all supported)."""
    import onnx

    bad = set()
    for name in ENGINE_GRAPHS:
        graph = onnx.load(str(folder / f"{name}.onnx"), load_external_data=False).graph
        bad |= {node.op_type for node in graph.node if node.op_type not in TRT_OPS}
    return sorted(bad)


def build_engines(folder: Path, options) -> dict[str, Path]:
    """``<graph>.engine`` beside each ONNX graph of ``folder``."""
    trt = need_tensorrt()
    from transformers import WhisperConfig

    unsupported = check_parsable(folder)
    if unsupported:
        raise InvalidInput(
            f"the graphs use operators TensorRT cannot parse: {unsupported}; export with --precision fp32/fp16"
        )
    config = WhisperConfig.from_pretrained(str(folder))
    shapes = profiles(config, options.max_batch)
    out = {}
    for name in ENGINE_GRAPHS:
        calibrator = None
        if options.precision == "int8":
            calibrator = EntropyCalibrator.create(
                trt, calibration_batches(folder, name, options.calib), folder / f"{name}.calib"
            )
        out[name] = build_engine(
            trt, folder / f"{name}.onnx", folder / f"{name}.engine", shapes[name], options.precision, calibrator
        )
    return out


def build_engine(
    trt, onnx_path: Path, engine_path: Path, shapes: dict, precision: str, calibrator=None, workspace_gib: float = 2.0
) -> Path:
    log = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(log)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(onnx_path)):  # resolves model.onnx_data beside the graph
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExternalFailure(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in shapes:
            raise InvalidInput(f"no optimization profile for input {tensor.name} of {onnx_path.name}")
        profile.set_shape(tensor.name, *shapes[tensor.name])
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    logger.info("building %s (%s); this takes minutes", engine_path.name, precision)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExternalFailure(f"TensorRT failed to build {engine_path.name} (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    return engine_path


def calibration_batches(folder: Path, graph: str, source: str, max_windows: int = 16) -> list[dict[str, np.ndarray]]:
    """Inputs of ``graph`` on real speech, produced by the fp32 ONNX export in ``folder``:
    features for the encoder; teacher-forced transcripts (or greedy tokens) for the decoders."""
    engine = OrtWhisper(folder)
    windows = pack_windows(read_utterances(source), max_windows=max_windows)
    if not windows:
        raise InvalidInput(f"{source} gave no usable calibration audio")
    vocab = Vocab.from_generation_config(engine.generation_config)
    tokenizer = engine.processor.tokenizer
    batches = []
    for audio, text in windows:
        feats = engine.features([audio])
        if graph == "encoder_model":
            batches.append({"input_features": feats})
            continue
        cross, empty = engine.encode(feats)
        ids = vocab.prompt() + tokenizer.encode(" " + text.strip(), add_special_tokens=False)[:64]
        ids = np.asarray([ids], dtype=np.int64)
        named_cross = cross_feed(cross)
        if graph == "decoder_model":
            batches.append({"input_ids": ids[:, :4], "logits_at": np.arange(4), **named_cross})
        else:
            _, (_, past) = engine.step(ids[:, :-1], (cross, empty))
            past_feed = dict(zip((i.name for i in engine.past_inputs), past))
            batches.append({"input_ids": ids[:, -1:], "logits_at": np.arange(1), **named_cross, **past_feed})
    return batches


class EntropyCalibrator:
    """Factory for a ``trt.IInt8EntropyCalibrator2`` fed from host batches (built lazily so
    this module imports without TensorRT)."""

    @staticmethod
    def create(trt, batches: list[dict[str, np.ndarray]], cache: Path):
        import torch

        class _Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                super().__init__()
                self.batches, self.index, self.device = batches, 0, {}

            def get_batch_size(self):
                return 1

            def get_batch(self, names):
                if self.index >= len(self.batches):
                    return None
                batch = self.batches[self.index]
                self.index += 1
                self.device = {n: torch.from_numpy(np.ascontiguousarray(batch[n])).cuda() for n in names}
                return [int(self.device[n].data_ptr()) for n in names]

            def read_calibration_cache(self):
                return cache.read_bytes() if cache.is_file() else None

            def write_calibration_cache(self, data):
                cache.write_bytes(bytes(data))

        return _Calibrator()
