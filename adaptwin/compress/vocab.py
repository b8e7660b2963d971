"""Which vocabulary rows a split head keeps dense: tokens ranked by how often English text uses
them, estimated from a word-frequency list (``assets/english_words.tsv``) through the model's
own tokenizer, so the ranking fits any Whisper vocabulary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import torch

WORDS = Path(__file__).resolve().parents[1] / "assets" / "english_words.tsv"

# how a word appears in running text: after a space (lower case, or capitalised), or opening it
_FORMS = ((" {}", 0.8), (" {}", 0.15), ("{}", 0.05))


def token_prior(tokenizer, words: Path = WORDS) -> list[int]:
    """The tokenizer's token ids, most frequent in English text first (only tokens the word
    list reaches; the rest of the vocabulary is not ranked)."""
    pairs = [line.split("\t") for line in words.read_text(encoding="utf-8").splitlines() if "\t" in line]
    freq = Counter()
    for (form, share), capital in zip(_FORMS, (False, True, True)):
        texts = [form.format(w.capitalize() if capital else w) for w, _ in pairs]
        for ids, (_, f) in zip(tokenizer(texts, add_special_tokens=False).input_ids, pairs):
            for t in ids:
                freq[t] += float(f) * share
    return [t for t, _ in freq.most_common()]


def kept_tokens(prior: Sequence[int], count: int, vocab_size: int, first_special: int) -> torch.Tensor:
    """Sorted ids of the rows a split head keeps: the ``count`` first of ``prior`` and every
    special token (ids from ``first_special`` on: end of text, languages, tasks, timestamps).
    Not the calibration transcripts' tokens: the head's sensitivity is measured on those
    windows, and a probe whose every token is kept cannot see the factored rows' error."""
    keep = set(prior[:count]) | set(range(first_special, vocab_size))
    return torch.tensor(sorted(t for t in keep if 0 <= t < vocab_size), dtype=torch.long)
