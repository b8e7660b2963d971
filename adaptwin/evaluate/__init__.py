"""Evaluation: Whisper's English normaliser on both sides, corpus WER with S/D/I, per speaker."""

from .loop import EvalReport, UtteranceResult, evaluate
from .text import normalize, normalizer
from .wer import Alignment, Score, align, wer_counts

__all__ = [
    "Alignment",
    "EvalReport",
    "Score",
    "UtteranceResult",
    "align",
    "evaluate",
    "normalize",
    "normalizer",
    "wer_counts",
]
