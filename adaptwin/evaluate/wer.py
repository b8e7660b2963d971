"""Word error rate: a Levenshtein alignment of normalised words, with S/D/I counts."""

from __future__ import annotations

from dataclasses import dataclass

from .text import normalize


@dataclass(frozen=True)
class Alignment:
    substitutions: int
    deletions: int
    insertions: int
    ref_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def align(reference: list[str], hypothesis: list[str]) -> Alignment:
    """Levenshtein alignment of word lists, counting substitutions, deletions and insertions."""
    n, m = len(reference), len(hypothesis)
    # cost[j], with (subs, dels, ins) kept along the minimum-cost path
    prev = [(j, 0, 0, j) for j in range(m + 1)]  # (cost, S, D, I)
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            if reference[i - 1] == hypothesis[j - 1]:
                best = prev[j - 1]
            else:
                c, s, d, ins = prev[j - 1]
                sub = (c + 1, s + 1, d, ins)
                c, s, d, ins = prev[j]
                dele = (c + 1, s, d + 1, ins)
                c, s, d, ins = cur[j - 1]
                inse = (c + 1, s, d, ins + 1)
                best = min(sub, dele, inse)
            cur.append(best)
        prev = cur
    _, s, d, ins = prev[m]
    return Alignment(s, d, ins, n)


def wer_counts(reference: str, hypothesis: str) -> Alignment:
    return align(normalize(reference).split(), normalize(hypothesis).split())


@dataclass
class Score:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    words: int = 0
    utterances: int = 0

    def add(self, a: Alignment) -> None:
        self.substitutions += a.substitutions
        self.deletions += a.deletions
        self.insertions += a.insertions
        self.words += a.ref_words
        self.utterances += 1

    @property
    def wer(self) -> float:
        """Corpus WER in percent: total errors over total reference words."""
        return 100.0 * (self.substitutions + self.deletions + self.insertions) / max(self.words, 1)
