"""Unambiguous English sentences for synthetic speech: Harvard sentences and Jane Austen's novels."""

from __future__ import annotations

import re
import warnings

from .debian import r_package_data

# Spellings, abbreviations and forms a modern recogniser cannot be expected to reproduce.
_ARCHAIC = {
    "shew",
    "shewn",
    "shewed",
    "shewing",
    "chuse",
    "chusing",
    "teaze",
    "ancle",
    "cloaths",
    "recal",
    "untill",
    "visiter",
    "visiters",
    "expence",
    "compleat",
    "agreable",
    "stile",
    "dropt",
    "stept",
    "staid",
    "connexion",
    "connexions",
    "inclosed",
    "inclosure",
    "tho",
    "ere",
    "oft",
    "thee",
    "thou",
    "thy",
    "hath",
    "doth",
    "mama",
    "papa",
    "mamma",
    "whilst",
    "amongst",
    "surprize",
    "surprized",
    "headach",
    "chaise",
    "gaol",
    "choaked",
}
_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,;:'.!?]*[.!?]$")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def usable(sentence: str, min_words: int = 5, max_words: int = 22) -> bool:
    words = sentence.split()
    if not min_words <= len(words) <= max_words or not _ALLOWED.match(sentence):
        return False
    if re.search(r"\b(Mr|Mrs|Dr|St|Esq|Col|Capt)\b", sentence) or "'" in sentence.replace("'s ", " "):
        return False  # abbreviations, and apostrophes other than a plain possessive
    if any(w.strip(",;:.!?'").lower() in _ARCHAIC for w in words):
        return False
    return not any(w.isupper() and len(w) > 1 for w in words)  # headings, shouting


def novel_sentences(lines) -> list[str]:
    """Paragraphs (blank-line separated) of a novel split into sentences, quotes removed."""
    out, para = [], []
    for line in list(lines) + [""]:
        line = str(line).strip()
        if line:
            para.append(line)
            continue
        text = " ".join(para).replace('"', "").replace("_", "")
        text = re.sub(r"\b(Mr|Mrs|Dr|St)\.", r"\1", text)  # keep "Mrs. Weston" in one (later rejected) piece
        para = []
        out.extend(s.strip() for s in _SPLIT.split(text) if s.strip())
    return out


def corpus_sentences() -> list[tuple[str, str]]:
    """(source, sentence) pairs from the Harvard sentences and six Austen novels, filtered."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        harvard = r_package_data("r-cran-stringr", "stringr")["sentences"]
        austen = r_package_data("r-cran-janeaustenr", "janeaustenr")
    pairs = [("harvard", str(s)) for s in harvard]
    for book in ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"):
        pairs.extend((book, s) for s in novel_sentences(austen[book]))
    seen, out = set(), []
    for source, s in pairs:
        key = s.lower()
        if usable(s) and key not in seen:
            seen.add(key)
            out.append((source, s))
    return out
