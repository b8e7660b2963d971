"""Where the time goes: each inference stage of ONNX Runtime exports, beside its physical limit.

    python benchmarks/stages.py --compressed FOLDER [--dense base] [--work DIR] [--repeats 20]

For the dense and the compressed model, each exported fp32 and int8 (cached under --work), on
30 s of real speech: features (NumPy log-mel), encoder (one window), prompt prefill (the
start-of-transcript prompt, empty cache), one decoder step after 32 tokens, and the logits
of one token (the model's own vocabulary head as a graph of its own, quantized as the export
quantizes it; the step's time includes it). Median of --repeats calls, engines interleaved.

The physical limit of a stage is its FLOPs (``adaptwin.models.cost``, counted on the exported
graphs) divided by the matmul rate measured in the same run with the same threads: ONNX
Runtime on a [1500, D] x [D, 4D] MatMul, in fp32 and, for the int8 rows, quantized as the
export quantizes. A decoder step is a matrix-vector product, bound by memory, not by that rate.

Writes benchmarks/results/stages.{json,md} and docs/results/stages.md; ``--render`` redraws them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from machine import machine_info, machine_line  # noqa: E402
from pages import publish_runs, result_args, store_and_publish  # noqa: E402

RESULTS = Path(__file__).parent / "results"
STAGES = ("features", "encoder", "prefill", "step", "logits")
PAST = 32
ABOUT = """
From `python benchmarks/stages.py` (one run; `benchmarks/results/stages.{json,md}`). Each
stage of ONNX Runtime exports of the dense model and a compressed one, fp32 and int8, on 30 s
of real speech, two threads: milliseconds (median), its share of one window's work
(features + encoder + prefill + 32 steps), and the physical limit: the stage's FLOPs over
the matmul rate measured in the same run. "step" is one decoder token after 32 (the logits
included); "logits" is the vocabulary projection alone, timed as a graph of its own.
"""


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _export_matmul(module, example, path: Path, int8: bool, decoder: bool = False) -> Path:
    """``module`` as an ONNX graph (weights as initializers), quantized as exports are for int8
    (``decoder``: as a decoder graph's weights are)."""
    import warnings

    from adaptwin.export.onnx import quantize_int8

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    if not int8:
        return path
    out = quantize_int8(path, path.with_name(path.stem + "-int8.onnx"), decoder=decoder)
    import onnx

    ops = {n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node}
    if "MatMul" in ops or not ops & {"DynamicQuantizeMatMul", "MatMulInteger", "MatMulNBits"}:
        raise RuntimeError(f"{out}: a MatMul stayed float after quantization ({sorted(ops)})")
    return out


def matmul_rate(d: int, threads: int, repeats: int, tmp: Path) -> dict[str, float]:
    """FLOP/s of ONNX Runtime on [1500, d] x [d, 4d], fp32 and int8."""
    import numpy as np

    torch.manual_seed(0)
    lin = torch.nn.Linear(d, 4 * d, bias=False)
    x = torch.randn(1500, d)
    out = {}
    for kind in ("fp32", "int8"):
        session = _session(_export_matmul(lin, x, tmp / f"mm-{kind}.onnx", kind == "int8"), threads)
        feed = {"x": x.numpy().astype(np.float32)}
        session.run(None, feed)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        out[kind] = 2.0 * 1500 * d * 4 * d / statistics.median(times)
    return out


class _Head(torch.nn.Module):
    """The vocabulary projection of an exported decoder: [1, 1, D] -> [1, 1, V]."""

    def __init__(self, graph) -> None:
        super().__init__()
        # the graph as a submodule, so that its head's weights become initializers the int8
        # quantizer can see (a plain tensor attribute is exported as a Constant and stays fp32)
        self.graph = graph

    def forward(self, x):
        return self.graph.logits(x)


def measure(args) -> dict:
    import numpy as np

    import adaptwin
    from adaptwin.audio import load_audio
    from adaptwin.compress.targets import count_parameters
    from adaptwin.data import bundled_clips
    from adaptwin.export import ExportOptions, export
    from adaptwin.models.cost import stage_flops
    from adaptwin.models.graphs import DecoderGraph
    from adaptwin.runtime.decoding import Vocab
    from adaptwin.runtime.ort import OrtWhisper

    torch.set_num_threads(args.threads)
    speech = np.concatenate([load_audio(u.audio) for u in bundled_clips()])
    while len(speech) < 30 * 16000:
        speech = np.concatenate([speech, speech])
    speech = speech[: 30 * 16000]
    tmp = Path(tempfile.mkdtemp(prefix="stages-", dir=args.work))
    runs, flops, meta, width = {}, {}, {}, 0
    for label, source in (("dense", args.dense), ("compressed", args.compressed)):
        loaded = adaptwin.load_whisper(source)
        model = loaded.model.float().eval()
        vocab = Vocab.from_generation_config(model.generation_config, "en")
        prompt = vocab.prompt()
        flops[label] = stage_flops(model, prompt=len(prompt), past=PAST).to_dict()
        head = _Head(DecoderGraph(model))
        width = max(width, model.config.d_model)
        for precision in ("fp32", "int8"):
            name = f"{label} {precision}"
            folder = Path(args.work) / f"onnx-{Path(str(source)).name}-{precision}"
            if not (folder / "adaptwin_export.json").is_file():
                print(export(source, folder, ExportOptions(precision=precision, threads=args.threads)).format())
            engine = OrtWhisper(folder, threads=args.threads)
            feats = engine.features([speech])
            cross, empty = engine.encode(feats)
            ids = np.asarray([prompt])
            tokens = np.asarray([prompt + [220] * (PAST - len(prompt))])  # a 32-token history
            _, (_, past) = engine.step(tokens, (cross, empty))
            one = np.asarray([[220]])
            example = torch.randn(1, 1, model.config.d_model)
            graph = _export_matmul(head, example, tmp / f"head-{label}.onnx", precision == "int8", decoder=True)
            logits = _session(graph, args.threads)
            x = {"x": np.random.default_rng(0).standard_normal((1, 1, model.config.d_model)).astype(np.float32)}
            runs[name] = {
                "features": lambda engine=engine: engine.features([speech]),
                "encoder": lambda engine=engine, feats=feats: engine.encode(feats),
                "prefill": lambda engine=engine, cross=cross, empty=empty, ids=ids: engine.step(ids, (cross, empty)),
                "step": lambda engine=engine, cross=cross, past=past, one=one: engine.step(one, (cross, past)),
                "logits": lambda s=logits, x=x: s.run(None, x),
            }
            meta[name] = {
                "label": label,
                "precision": precision,
                "folder": str(folder),
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
                # which weights sit in 8-bit blocks: the encoder's time depends on it
                "int8_blocks": json.loads((folder / "adaptwin_export.json").read_text()).get("int8_blocks"),
                "parameters": count_parameters([model]),
            }
    rate = matmul_rate(width, args.threads, args.repeats, tmp)
    times = {name: {stage: [] for stage in STAGES} for name in runs}
    for fns in runs.values():
        for fn in fns.values():
            fn()  # warm-up
    for _ in range(args.repeats):  # round-robin over engines and stages: drift hits all alike
        for name, fns in runs.items():
            for stage, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name][stage].append(time.perf_counter() - start)
    rows = {}
    for name, per_stage in times.items():
        label, precision = meta[name]["label"], meta[name]["precision"]
        f = flops[label]
        f = {**f, "features": None, "step": f["step"] + f["logits"]}
        rows[name] = {
            stage: {
                "ms": round(1000 * statistics.median(t), 3),
                "limit_ms": None if f[stage] is None else round(1000 * f[stage] / rate[precision], 3),
                "gflop": None if f[stage] is None else round(f[stage] / 1e9, 4),
            }
            for stage, t in per_stage.items()
        }
    return {
        "machine": machine_info(),
        "dense": args.dense,
        "compressed": args.compressed,
        "matmul_gflops": {k: round(v / 1e9, 1) for k, v in rate.items()},
        "past": PAST,
        "rows": rows,
        "exports": {
            name: {"bytes": m["bytes"], "parameters": m["parameters"], "int8_blocks": m["int8_blocks"]}
            for name, m in meta.items()
        },
    }


