"""Where a decoder step's time goes, operator by operator, in ONNX Runtime.

    python benchmarks/step_ops.py --exports dense-int8=DIR all45-int8=DIR [--steps 300]

Each ``NAME=DIR`` is a folder written by `adaptwin-export`. Its `decoder_with_past_model.onnx`
runs one token against 32 cached tokens and a 30 s window's cross-attention keys and values
(1500 frames), with ONNX Runtime's profiler on, on 2 threads. The table sums the kernel
time of each operator type per step; its total leaves out what the session adds around the
kernels, so it is below the step times of `runtime_speed.py` and `stages.py`.

Writes benchmarks/results/step_ops.{json,md} (or --out) and docs/results/step_ops.md;
``--render`` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import publish_runs, result_args, store_and_publish  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ABOUT = __doc__.split("\n\n", 2)[2].rsplit("\n\nWrites", 1)[0]
PAST, FRAMES, TOP = 32, 1500, 12


def profile(folder: Path, steps: int, threads: int) -> dict:
    """Kernel microseconds per step by operator type, and how many nodes of each run per step."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "step")
    session = ort.InferenceSession(
        str(folder / "decoder_with_past_model.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feed = {}
    for i in session.get_inputs():
        if i.name == "input_ids":
            feed[i.name] = np.array([[220]], dtype=np.int64)  # [1, 1] one token
        elif i.name == "logits_at":
            feed[i.name] = np.array([0], dtype=np.int64)
        else:  # cross.L.key/value [1, H, FRAMES, d] or past.L.key/value [1, H, PAST, d]
            length = FRAMES if i.name.startswith("cross") else PAST
            feed[i.name] = rng.standard_normal((1, i.shape[1], length, i.shape[3]), dtype=np.float32)
    for _ in range(steps):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    time, count = Counter(), Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            time[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    return {
        "us": {op: round(t / steps, 1) for op, t in time.most_common()},
        "nodes": {op: count[op] // steps for op in time},
    }


def render(result: dict) -> str:
    names = list(result["exports"])
    ops = Counter()
    for name in names:
        ops.update(result["exports"][name]["us"])
    shown = [op for op, _ in ops.most_common(TOP)]
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['command']}`",
        "",
        "| operator | " + " | ".join(f"{n} µs (nodes)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for op in shown:
        cells = []
        for n in names:
            e = result["exports"][n]
            cells.append(f"{e['us'][op]:.0f} ({e['nodes'][op]})" if op in e["us"] else "")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    totals = [f"{sum(result['exports'][n]['us'].values()) / 1e3:.2f} ms" for n in names]
    lines.append("| **all kernels** | " + " | ".join(totals) + " |")
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exports", nargs="*", default=[], help="NAME=DIR of `adaptwin-export` folders")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    result_args(p, RESULTS / "step_ops")
    args = p.parse_args()
    if not args.render and not args.exports:
        p.error("--exports NAME=DIR ... is required")
    result = None
    if not args.render:
        exports = dict(e.split("=", 1) for e in args.exports)
        result = {
            "machine": machine_info(),
            "command": "python benchmarks/step_ops.py " + " ".join(sys.argv[1:]),
            "exports": {n: profile(Path(d), args.steps, args.threads) for n, d in exports.items()},
        }
    store_and_publish(Path(args.out), result, args.note, render, None)
    page = ("step_ops", "A decoder step, operator by operator", "step_ops.py", ABOUT)
    publish_runs(RESULTS, "step_ops", page, render)


if __name__ == "__main__":
    main()
