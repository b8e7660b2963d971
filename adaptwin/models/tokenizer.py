"""Whisper's tokenizer rebuilt from OpenAI's own BPE rank files (``*.tiktoken``).

The ``tokenizer.json`` shipped beside some CTranslate2 conversions lacks merges (so it
encodes wrongly); the merges are recomputed here from the ranks, and the token strings
and ids are checked against the model's ``vocabulary.txt``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ..errors import InvalidInput


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def read_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            return parts
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[str]]:
    """HF byte-level BPE vocab (token string -> id) and merges, equivalent to the tiktoken ranks."""
    enc = byte_to_unicode()
    text = lambda b: "".join(enc[x] for x in b)  # noqa: E731
    vocab = {text(tok): rank for tok, rank in ranks.items() if tok}  # multilingual has one empty rank
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) <= 1:
            continue
        pair = _bpe(ranks, tok, rank)
        if len(pair) != 2:
            raise InvalidInput(f"token {tok!r} (rank {rank}) is not a merge of two lower-ranked tokens")
        merges.append(f"{text(pair[0])} {text(pair[1])}")
    return vocab, merges


def build_tokenizer_json(template: Path, ranks_file: Path, vocabulary_txt: Path, out: Path) -> None:
    """Write a corrected ``tokenizer.json``: the template's structure (special tokens,
    pre-tokenizer, post-processor) with merges recomputed from ``ranks_file``."""
    data = json.loads(Path(template).read_text(encoding="utf-8"))
    vocab, merges = vocab_and_merges(read_ranks(ranks_file))
    expected = Path(vocabulary_txt).read_text(encoding="utf-8").split("\n")
    for token, idx in vocab.items():
        if idx >= len(expected) or expected[idx] != token:
            raise InvalidInput(
                f"{ranks_file.name} disagrees with {vocabulary_txt}: token {token!r} has id {idx} there but "
                f"{expected[idx] if idx < len(expected) else None!r} in the model's vocabulary: wrong vocab file?"
            )
    data["model"]["vocab"] = {**data["model"]["vocab"], **vocab}
    data["model"]["merges"] = merges
    out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
