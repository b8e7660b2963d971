"""The text normaliser WER is computed on: OpenAI's English normaliser, on both sides."""

from __future__ import annotations

import json
from functools import lru_cache

from ..models.assets import openai_asset


@lru_cache(maxsize=1)
def normalizer():
    """OpenAI's ``EnglishTextNormalizer`` (the transformers port) with OpenAI's spelling table."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(openai_asset("english.json").read_text()))


def normalize(text: str) -> str:
    return normalizer()(text)
