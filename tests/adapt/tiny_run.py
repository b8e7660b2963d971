"""A tiny, fully deterministic adaptation job: random dense teacher, its compressed copy, a
fake tokenizer and generated audio. Imported by the tests and run as a script by the ones that
kill a process or start two (``python tiny_run.py DATA OUT [--kill-after N] [--state DIR]``)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: conftest's tiny_config

WORDS = "the cat sat on a mat and we all went home to see red fox".split()


class FakeTokenizer:
    """Characters as tokens: <|sot|>=1, <|notimestamps|>=3, text 4.., <|eot|>=2."""

    def __call__(self, text: str):
        return SimpleNamespace(input_ids=[1, 3] + [4 + ord(c) % 110 for c in text] + [2])

    @staticmethod
    def decode_ids(ids) -> str:
        """The text of a teacher-forcing input (prompt dropped; lower-case letters and spaces only)."""
        codes = [int(i) - 4 for i in ids[2:]]
        return "".join(chr(c if c >= 32 else c + 110) for c in codes).strip()


def processor():
    from transformers import WhisperFeatureExtractor

    return SimpleNamespace(
        feature_extractor=WhisperFeatureExtractor(feature_size=16, chunk_length=1), tokenizer=FakeTokenizer()
    )


def write_data(root: Path, n_target: int = 12, n_general: int = 8, n_canary: int = 6) -> Path:
    """target.jsonl (adapt + test splits), general.jsonl and canary.jsonl (a third speaker, its
    'validation' split) with short noisy tones."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n, base in (("target", n_target, 220.0), ("general", n_general, 330.0), ("canary", n_canary, 440.0)):
        rows = []
        for i in range(n):
            secs = 0.3 + 0.05 * (i % 4)
            t = np.arange(int(16000 * secs)) / 16000
            x = 0.3 * np.sin(2 * np.pi * (base + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
            path = root / f"{name}_{i}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
                w.writeframes((x * 20000).astype("<i2").tobytes())
            text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(2))
            split = "validation" if name == "canary" else "test" if i % 4 == 3 else "adapt"
            rows.append({"audio": path.name, "text": text, "speaker": name, "split": split, "duration": round(secs, 3)})
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def models():
    """(teacher, student): a random tiny Whisper and its compressed copy (attention and FFN)."""
    import copy

    from conftest import tiny_config
    from transformers import WhisperForConditionalGeneration

    from adaptwin import AdaPTwinConfig, compress_

    torch.manual_seed(0)
    teacher = WhisperForConditionalGeneration(tiny_config()).eval()
    student = copy.deepcopy(teacher)
    compress_(student, AdaPTwinConfig(scope="all", rank_qk=4, rank_vo=4, ffn=True, rank_ffn=16))
    return teacher, student


def config(**kw):
    from adaptwin.adapt import AdaptConfig

    base = dict(
        layerwise_epochs=2,
        epochs=2,
        batch_size=2,
        lr=3e-3,
        layerwise_lr=3e-3,
        checkpoint_every=0,
        replay=0.3,
        holdout=0.0,
    )
    base.update(kw)
    return AdaptConfig(**base)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--state")
    p.add_argument("--kill-after", type=int, help="SIGKILL this process at the start of step N+1")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from adaptwin.adapt import adapt_
    from adaptwin.adapt.train import Trainer

    if args.kill_after is not None:
        step = Trainer._step
        calls = [0]

        def killing_step(self, *a, **kw):
            calls[0] += 1
            if calls[0] > args.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a hard crash
            return step(self, *a, **kw)

        Trainer._step = killing_step
    teacher, student = models()
    data = Path(args.data)
    # validation on: a resumed or two-process run must also agree on every validation and the kept step
    report = adapt_(
        student,
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        config(holdout=0.25),
        canary=data / "canary.jsonl",
        processor=processor(),
        state_dir=args.state,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"params": student.state_dict(), "report": report.to_dict()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
