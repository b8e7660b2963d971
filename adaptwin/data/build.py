"""``adaptwin data build``: the standard target-speaker, general, canary, calibration and test sets.

Speakers have one role each, so a test voice is never heard in replay, calibration or
validation (``check_disjoint`` refuses a build that breaks this):

| file | speakers | split | used for |
|---|---|---|---|
| ``allison.jsonl`` | Allison Smith (Asterisk prompts) | adapt / test | target speaker 1 |
| ``joe.jsonl`` | Joe King (FOTAQ) | adapt / test | target speaker 2 |
| ``general.jsonl`` | replay voices and characters | adapt | replay during adaptation |
| ``calib.jsonl`` | replay voices and characters | calib | data-aware compression |
| ``canary.jsonl`` | canary voices and characters | validation | choosing the checkpoint |
| ``test-tts.jsonl`` | test voices | test | general WER, unseen synthetic voices |
| ``test-real.jsonl`` | FOTAQ test characters, LibriVox | test | general WER, unseen real speakers |
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..errors import InvalidInput
from . import fotaq
from .debian import (
    allison_prompts,
    allison_root,
    apt_install,
    librivox_utterances,
    package_version,
    unpacked,
)
from .manifest import Utterance, write_manifest
from .text import corpus_sentences
from .tts import VOICES, Voice, available, synthesize, write_wav

logger = logging.getLogger(__name__)

TEST_EVERY = 4  # target speaker: every 4th prompt in sorted file-name order is a test prompt
TRAINING_SETS = ("allison", "joe", "general", "calib", "canary")  # heard by training, calibration or validation
TEST_SETS = ("test-tts", "test-real")
_WORD = re.compile(r"[A-Za-z']+")
WORD_LIST = "wamerican"  # Debian's American English word list: what counts as an English word


def english_words() -> frozenset[str]:
    """The word list (lower case), fetched once from Debian (no root needed)."""
    path = unpacked(WORD_LIST) / "usr/share/dict/american-english"
    return frozenset(w.strip().lower() for w in path.read_text(encoding="utf-8", errors="replace").splitlines())


def unscorable(text: str | None, words: frozenset[str]) -> bool:
    """True for a line with no spelling to score a transcript against: at least half its words
    (of two or more letters) are no English word: gibberish ("Frrblrt, trgn smrrldn."), an
    invented language ("Ungawa changa tu tawanga."), a foreign phrase."""
    found = [w.strip("'").lower() for w in _WORD.findall(text or "")]
    found = [w for w in found if len(w) >= 2]
    odd = sum(w not in words and w.removesuffix("'s") not in words for w in found)
    return bool(found) and 2 * odd >= len(found)


@dataclass
class BuildReport:
    out: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # manifest -> split -> utterances
    minutes: dict[str, dict[str, float]] = field(default_factory=dict)  # speaker -> split -> minutes
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def target_split(index: int) -> str:
    return "test" if index % TEST_EVERY == TEST_EVERY - 1 else "adapt"


def person_of(speaker: str, voices: tuple[Voice, ...] = VOICES) -> str:
    """The person behind a speaker id: synthetic voices of one human share one."""
    return next((v.person for v in voices if v.name == speaker), speaker)


def check_disjoint(sets: dict[str, list[Utterance]], person: Callable[[str], str] = person_of) -> None:
    """Refuse sets in which a test speaker is also heard in training, replay, calibration or
    validation, a canary speaker is replayed or calibrated on, or a test sentence is read elsewhere."""

    def people(names) -> dict[str, set[str]]:  # person -> the speaker ids it appears as
        out: dict[str, set[str]] = {}
        for n in names:
            for u in sets.get(n, []):
                out.setdefault(person(u.speaker or "unknown"), set()).add(u.speaker or "unknown")
        return out

    def clash(a: dict, b: dict) -> list[str]:
        return sorted(f"{p} ({', '.join(sorted(a[p] | b[p]))})" for p in a.keys() & b.keys())

    def texts(names):
        return {u.text.strip().lower() for n in names for u in sets.get(n, []) if u.text}

    seen = people(TRAINING_SETS)
    for name in TEST_SETS:
        both = clash(people([name]), seen)
        if both:
            raise InvalidInput(
                f"{name}: speaker(s) {both} are also used for training, calibration or validation; "
                "a test speaker must be unseen"
            )
        shared = texts([name]) & texts(TRAINING_SETS)
        if shared:
            raise InvalidInput(
                f"{name}: {len(shared)} sentence(s) are also read in training data (e.g. {min(shared)!r})"
            )
    both = clash(people(["canary"]), people(["general", "calib"]))
    if both:
        raise InvalidInput(f"canary speaker(s) {both} are also replayed or calibrated on: the canary must be unseen")


def build_standard_sets(
    out: str | Path,
    voices: tuple[Voice, ...] = VOICES,
    per_voice: int = 180,
    canary_per_voice: int = 30,
    test_per_voice: int = 60,
    calib_per_voice: int = 8,
    calib_real: int = 48,
    fotaq_root: str | Path | None = None,
    seed: int = 0,
    workers: int = 2,
    progress: bool = False,
) -> BuildReport:
    """Write the manifests above (with 16 kHz WAV audio) and ``provenance.json`` under ``out``.

    ``fotaq_root``: the FOTAQ corpus folder (default: ``fotaq.find_corpus()``); without it
    there is no second target speaker and the real test speakers are LibriVox's alone."""
    start = time.perf_counter()
    out = Path(out)
    report = BuildReport(str(out))
    missing = [v.name for v in voices if not available(v)]
    if missing:
        logger.warning("leaving out voice(s) %s: pip install 'adaptwin[data]' for Piper", ", ".join(missing))
        voices = tuple(v for v in voices if v.name not in missing)
    _install_voices(voices)
    sets: dict[str, list[Utterance]] = {}

    # Target speaker 1: Allison's prompts, converted from G.722 to 16 kHz WAV.
    root = allison_root()
    allison = []
    for i, (path, text) in enumerate(_bar(allison_prompts(), progress, "allison")):
        name = "_".join(path.relative_to(root).with_suffix(".wav").parts)  # digits/1 -> digits_1.wav: unique
        utt = _convert(path, out / "allison" / name, text, "allison", target_split(i), report)
        if utt:
            allison.append(utt)
    sets["allison"] = allison

    # Real speech: FOTAQ (target 2, replay, canary and test characters) and LibriVox (test).
    real = {"joe": [], "general": [], "canary": [], "test-real": []}
    corpus = fotaq.find_corpus(fotaq_root)
    if corpus is None:
        logger.warning(
            "no FOTAQ corpus found (give --fotaq DIR or set %s): no second target speaker, and the "
            "real test speakers are LibriVox's five utterances alone",
            fotaq.ENV,
        )
    else:
        clips = fotaq.fotaq_utterances(corpus)
        split = {"target": "joe", "replay": "general", "canary": "canary", "test": "test-real"}
        renamed = {"replay": "adapt", "canary": "validation"}

        def convert(u: Utterance):
            r = fotaq.role(u)
            return split[r], _convert(
                u.audio, out / "fotaq" / f"{u.audio.stem}.wav", u.text, u.speaker, renamed.get(r, u.split), report
            )

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for name, utt in _bar(pool.map(convert, clips), progress, "fotaq", total=len(clips)):
                if utt:
                    real[name].append(utt)
    for path, text in librivox_utterances():
        utt = _convert(path, out / "librivox" / path.name, text, "librivox", "test", report)
        if utt:
            real["test-real"].append(utt)

    # Synthetic voices, each reading its own sentences: replay voices many, canary and test voices fewer.
    sentences = [s for _, s in corpus_sentences()]
    random.Random(seed).shuffle(sentences)
    counts = {"replay": per_voice + calib_per_voice, "canary": canary_per_voice, "test": test_per_voice}
    jobs, k = [], 0
    # test voices take their sentences first, so resizing replay or calibration never changes a test set
    for voice in sorted(voices, key=lambda v: ("test", "canary", "replay").index(v.role)):
        for j, text in enumerate(sentences[k : k + counts[voice.role]]):
            kind = {"canary": "validation", "test": "test"}.get(voice.role, "calib" if j >= per_voice else "adapt")
            jobs.append((voice, text, kind, out / "tts" / voice.name / f"{j:04d}.wav"))
        k += counts[voice.role]
    if k > len(sentences):
        raise InvalidInput(f"the voices need {k} sentences, the corpora give {len(sentences)}: lower --per-voice")
    synthesized: list[Utterance | None] = [None] * len(jobs)

    def run(i: int) -> None:
        voice, text, kind, wav = jobs[i]
        try:
            synthesized[i] = Utterance(wav, text, voice.name, kind, synthesize(voice, text, wav))
        except Exception as exc:  # one bad sentence never stops the build
            report.failed.append(f"{voice.name}: {exc}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(_bar(pool.map(run, range(len(jobs))), progress, "synthetic voices", total=len(jobs)))
    tts = [u for u in synthesized if u is not None]

    sets["joe"] = real["joe"]
    sets["general"] = [u for u in tts if u.split == "adapt"] + real["general"]
    sets["canary"] = [u for u in tts if u.split == "validation"] + real["canary"]
    sets["test-tts"] = [u for u in tts if u.split == "test"]
    sets["test-real"] = real["test-real"]
    # calibration: a few minutes of replay speakers only (synthetic and real), never a target or test speaker
    replay_real = real["general"]
    sets["calib"] = [u for u in tts if u.split == "calib"] + replay_real[:: max(1, len(replay_real) // calib_real)][
        :calib_real
    ]
    sets["calib"] = [Utterance(u.audio, u.text, u.speaker, "calib", u.duration) for u in sets["calib"]]
    # a game repeats stock lines across characters: a test line heard in training is not a test
    heard = {u.text.strip().lower() for n in TRAINING_SETS for u in sets.get(n, []) if u.text}
    repeated, not_english = {}, {}
    for name in TEST_SETS:
        keep = [u for u in sets[name] if (u.text or "").strip().lower() not in heard]
        repeated[name] = len(sets[name]) - len(keep)
        sets[name] = keep
    if any(repeated.values()):
        logger.info("left out test utterances whose sentence is also in training data: %s", repeated)
    # a general test line must be English to be scored (a target's prompts are what the user says)
    words = english_words()
    for name in TEST_SETS:
        keep = [u for u in sets[name] if not unscorable(u.text, words)]
        not_english[name] = len(sets[name]) - len(keep)
        sets[name] = keep
    if any(not_english.values()):
        logger.info("left out general test lines that are not English: %s", not_english)
    check_disjoint(sets, lambda s: person_of(s, voices))
    for name, utts in sets.items():
        if utts:
            write_manifest(utts, out / f"{name}.jsonl")

    for name, utts in sets.items():
        report.counts[name] = {}
        for u in utts:
            report.counts[name][u.split] = report.counts[name].get(u.split, 0) + 1
            m = report.minutes.setdefault(u.speaker, {})
            m[u.split] = round(m.get(u.split, 0.0) + (u.duration or 0) / 60, 2)
    report.seconds = round(time.perf_counter() - start, 1)
    roles = {v.name: {"person": v.person, "role": v.role, "engine": v.engine} for v in voices}
    provenance = {
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rule": f"allison: prompts in sorted file-name order, every {TEST_EVERY}th is test; joe and the FOTAQ "
        f"characters: the corpus's own splits, canary characters {list(fotaq.CANARY)}; synthetic voices: "
        f"one role per person, sentences shuffled with seed {seed}, each read by one voice only",
        "speakers": {name: sorted({u.speaker for u in utts}) for name, utts in sets.items()},
        "voices": roles,
        "fotaq": str(corpus) if corpus else None,
        "test_lines_heard_in_training_left_out": repeated,
        "test_lines_not_english_left_out": not_english,
        "debian_packages": {
            p: package_version(p)
            for p in (
                "asterisk-core-sounds-en-g722",
                "asterisk-core-sounds-en",
                "pocketsphinx-testdata",
                "r-cran-janeaustenr",
                "r-cran-stringr",
                WORD_LIST,
            )
        },
        "report": asdict(report),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1))
    if report.failed:
        logger.warning("%d item(s) failed and were left out (see provenance.json)", len(report.failed))
    return report


def _convert(src: Path, wav: Path, text: str | None, speaker: str, split: str, report: BuildReport) -> Utterance | None:
    try:
        audio = load_audio(src)
    except ValueError as exc:
        report.failed.append(str(exc))
        return None
    if float(np.abs(audio).max()) < 1e-4:  # a transcript over silence would teach hallucination
        report.failed.append(f"{src} is silent")
        return None
    write_wav(wav, audio)
    return Utterance(wav, text, speaker, split, len(audio) / SAMPLE_RATE)


def _install_voices(voices: tuple[Voice, ...]) -> None:
    """apt-get install the engines and festival voices that are missing."""
    missing = set()
    for v in voices:
        if v.engine == "piper":
            continue
        binary = {"flite": "flite", "festival": "text2wave", "espeak-ng": "espeak-ng"}[v.engine]
        if shutil.which(binary) is None:
            missing.add("festival" if v.engine == "festival" else v.package)
        if v.engine == "festival" and not any(
            Path("/usr/share/festival/voices").glob(f"*/{v.voice.removeprefix('voice_')}")
        ):
            missing.add(v.package)
    apt_install(sorted(missing))


def _bar(items, progress: bool, desc: str, total: int | None = None):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total)
