"""Real voice-acted speech from *Flight of the Amazon Queen* (Debian's ``flight-of-the-amazon-queen``,
freeware): the hero Joe King is a second target speaker, the other characters general speech.

The corpus folder holds ``manifest.jsonl`` (``audio``, ``text``, ``speaker``, ``split``,
``duration``) and the clips; its splits are fixed: Joe's clips are ``adapt`` or ``test``, the
other characters are ``adapt`` (usable in training) or ``test`` (never heard in training) by
character. Here the ``adapt`` characters are split once more, by character, into replay and
canary (validation) speakers."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInput, MissingFile
from .manifest import Utterance, read_utterances

TARGET = "fotaq_joe"
# adapt-split characters kept for validation, about a quarter of those minutes: never replayed
CANARY = ("fotaq_bud", "fotaq_henry", "fotaq_lola")
ENV = "ADAPTWIN_FOTAQ"


def find_corpus(explicit: str | Path | None = None) -> Path | None:
    """The corpus folder: ``explicit``, else ``$ADAPTWIN_FOTAQ``, else a ``shared/speech/fotaq``
    beside or above the working directory (None when there is none)."""
    if explicit is not None:
        root = Path(explicit).expanduser()
        if not (root / "manifest.jsonl").is_file():
            raise MissingFile(f"{root} has no manifest.jsonl: give the folder of the FOTAQ clips and manifest")
        return root
    if os.environ.get(ENV):
        return find_corpus(os.environ[ENV])
    for base in (Path.cwd(), *Path.cwd().parents):
        for cand in (base / "shared/speech/fotaq", base / "../shared/speech/fotaq"):
            if (cand / "manifest.jsonl").is_file():
                return cand.resolve()
    return None


def role(u: Utterance) -> str:
    """target | replay | canary | test for one clip of the corpus."""
    if u.speaker == TARGET:
        return "target"
    if u.split == "test":
        return "test"
    return "canary" if u.speaker in CANARY else "replay"


def fotaq_utterances(root: Path) -> list[Utterance]:
    utts = read_utterances(root / "manifest.jsonl")
    bad = [u for u in utts if u.split not in ("adapt", "test") or not u.speaker or not u.text]
    if bad:
        raise InvalidInput(
            f"{root}/manifest.jsonl: {len(bad)} row(s) lack a speaker, a text or an adapt/test split "
            f"(e.g. {bad[0].audio})"
        )
    return utts