def render(result: dict) -> str:
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['machine']['command']}`",
        f"Compressed: `{result['compressed']}`; dense: `{result['dense']}`. Measured matmul rate: "
        + ", ".join(f"{k} {v} GFLOP/s" for k, v in result["matmul_gflops"].items())
        + ".",
        *([result["note"]] if result.get("note") else []),
        "",
        "| engine | stage | ms | share of a window | physical limit (ms) | GFLOP |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["rows"].items():
        window = (
            row["features"]["ms"] + row["encoder"]["ms"] + row["prefill"]["ms"] + result["past"] * row["step"]["ms"]
        )
        for stage in STAGES:
            r = row[stage]
            share = (result["past"] if stage == "step" else 1) * r["ms"] / window
            if stage == "logits":
                share *= result["past"]  # inside every step
            limit = "" if r["limit_ms"] is None else f"{r['limit_ms']:.2f}"
            gflop = "" if r["gflop"] is None else f"{r['gflop']:.3f}"
            lines.append(f"| {name} | {stage} | {r['ms']:.2f} | {100 * share:.0f} % | {limit} | {gflop} |")
    exports = result.get("exports")
    if exports:
        base = exports.get("dense fp32", {}).get("bytes")
        lines += [
            "",
            "| export | parameters (M) | folder MB | share of dense fp32 | int8 blocks |",
            "|---|---|---|---|---|",
        ]
        for name, e in exports.items():
            share = f"{100 * e['bytes'] / base:.1f} %" if base else ""
            blocks = e.get("int8_blocks") or ("" if "int8" not in name else "not recorded")
            lines.append(f"| {name} | {e['parameters'] / 1e6:.1f} | {e['bytes'] / 1e6:.1f} | {share} | {blocks} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--compressed", help="a compressed (or adapted) model folder")
    p.add_argument("--dense", default="base")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=str(Path.home() / ".cache" / "adaptwin" / "bench-stages"))
    result_args(p, RESULTS / "stages")
    args = p.parse_args(argv)
    result = None
    if not args.render:
        if not args.compressed:
            p.error("--compressed is needed (or --render)")
        Path(args.work).mkdir(parents=True, exist_ok=True)
        result = measure(args)
    store_and_publish(Path(args.out), result, args.note, render, None)
    # the page shows every stored run (dense against each compressed model measured)
    publish_runs(RESULTS, "stages", ("stages", "Where the time goes", "stages.py", ABOUT), render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
