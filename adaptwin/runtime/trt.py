"""TensorRT engines of an ``adaptwin-export --engine trt`` folder, as a decoding ``Stepper``.

Device buffers are PyTorch CUDA tensors (PyTorch ships on Jetson and CUDA machines); the
KV cache stays on the GPU, only logits come back to the host. TensorRT 10 API.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ExternalFailure
from ..optional import require
from .exported import ExportedWhisper, cross_feed

ENGINES = ("encoder_model.engine", "decoder_model.engine", "decoder_with_past_model.engine")


class TrtWhisper(ExportedWhisper):
    def __init__(self, folder: str | os.PathLike, processor: Any = None) -> None:
        trt = require("tensorrt", "the trt backend")
        super().__init__(folder, ENGINES, processor)
        import torch

        if not torch.cuda.is_available():
            raise ExternalFailure("the trt backend needs a CUDA device; use --backend ort on this machine")
        self._trt, self._torch = trt, torch
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines = {}
        for name in ENGINES:
            engine = runtime.deserialize_cuda_engine((self.path / name).read_bytes())
            if engine is None:
                raise ExternalFailure(
                    f"{self.path / name} could not be loaded (built by another TensorRT version or GPU?)"
                )
            self.engines[name.split(".")[0]] = (engine, engine.create_execution_context())
        self.past_names = [n for n in self._io("decoder_with_past_model", input=True) if n.startswith("past.")]

    def _io(self, graph: str, input: bool) -> list[str]:
        engine = self.engines[graph][0]
        mode = self._trt.TensorIOMode.INPUT if input else self._trt.TensorIOMode.OUTPUT
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [n for n in names if engine.get_tensor_mode(n) == mode]

    def _run(self, graph: str, inputs: dict[str, Any]) -> dict[str, Any]:
        torch, trt = self._torch, self._trt
        engine, context = self.engines[graph]
        kinds = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.INT64: torch.int64,
            trt.DataType.INT32: torch.int32,
        }
        keep = {}
        for name in self._io(graph, input=True):
            t = inputs[name]
            t = (t if torch.is_tensor(t) else torch.from_numpy(np.ascontiguousarray(t))).cuda()
            t = t.to(kinds[engine.get_tensor_dtype(name)]).contiguous()
            keep[name] = t
            context.set_input_shape(name, tuple(t.shape))
            context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name in self._io(graph, input=False):
            out = torch.empty(
                tuple(context.get_tensor_shape(name)), dtype=kinds[engine.get_tensor_dtype(name)], device="cuda"
            )
            outputs[name] = out
            context.set_tensor_address(name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise ExternalFailure(f"TensorRT failed to run {graph}")
        stream.synchronize()
        return outputs

    def encode(self, features: np.ndarray):
        out = self._run("encoder_model", {"input_features": features.astype(np.float32)})
        cross = [out[n] for n in cross_feed([None] * (2 * self.config.decoder_layers))]
        return cross, []

    def step(self, tokens: np.ndarray, state):
        cross, past = state
        # every position's logits, as from engines built before logits_at (the profiles cap a
        # call at PREFILL_CHUNK tokens, so the prompt still comes in chunks)
        at = np.arange(tokens.shape[1], dtype=np.int64)
        feed = {"input_ids": tokens.astype(np.int64), "logits_at": at, **cross_feed(cross)}
        if past:
            feed.update(zip(self.past_names, past))
        out = self._run("decoder_with_past_model" if past else "decoder_model", feed)
        present = [out[n.replace("past.", "present.")] for n in self.past_names]
        return out["logits"].float().cpu().numpy(), (cross, present)

    def reorder(self, state, rows: np.ndarray):
        cross, past = state
        index = self._torch.as_tensor(rows, device="cuda")
        if len(rows) != cross[0].shape[0]:
            cross = [c.index_select(0, index) for c in cross]
        return cross, [p.index_select(0, index) for p in past]
