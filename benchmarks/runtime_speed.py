"""Deployment speed, side by side in one run on the same audio and the same `base` weights.

    python benchmarks/runtime_speed.py --data DIR [--budgets 0.3 0.5] [--models LABEL=FOLDER ...]
        [--limit N] [--work DIR]

1. encoder latency on one 30 s window: PyTorch dense, ONNX Runtime dense / compressed
   (fp32 and int8), CTranslate2 int8 (faster-whisper's engine); for each ONNX export also one
   decoder step (a token after 32, logits included) on that window and on the test sets'
   median-length clip at the context the runtime gives it (30 s, or the clip's bucketed length
   for a dynamic-context model), and the model's parameters;
2. end to end on the general test sets (`test-tts.jsonl`, `test-real.jsonl`), one utterance at a time, greedy: RTF, WER
   and peak RSS (each engine in its own process) for ORT compressed int8, ORT dense,
   faster-whisper int8 (the same CTranslate2 `base` weights), whisper.cpp q8_0 (pywhispercpp, the
   same weights converted by `adaptwin-export --engine ggml`) and PyTorch dense;
3. exported folder sizes.

DIR is the output of `adaptwin data build` (its calib.jsonl drives data-aware compression).
`--models` adds saved models made elsewhere (a whole-model compression, an adapted model),
exported here like the others.
Compressed models and exports are cached under --work. Writes benchmarks/results/runtime_speed.{json,md}
and the page docs/results/runtime.md; `--render [--note TEXT]` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import result_file, verdict, write_page  # noqa: E402
from scoring import FasterWhisper, WhisperCpp, general_test, paired, spread, utterance_errors  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ABOUT = """
From `python benchmarks/runtime_speed.py --data DIR ...` (one run; its command is on the page;
`benchmarks/results/runtime_speed.{json,md}`).
`cNN` (from `--budgets`): `base` with NN % of the encoder's parameters removed (data-aware
twin + FFN, calibrated on `calib.jsonl`), not adapted; other labels are the saved models given
with `--models` (the run's command names them). "decoder step" is one token after 32,
logits included, on the same exports: on the 30 s window, and on the test sets' median-length
clip at the context the runtime gives that clip (the 30 s window for a dense model, the clip's
bucketed length for a model with a dynamic audio context). Encoder timings: median of the repeated calls
per engine, the engines interleaved round-robin so that a shared machine's drift hits all
alike. End to end is `adaptwin eval` over the general test sets, one utterance at a time,
greedy (a looping or unlikely clip decoded again with beam search), each engine in its own
process, models with a dynamic audio context at their audio's length; faster-whisper loads the
same CTranslate2 `base` weights with `compute_type="int8"` (greedy with its default temperature
fallback, no timestamps, no VAD).
Peak RSS is that of the evaluation process, which also loads the text normaliser
(transformers); [streaming.md](streaming.md) measures the runtime alone.
"""


def prepare(args) -> dict[str, Path]:
    """Compressed models and exports (cached): {label: folder}."""
    import adaptwin
    from adaptwin.compress import build_calibration
    from adaptwin.export import ExportOptions, export

    work = Path(args.work)
    folders = {}
    models = {"dense": "base"}
    for budget in args.budgets:
        label = f"c{int(round(budget * 100))}"
        out = work / f"base-{label}"
        if not (out / "config.json").is_file():
            loaded = adaptwin.load_whisper("base")
            calib = build_calibration(loaded, Path(args.data) / "calib.jsonl", 8)
            adaptwin.compress_(loaded.model, adaptwin.AdaPTwinConfig(scope="encoder", budget=budget, ffn=True), calib)
            adaptwin.save(loaded.model, out, loaded.processor)
        models[label] = str(out)
    for spec in args.models:
        label, _, folder = spec.partition("=")
        if not folder or not Path(folder, "config.json").is_file():
            raise SystemExit(f"--models takes LABEL=FOLDER with a saved model in FOLDER, got {spec!r}")
        models[label] = folder
    args.params = {label: _parameters(source) for label, source in models.items()}
    for label, source in models.items():
        for precision in ("fp32", "int8"):
            out = work / f"onnx-{label}-{precision}"
            if not (out / "adaptwin_export.json").is_file():
                print(
                    export(source, out, ExportOptions(precision=precision, threads=args.threads)).format(), flush=True
                )
            folders[f"{label}-{precision}"] = out
    try:  # whisper.cpp's own format, from the same dense weights (adaptwin-export --engine ggml)
        import pywhispercpp  # noqa: F401

        out = work / "ggml-dense-q8_0"
        if not (out / "ggml-model.bin").is_file():
            print(export("base", out, ExportOptions(engine="ggml", precision="int8")).format(), flush=True)
        folders["whisper.cpp"] = out
    except ImportError:
        print("pywhispercpp not installed: no whisper.cpp row", flush=True)
    return folders


def _parameters(source: str) -> int:
    import adaptwin
    from adaptwin.compress.targets import count_parameters

    return count_parameters([adaptwin.load_whisper(source).model])


def encoder_latency(folders: dict[str, Path], args, clip) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Median seconds of one encoder call on a 30 s window (features of real speech), and of
    one decoder step (a token after 32, logits included) for each ONNX export: {"window": ...}
    on that window, {"clip": ...} on ``clip`` (16 kHz samples) at the context the runtime gives it."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import adaptwin
    from adaptwin.audio import load_audio
    from adaptwin.data import bundled_clips
    from adaptwin.models.builtin import builtin_ct2_dir

    torch.set_num_threads(args.threads)
    loaded = adaptwin.load_whisper("base")
    audio = np.concatenate([load_audio(u.audio) for u in bundled_clips()])[: 30 * 16000]
    feats = loaded.processor.feature_extractor([audio], sampling_rate=16000, return_tensors="np").input_features

    runs = {}
    encoder = loaded.model.model.encoder
    x = torch.from_numpy(feats)
    runs["pytorch dense fp32"] = lambda: encoder(x)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    steps = {}
    for label, folder in folders.items():
        if not (folder / "encoder_model.onnx").is_file():
            continue  # whisper.cpp's file: end to end only
        session = ort.InferenceSession(str(folder / "encoder_model.onnx"), opts, providers=["CPUExecutionProvider"])
        runs[f"ort {label}"] = lambda session=session: session.run(None, {"input_features": feats})
        steps[("window", f"ort {label}")] = _step_runner(folder, args.threads, feats=feats)
        steps[("clip", f"ort {label}")] = _step_runner(folder, args.threads, clip=clip)
    try:
        import ctranslate2

        model = ctranslate2.models.Whisper(
            str(builtin_ct2_dir("base")), device="cpu", compute_type="int8", intra_threads=args.threads
        )
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats))
        runs["ctranslate2 dense int8"] = lambda: model.encode(view)
    except ImportError:
        print("ctranslate2 not installed: skipping its encoder", flush=True)
    # Round-robin: every engine runs once per round, so slow drifts of a shared machine hit all alike.
    times = {name: [] for name in runs}
    step_times = {name: [] for name in steps}
    with torch.inference_mode():
        for fn in (*runs.values(), *steps.values()):
            fn()  # warm-up
        for _ in range(args.repeats):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
            for name, fn in steps.items():
                start = time.perf_counter()
                for _ in range(STEPS_PER_ROUND):
                    fn()
                step_times[name].append((time.perf_counter() - start) / STEPS_PER_ROUND)
    step_medians = {"window": {}, "clip": {}}
    for (where, name), t in step_times.items():
        step_medians[where][name] = statistics.median(t)
    return {name: statistics.median(t) for name, t in times.items()}, step_medians


STEPS_PER_ROUND = 20


def _step_runner(folder: Path, threads: int, feats=None, clip=None):
    """One decoder step of an ONNX export: a token after a 32-token history, logits included,
    on ``feats`` (the window's features) or on ``clip`` (samples) at the runtime's context."""
    import numpy as np
    from transformers import GenerationConfig

    from adaptwin.runtime import get_backend
    from adaptwin.runtime.decoding import Vocab

    backend = get_backend("ort", folder, threads=threads)
    engine = backend.engine
    if feats is None:
        feats = engine.features([clip], backend.frames([clip]))
    prompt = Vocab.from_generation_config(GenerationConfig.from_pretrained(folder), "en").prompt()
    cross, empty = engine.encode(feats)
    history = np.asarray([prompt + [220] * (32 - len(prompt))])
    _, (_, past) = engine.step(history, (cross, empty))
    one = np.asarray([[220]])
    return lambda: engine.step(one, (cross, past))


def median_clip(args) -> dict:
    """The general test sets' clip of median length (the runs' utterances): its samples, path, seconds."""
    from adaptwin.audio import load_audio

    utts = spread(general_test(Path(args.data)), args.limit)
    seconds = {u.audio: u.duration or len(load_audio(u.audio)) / 16000 for u in utts}
    mid = sorted(utts, key=lambda u: (seconds[u.audio], str(u.audio)))[len(utts) // 2]
    audio = load_audio(mid.audio)
    return {"samples": audio, "audio": str(mid.audio), "seconds": len(audio) / 16000}


def worker(args) -> int:
    """One engine, one process: WER, RTF and peak RSS over the test split."""
    from adaptwin.evaluate import evaluate
    from adaptwin.runtime import get_backend

    kind, _, where = args.worker.partition(":")
    if kind == "fw":
        backend = FasterWhisper(where, args.threads)
    elif kind == "wcpp":
        backend = WhisperCpp(where, args.threads)
    else:
        import torch

        torch.set_num_threads(args.threads)
        backend = get_backend(kind, where, **({"threads": args.threads} if kind in ("ort", "torch") else {}))
    utts = spread(general_test(Path(args.data)), args.limit)
    evaluate(backend, utts[:2], batch_size=1)  # warm-up
    per_utterance = []
    report = evaluate(backend, utts, batch_size=1, results=per_utterance)
    Path(args.result).write_text(json.dumps({**report.to_dict(), "utterances": utterance_errors(per_utterance)}))
    return 0


def end_to_end(folders: dict[str, Path], args) -> dict[str, dict]:
    from adaptwin.models.builtin import builtin_ct2_dir

    engines = {"faster-whisper int8": f"fw:{builtin_ct2_dir('base')}", "pytorch dense fp32": "torch:base"}
    ggml = folders.get("whisper.cpp")
    if ggml is not None:
        engines["whisper.cpp q8_0"] = f"wcpp:{ggml / 'ggml-model.bin'}"
    for label, folder in folders.items():
        if (label.endswith("int8") or label == "dense-fp32") and (folder / "encoder_model.onnx").is_file():
            engines[f"ort {label}"] = f"ort:{folder}"
    out = {}
    for name, spec in engines.items():
        result = Path(args.work) / f"e2e-{name.replace(' ', '_')}.json"
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            spec,
            "--data",
            args.data,
            "--result",
            str(result),
            "--threads",
            str(args.threads),
        ] + (["--limit", str(args.limit)] if args.limit else [])
        subprocess.run(cmd, check=True)
        out[name] = json.loads(result.read_text())
        r = out[name]
        print(f"{name}: WER {r['wer']:.2f} %, RTF {r['rtf']:.3f}, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="the output of `adaptwin data build` (needed unless --render)")
    p.add_argument("--budgets", nargs="*", type=float, default=[0.3, 0.5], help="encoder budgets to compress here")
    p.add_argument("--models", nargs="*", default=[], help="LABEL=FOLDER: more saved models to export and measure")
    p.add_argument("--limit", type=int, help="only N test utterances (spread over the set)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=str(Path.home() / ".cache" / "adaptwin" / "bench-runtime"))
    p.add_argument("--out", default=str(RESULTS / "runtime_speed"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--render", action="store_true", help="only redraw the table and the page from the JSON")
    p.add_argument("--note", help="a finding about the run, stored with it and shown on the page")
    args = p.parse_args(argv)
    if args.render:
        stored = json.loads(result_file(args.out, ".json").read_text())
        if args.note:
            stored["note"] = f"{stored.get('note') or ''} {args.note}".strip()
            result_file(args.out, ".json").write_text(json.dumps(stored, indent=1))
        publish(stored, Path(args.out))
        return 0
    import transformers

    transformers.logging.set_verbosity_error()
    if args.worker:
        return worker(args)
    if not args.data:
        p.error("--data is needed (the output of `adaptwin data build`)")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    folders = prepare(args)
    clip = median_clip(args)
    latency, steps = encoder_latency(folders, args, clip["samples"])
    for k, v in latency.items():
        step, at_clip = (1000 * steps[w].get(k, float("nan")) for w in ("window", "clip"))
        print(f"encoder {k}: {v * 1000:.0f} ms; step {step:.2f} ms, on the median clip {at_clip:.2f} ms", flush=True)
    e2e = end_to_end(folders, args)
    sizes = {label: sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) for label, folder in folders.items()}
    info = machine_info()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stored = {
        "machine": info,
        "args": vars(args),
        "encoder_seconds": latency,
        "step_seconds": steps["window"],
        "step_seconds_clip": steps["clip"],
        "clip": {k: v for k, v in clip.items() if k != "samples"},
        "parameters": args.params,
        "end_to_end": e2e,
        "export_bytes": sizes,
        "note": args.note,
    }
    result_file(out, ".json").write_text(json.dumps(stored, indent=1))
    publish(stored, out)
    print(result_file(out, ".md").read_text())
    return 0


def publish(stored: dict, out: Path) -> None:
    text = render(stored)
    result_file(out, ".md").write_text(text)
    if out == RESULTS / "runtime_speed":
        write_page("runtime", "Deployment speed: ONNX Runtime against faster-whisper", "runtime_speed.py", ABOUT, text)


def render(stored: dict) -> str:
    latency, e2e, sizes = stored["encoder_seconds"], stored["end_to_end"], stored["export_bytes"]
    args = stored["args"]
    dense = latency.get("ort dense-fp32")
    steps, params = stored.get("step_seconds", {}), stored.get("parameters", {})
    # runs since the twenty-fourth session also time the step on the median test clip
    clip_steps, clip = stored.get("step_seconds_clip", {}), stored.get("clip")
    lines = [
        f"Machine: {machine_line(stored['machine'])}; {args['threads']} threads per engine",
        *([f"Command: `{stored['machine']['command']}`"] if stored["machine"].get("command") else []),
        *([stored["note"]] if stored.get("note") else []),
        "",
        "Encoder, one 30 s window (median of %d):" % args["repeats"],
        "",
        "| engine | parameters (M) | encoder ms | vs ORT dense fp32 | vs same-precision ORT dense "
        "| decoder step ms | step vs same-precision ORT dense |"
        + (f" step ms, median test clip ({clip['seconds']:.1f} s) | vs same-precision ORT dense |" if clip else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if clip else ""),
    ]

    def step_cells(table: dict, k: str, precision: str) -> str:
        step, same_step = table.get(k), table.get(f"ort dense-{precision}")
        return f" {'%.2f' % (1000 * step) if step else ''} | {'%.2fx' % (same_step / step) if step and same_step else ''} |"

    for k, v in latency.items():
        label, _, precision = k.removeprefix("ort ").rpartition("-")
        same = latency.get(f"ort dense-{precision}") if k.startswith("ort ") else None
        n = params.get(label) if k.startswith("ort ") else None
        lines.append(
            f"| {k} | {'%.1f' % (n / 1e6) if n else ''} | {v * 1000:.0f} | {dense / v:.2f}x | "
            f"{'%.2fx' % (same / v) if same else ''} |"
            + step_cells(steps, k, precision)
            + (step_cells(clip_steps, k, precision) if clip else "")
        )
    if clip:
        lines += [
            "",
            f"The median test clip is `{Path(clip['audio']).name}` ({clip['seconds']:.2f} s): a dense model's "
            "decoder reads the 30 s window's keys and values there too, a dynamic-context model's only its "
            "bucketed length.",
        ]
    fw, int8 = e2e.get("faster-whisper int8"), e2e.get("ort dense-int8")
    n = next(iter(e2e.values()))["n_utterances"] if e2e else 0
    lines += [
        "",
        f"End to end, general test sets ({n} utterances, one at a time, greedy):",
        "",
        "| engine | WER (%) | RTF | speed vs faster-whisper int8 | speed vs ORT dense int8 | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    # runs since the twenty-first session keep per-utterance errors: a WER's standard error
    spread = all("utterances" in r for r in e2e.values())
    for k, r in e2e.items():
        vs_int8 = f"{int8['rtf'] / r['rtf']:.2f}x" if int8 else ""
        wer = f"{r['wer']:.2f}" + (f" ± {paired(r['utterances'])[0]:.2f}" if spread else "")
        lines.append(
            f"| {k} | {wer} | {r['rtf']:.3f} | {fw['rtf'] / r['rtf']:.2f}x | {vs_int8} | {r['peak_rss_mb']:.0f} |"
        )
    if spread and "pytorch dense fp32" in e2e:
        lines += [
            "",
            "WER against dense fp32 on the same utterances (points, ± standard error from resampling them):",
            "",
        ]
        ref = e2e["pytorch dense fp32"]
        lines += [
            f"- {k}: {r['wer'] - ref['wer']:+.2f} ± {paired(r['utterances'], ref['utterances'])[1]:.2f}"
            for k, r in e2e.items()
            if k != "pytorch dense fp32"
        ]
    base = sizes.get("dense-fp32")
    lines += ["", "Exported folders:", "", "| export | MB | share of dense fp32 |", "|---|---|---|"]
    lines += [f"| {k} | {v / 1e6:.1f} | {v / base:.1%} |" for k, v in sizes.items()]
    return "\n".join(lines + targets(stored)) + "\n"


# the whole-model issue's targets: parameters and int8 folder as shares of dense, end to end and
# per decoder step against ORT dense int8, general WER over dense fp32 (points)
TARGETS = {"parameters": 0.55, "folder": 0.25, "end_to_end": 1.5, "step": 1.6, "wer_gap": 1.0}


def targets(stored: dict) -> list[str]:
    """Each compressed model's int8 export against TARGETS (lines of a table; none without
    the dense rows)."""
    e2e, sizes, params = stored["end_to_end"], stored["export_bytes"], stored.get("parameters", {})
    steps, clip_steps, clip = stored.get("step_seconds", {}), stored.get("step_seconds_clip", {}), stored.get("clip")
    dense, fp32 = e2e.get("ort dense-int8"), e2e.get("pytorch dense fp32")
    labels = [k for k in params if k != "dense" and f"ort {k}-int8" in e2e]
    if not (dense and fp32 and labels and params.get("dense") and sizes.get("dense-fp32")):
        return []
    lines = [
        "",
        f"Against the whole-model targets (parameters ≤ {TARGETS['parameters']:.0%} of dense, int8 folder "
        f"≤ {TARGETS['folder']:.0%} of dense fp32, end to end ≥ {TARGETS['end_to_end']}× and decoder step "
        f"≥ {TARGETS['step']}× ORT dense int8, general WER ≤ dense fp32 + {TARGETS['wer_gap']}):",
        "",
        "| model | parameters | int8 folder | end to end | decoder step | general WER |",
        "|---|---|---|---|---|---|",
    ]
    for label in labels:
        row, step = e2e[f"ort {label}-int8"], steps.get(f"ort {label}-int8")
        share, folder = params[label] / params["dense"], sizes[f"{label}-int8"] / sizes["dense-fp32"]
        speed = dense["rtf"] / row["rtf"]
        step_x = steps["ort dense-int8"] / step if step and steps.get("ort dense-int8") else None
        step_cell = (
            f"{step_x:.2f}×: {verdict(step_x, TARGETS['step'], lower_is_better=False, unit='×')}" if step_x else ""
        )
        at_clip = clip_steps.get(f"ort {label}-int8")
        if clip and step_x and at_clip and clip_steps.get("ort dense-int8"):
            clip_x = clip_steps["ort dense-int8"] / at_clip
            step_cell = (
                f"30 s window {step_cell}; median test clip ({clip['seconds']:.1f} s) "
                f"{clip_x:.2f}×: {verdict(clip_x, TARGETS['step'], lower_is_better=False, unit='×')}"
            )
        cells = [
            f"{share:.1%}: {verdict(100 * share, 100 * TARGETS['parameters'], unit=' points')}",
            f"{folder:.1%}: {verdict(100 * folder, 100 * TARGETS['folder'], unit=' points')}",
            f"{speed:.2f}×: {verdict(speed, TARGETS['end_to_end'], lower_is_better=False, unit='×')}",
            step_cell,
            f"{row['wer']:.2f} vs {fp32['wer']:.2f}: {verdict(row['wer'], fp32['wer'] + TARGETS['wer_gap'])}",
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
