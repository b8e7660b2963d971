"""No text from silence or noise, and no speech lost: the no-speech gate on real models.

    python benchmarks/no_speech.py --data DIR --models base=base c50=DIR_C50 adapted=DIR_ADAPTED \
        [--work WORK] [--limit 50]

1. **Non-speech**: 10 minutes of digital silence, white and pink noise at -60, -40 and -20
   dBFS (30 s each), through long-form `transcribe` on PyTorch and on the int8 ONNX export
   (made in WORK if missing): words produced with the gate (VAD auto), with the gate but no
   VAD (the decoder's rule alone), and without the gate (ONNX only: the problem it solves).
2. **Speech**: the test splits of test-tts, test-real, allison and joe (every k-th, LIMIT
   per set), decoded once like `eval` (PyTorch, greedy, batches of 8); WER without and with
   the gate (its VAD and no-speech rule applied to the same hypotheses), how many utterances
   it emptied, and the largest no-speech probability seen on speech.
3. **Streaming** (`stream`, int8 ONNX): words committed on the first 10 s of each
   non-speech clip with the energy VAD and with none.
Writes benchmarks/results/no_speech.json and the page docs/results/no_speech.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from scoring import test_split  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).parents[1] / "docs" / "results"
SPEECH_SETS = ("test-tts", "test-real", "allison", "joe")
SR = 16000
STREAM_SECONDS = 10  # of each non-speech clip, streamed with the policy `adaptwin stream` gives the model


def non_speech() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 30 * SR
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)
    out = {"silence 10 min": np.zeros(600 * SR, np.float32)}
    for name, x in (("white", rng.standard_normal(n)), ("pink", pink)):
        for db in (-60, -40, -20):
            out[f"{name} {db}"] = (x / np.sqrt(np.mean(x**2)) * 10 ** (db / 20)).astype(np.float32)
    return out


def count_words(backend, audio, gate) -> tuple[int, str]:
    from adaptwin.runtime.longform import transcribe

    text = " ".join(s.text for s in transcribe(backend, audio, gate=gate))
    return len([w for w in text.split() if any(c.isalnum() for c in w)]), text


def stream_words(backend, audio, vad: str) -> int:
    from adaptwin.runtime.mic import simulate
    from adaptwin.runtime.streaming import OnlineProcessor
    from adaptwin.runtime.vad import load_vad

    online = OnlineProcessor.for_backend(backend, vad=load_vad(vad))  # the policy `adaptwin stream` uses
    return sum(1 for e, _ in simulate(online, audio) if e.word.key)


def speech_rows(backend, data: Path, limit: int, gate) -> list[dict]:
    from adaptwin.audio import load_audio
    from adaptwin.evaluate import wer_counts
    from adaptwin.runtime.gate import has_words, speech_mask

    tok = backend.engine.processor.tokenizer
    vad = backend.vad_for(gate)
    rows = []
    for name in SPEECH_SETS:
        utts = [u for u in test_split(data / f"{name}.jsonl", limit) if u.text]
        off = on = words = emptied = 0
        nsp = []
        for i in range(0, len(utts), 8):
            batch = utts[i : i + 8]
            audios = [load_audio(u.audio) for u in batch]
            hyps = backend.generate(audios)
            for u, audio, hyp in zip(batch, audios, hyps):
                text = tok.decode(hyp.tokens, skip_special_tokens=True).strip()
                heard = not gate.silent(audio) and (vad is None or speech_mask(vad, audio).any())
                kept = text if heard and has_words(text) and not gate.no_speech(hyp, text) else ""
                emptied += bool(text) and not kept
                a, b = wer_counts(u.text, text), wer_counts(u.text, kept)
                off, on, words = off + a.errors, on + b.errors, words + a.ref_words
                nsp.append(hyp.no_speech_prob)
        rows.append(
            {
                "set": name,
                "utterances": len(utts),
                "wer_off": round(100 * off / words, 2),
                "wer_on": round(100 * on / words, 2),
                "emptied": emptied,
                "max_no_speech": round(max(nsp), 3),
                "p99_no_speech": round(float(np.quantile(nsp, 0.99)), 3),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="output of `adaptwin data build`")
    p.add_argument("--models", nargs="+", required=True, help="NAME=MODEL (anything load_whisper accepts)")
    p.add_argument("--work", default="no-speech-work", help="int8 exports are made (and reused) here")
    p.add_argument("--limit", type=int, default=50, help="test utterances per speech set")
    p.add_argument("--out", default=str(RESULTS / "no_speech.json"))
    p.add_argument("--page", default=str(DOCS / "no_speech.md"))
    args = p.parse_args(argv)
    import transformers

    import adaptwin
    from adaptwin.export import ExportOptions, export
    from adaptwin.runtime import get_backend
    from adaptwin.runtime.gate import NoSpeechGate

    transformers.logging.set_verbosity_error()
    clips = non_speech()
    result = {"machine": machine_info(), "args": vars(args), "gate": asdict(NoSpeechGate())}
    result.update(noise=[], stream=[], speech=[])
    for spec in args.models:
        name, source = spec.split("=", 1)
        loaded = adaptwin.load_whisper(source)
        folder = Path(args.work) / f"{name}-int8"
        if not folder.exists():
            export(loaded, folder, ExportOptions(precision="int8"))
        engines = {"torch": get_backend("torch", loaded), "ort int8": get_backend("ort", folder)}
        modes = {"gate": NoSpeechGate(), "gate, no VAD": NoSpeechGate(vad="none"), "no gate": None}
        for engine, backend in engines.items():
            for mode, gate in modes.items():
                if gate is None and engine == "torch":
                    continue  # minutes of hallucination loops; the ONNX row shows the same model's problem
                start = time.perf_counter()
                words = {}
                for clip, audio in clips.items():
                    words[clip], text = count_words(backend, audio, gate)
                    if words[clip] and gate is not None:
                        print(f"  {name} {engine} {mode} {clip}: {text!r}", flush=True)
                result["noise"].append(
                    {
                        "model": name,
                        "engine": engine,
                        "mode": mode,
                        "words": words,
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(result["noise"][-1], flush=True)
        for vad in ("energy", "none"):  # Silero would hide the decoder's part: the weaker VADs
            start = time.perf_counter()
            words = {
                clip: stream_words(engines["ort int8"], audio[: STREAM_SECONDS * SR], vad)
                for clip, audio in clips.items()
            }
            result["stream"].append(
                {
                    "model": name,
                    "engine": "ort int8",
                    "mode": f"gate, VAD {vad}",
                    "words": words,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(result["stream"][-1], flush=True)
        for row in speech_rows(engines["torch"], Path(args.data), args.limit, NoSpeechGate()):
            result["speech"].append({"model": name, **row})
    for path, text in ((args.out, json.dumps(result, indent=1)), (args.page, render(result))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    print(render(result))
    return 0


def word_table(title: str, rows: list[dict], clips: list[str]) -> list[str]:
    lines = [
        "",
        title,
        "",
        "| model | engine | mode | " + " | ".join(clips) + " | total | wall (s) |",
        "|---|---|---|" + "---|" * (len(clips) + 2),
    ]
    for r in rows:
        words = " | ".join(str(r["words"][c]) for c in clips)
        lines.append(
            f"| {r['model']} | {r['engine']} | {r['mode']} | {words} | {sum(r['words'].values())} "
            f"| {r['seconds']:.0f} |"
        )
    return lines


def render(result: dict) -> str:
    g = result.get("gate")  # the defaults the run used (older result files lack them)
    gate = (
        f"NoSpeechGate() defaults: no-speech probability > {g['no_speech_threshold']} with mean log-probability "
        f"< {g['logprob_threshold']} (or a failed window), or > {g['sure_threshold']} with at most "
        f"{g['sure_max_words']} words; VAD {g['vad']}; digital silence below {g['silence_peak']:g} peak"
        if g
        else "NoSpeechGate() defaults of the run's commit"
    )
    clips = list(result["noise"][0]["words"]) if result["noise"] else []
    lines = [
        "# No text from silence or noise",
        "",
        "Written by `benchmarks/no_speech.py` (the gate: [../robustness.md](../robustness.md)). The speech sets "
        "are the test splits of `adaptwin data build`; their speakers are never used for training, replay, "
        "calibration or validation. Raw numbers: `benchmarks/results/no_speech.json`.",
        "",
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['machine']['command']}`",
        f"Gate: {gate}.",
    ]
    lines += word_table("Words transcribed from non-speech (long-form `transcribe`; target 0):", result["noise"], clips)
    lines += word_table(
        f"Words committed by `stream` (first {STREAM_SECONDS} s of each clip, each model's default streaming policy; target 0):",
        result["stream"],
        clips,
    )
    lines += [
        "",
        f"WER (%) on speech without and with the gate (PyTorch, {result['args']['limit']} test utterances "
        "per set; target: change within ±0.2):",
        "",
        "| model | set | utterances | WER gate off | WER gate on | change | emptied | max / p99 no-speech prob |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["speech"]:
        lines.append(
            f"| {r['model']} | {r['set']} | {r['utterances']} | {r['wer_off']:.2f} | {r['wer_on']:.2f} | "
            f"{r['wer_on'] - r['wer_off']:+.2f} | {r['emptied']} | {r['max_no_speech']:.3f} / "
            f"{r['p99_no_speech']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
