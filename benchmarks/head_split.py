"""The vocabulary head alone: one low-rank pair against a split head at the same size.

    python benchmarks/head_split.py --data DIR [--model base] [--ranks 128 192 256]
        [--splits 8000:32 12000:32 12000:64 16000:32] [--sets canary.jsonl:validation]

Only the head changes: the dense model's token lookup and logits are replaced, as
`adaptwin compress --head` builds them, by one low-rank pair at each of ``--ranks``
(``head_keep=0``) or by a split head (``KEEP:RANK``: the rows of the KEEP most frequent
English tokens and of the special tokens dense, the others one pair at RANK;
``KEEP:RANK:calib`` also keeps the calibration transcripts' tokens, as before dc40d12).
Both factorizations are whitened by the decoder's final hidden states on `calib.jsonl`.
Each row gives the head's parameters, the teacher-forced cross-entropy per transcript token
on ``--sets`` (default the validation speakers: choices are made there), how often the
compressed head's most likely token is the dense head's, and the probe error: what
`compress_`'s sensitivity probe measures (the logits' relative error on its calibration
windows, teacher-forced on their transcripts).

Writes benchmarks/results/head_split.{json,md} (or --out) and docs/results/head_split.md;
``--render`` redraws them from the JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info, machine_line  # noqa: E402
from pages import publish_runs, result_args, store_and_publish  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ABOUT = __doc__.split("\n\n", 2)[2].rsplit("\n\nWrites", 1)[0]


def _utterances(data: Path, spec: str):
    from adaptwin.data.manifest import read_utterances

    manifest, _, split = spec.partition(":")
    rows = read_utterances(data / manifest)
    return [u for u in rows if u.text and (not split or u.split == split)]


@torch.no_grad()
def measure(args) -> dict:
    import adaptwin
    from adaptwin.audio import load_audio
    from adaptwin.compress import build_calibration, surgery, token_prior
    from adaptwin.compress.api import PROBE_WINDOWS
    from adaptwin.compress.calibrate import relative_error, run, second_moments
    from adaptwin.compress.targets import find_head
    from adaptwin.compress.vocab import kept_tokens
    from adaptwin.models.structure import set_head

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    loaded = adaptwin.load_whisper(args.model)
    model, processor = loaded.model.float().eval(), loaded.processor
    tok = processor.tokenizer
    tok.set_prefix_tokens(language="en", task="transcribe", predict_timestamps=False)
    calibration = build_calibration(loaded, data / "calib.jsonl", args.calib_windows)
    head = model.proj_out
    moments = second_moments(model, calibration, find_head(model))
    prior = token_prior(tok)

    items = []  # (encoder output [1, S, D], ids [1, T]) per utterance
    for spec in args.sets:
        for u in _utterances(data, spec):
            feats = processor.feature_extractor(load_audio(u.audio), sampling_rate=16000, return_tensors="pt")
            ids = torch.tensor([tok(" " + u.text.strip()).input_ids])  # prefix, text, end of text
            items.append((model.model.encoder(feats.input_features).last_hidden_state, ids))
    prefix = len(tok("").input_ids) - 1  # the forced prefix tokens are not scored

    def score(reference=None):
        nll = agree = count = 0
        argmax = []
        for i, (encoded, ids) in enumerate(items):
            logits = model(encoder_outputs=(encoded,), decoder_input_ids=ids[:, :-1]).logits[0]  # [T - 1, V]
            logp = logits.float().log_softmax(-1)[prefix - 1 :]
            labels = ids[0, prefix:]
            nll += -logp.gather(-1, labels[:, None]).sum().item()
            top = logp.argmax(-1)
            argmax.append(top)
            agree += int((top == reference[i]).sum()) if reference is not None else len(labels)
            count += len(labels)
        return round(nll / count, 4), round(agree / count, 4), argmax, count

    probe_windows = calibration.subset(PROBE_WINDOWS)
    probe_reference = run(model, probe_windows, True)
    seen = torch.cat([ids.reshape(-1) for ids in calibration.decoder_input_ids])  # calibration transcripts' tokens

    lookup = model.model.decoder.embed_tokens
    start = time.perf_counter()
    ce, _, dense_top, tokens = score()
    dense = {"head": "dense", "kept": None, "rank": None, "parameters": head.weight.numel()}
    rows = [{**dense, "ce": ce, "top1": 1.0, "probe": 0.0}]
    fact = surgery.linear_split(head, moments, "proj_out", 1e-4)
    variants = [(0, r, False) for r in args.ranks]
    for spec in args.splits:
        keep, rank, *calib = spec.split(":")
        variants.append((int(keep), int(rank), calib == ["calib"]))
    for keep, rank, with_calib in variants:
        if keep:
            kept = kept_tokens(prior, keep, head.out_features, model.config.eos_token_id)
            if with_calib:
                kept = torch.unique(torch.cat([kept, seen]))  # sorted
            new = surgery.build_thin(head, surgery.head_split(head, kept, moments, "proj_out", 1e-4), rank)
        else:
            new = surgery.build_thin(head, fact, rank)
        set_head(model, new)
        ce, top1, _, _ = score(dense_top)
        probe = round(relative_error(run(model, probe_windows, True), probe_reference), 4)
        model.proj_out, model.model.decoder.embed_tokens = head, lookup
        row = {"head": "split" if keep else "low rank", "kept": getattr(new, "num_kept", None), "rank": rank}
        row |= {"calib_kept": with_calib, "parameters": sum(p.numel() for p in new.parameters())}
        rows.append({**row, "ce": ce, "top1": top1, "probe": probe})
        print(rows[-1], flush=True)
    return {
        "machine": machine_info(),
        "command": "python benchmarks/head_split.py " + " ".join(sys.argv[1:]),
        "model": str(args.model),
        "sets": args.sets,
        "tokens": tokens,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }


def render(result: dict) -> str:
    lines = [
        f"Machine: {machine_line(result['machine'])}",
        f"Command: `{result['command']}`",
        f"Model: `{result['model']}`; scored on {', '.join(result['sets'])} ({result['tokens']} transcript tokens).",
        "",
        "| head | rows kept dense | rank of the others | head parameters (M) | cross-entropy | top-1 = dense | probe error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        kept = r["kept"] if r["kept"] else ""
        kept = f"{kept} (calibration tokens too)" if r.get("calib_kept") else kept
        rank = r["rank"] if r["rank"] else ""
        probe = f"{r['probe']:.4f}" if "probe" in r else ""
        lines.append(
            f"| {r['head']} | {kept} | {rank} | {r['parameters'] / 1e6:.2f} | {r['ce']:.3f} | {r['top1']:.3f} | {probe} |"
        )
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="the output of `adaptwin data build` (needed unless --render)")
    p.add_argument("--model", default="base")
    p.add_argument("--sets", nargs="+", default=["canary.jsonl:validation"], help="MANIFEST[:SPLIT] to score")
    p.add_argument("--ranks", nargs="*", type=int, default=[128, 192, 256], help="one low-rank pair at these ranks")
    p.add_argument(
        "--splits", nargs="*", default=["8000:32", "12000:32", "12000:64", "16000:32"], help="KEEP:RANK[:calib]"
    )
    p.add_argument("--calib-windows", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    result_args(p, RESULTS / "head_split")
    args = p.parse_args()
    if not args.render and not args.data:
        p.error("--data is required (the output of `adaptwin data build`)")
    result = None if args.render else measure(args)
    store_and_publish(Path(args.out), result, args.note, render, None)
    page = ("head_split", "The vocabulary head alone: low rank or split", "head_split.py", ABOUT)
    publish_runs(RESULTS, "head_split", page, render)


if __name__ == "__main__":
    main()
