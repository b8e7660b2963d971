"""Latency and memory of a TensorRT engine folder on a Jetson (TRT backend, greedy).

    python benchmarks/jetson/latency.py --model ENGINE_DIR --audio CLIP.wav [--repeats 20]

Prints encoder and end-to-end latency (median, p90) and the peak RAM / GPU memory that
`tegrastats` reports during the run (Jetson GPUs share system RAM). Not run by the authors:
see README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time


def tegrastats_peak(proc) -> dict:
    """Peak 'RAM used/total' (MB) from tegrastats lines collected so far."""
    proc.terminate()
    out = proc.communicate(timeout=5)[0]
    ram = [int(m.group(1)) for m in re.finditer(r"RAM (\d+)/\d+MB", out)]
    gpu = [int(m.group(1)) for m in re.finditer(r"GR3D_FREQ (\d+)%", out)]
    return {"ram_peak_mb": max(ram) if ram else None, "gpu_busy_peak_pct": max(gpu) if gpu else None}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="adaptwin-export --engine trt folder")
    p.add_argument("--audio", required=True)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()

    from adaptwin.audio import load_audio
    from adaptwin.runtime import get_backend

    backend = get_backend("trt", args.model)
    audio = load_audio(args.audio)[: 30 * 16000]
    feats = backend.engine.features([audio])
    stats = subprocess.Popen(["tegrastats", "--interval", "100"], stdout=subprocess.PIPE, text=True)
    backend.transcribe_batch([audio])  # warm-up
    enc, e2e = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        backend.engine.encode(feats)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        text = backend.transcribe_batch([audio])[0]
        e2e.append(time.perf_counter() - t)
    result = {
        "model": args.model,
        "audio_seconds": len(audio) / 16000,
        "text": text,
        "encoder_ms_median": 1000 * statistics.median(enc),
        "encoder_ms_p90": 1000 * sorted(enc)[int(0.9 * len(enc))],
        "e2e_ms_median": 1000 * statistics.median(e2e),
        "rtf": statistics.median(e2e) / (len(audio) / 16000),
        **tegrastats_peak(stats),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
