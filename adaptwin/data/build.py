"""``adaptwin data build``: the standard target-speaker, general and calibration sets."""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..audio import SAMPLE_RATE, load_audio
from .debian import allison_prompts, allison_root, apt_install, librivox_utterances, package_version
from .manifest import Utterance, write_manifest
from .text import corpus_sentences
from .tts import VOICES, Voice, synthesize, write_wav

logger = logging.getLogger(__name__)

TEST_EVERY = 4  # target speaker: every 4th prompt in sorted file-name order is a test prompt


@dataclass
class BuildReport:
    out: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # manifest -> split -> utterances
    minutes: dict[str, dict[str, float]] = field(default_factory=dict)  # speaker -> split -> minutes
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def target_split(index: int) -> str:
    return "test" if index % TEST_EVERY == TEST_EVERY - 1 else "adapt"


def build_standard_sets(
    out: str | Path, voices: tuple[Voice, ...] = VOICES, per_voice: int = 180, test_per_voice: int = 20,
    calib_per_voice: int = 4, calib_target: int = 16, seed: int = 0, workers: int = 2, progress: bool = False,
) -> BuildReport:
    """Write ``target.jsonl``, ``general.jsonl`` and ``calib.jsonl`` (with audio) under ``out``."""
    start = time.perf_counter()
    out = Path(out)
    report = BuildReport(str(out))
    _install_voices(voices)

    # Target speaker: Allison's prompts, converted from G.722 to 16 kHz WAV.
    target = []
    prompts = allison_prompts()
    root = allison_root()
    for i, (path, text) in enumerate(_bar(prompts, progress, "target speaker")):
        name = "_".join(path.relative_to(root).with_suffix(".wav").parts)  # digits/1 -> digits_1.wav: unique
        wav = out / "target" / name
        try:
            audio = load_audio(path)
        except ValueError as exc:
            report.failed.append(str(exc))
            continue
        write_wav(wav, audio)
        target.append(Utterance(wav, text, "allison", target_split(i), len(audio) / SAMPLE_RATE))
    write_manifest(target, out / "target.jsonl")

    # General speakers: LibriVox (test only) + synthetic voices on disjoint sentences.
    general = []
    for path, text in librivox_utterances():
        wav = out / "general" / "librivox" / path.name
        audio = load_audio(path)
        write_wav(wav, audio)
        general.append(Utterance(wav, text, "librivox", "test", len(audio) / SAMPLE_RATE))
    sentences = [s for _, s in corpus_sentences()]
    random.Random(seed).shuffle(sentences)
    jobs = []
    take = per_voice + calib_per_voice
    for k, voice in enumerate(voices):
        mine = sentences[k * take : (k + 1) * take]
        for j, text in enumerate(mine):
            split = "test" if j < test_per_voice else "calib" if j >= per_voice else "adapt"
            jobs.append((voice, text, split, out / "general" / voice.name / f"{j:04d}.wav"))
    synthesized: list[Utterance | None] = [None] * len(jobs)

    def run(i: int) -> None:
        voice, text, split, wav = jobs[i]
        try:
            synthesized[i] = Utterance(wav, text, voice.name, split, synthesize(voice, text, wav))
        except Exception as exc:  # one bad sentence never stops the build
            report.failed.append(f"{voice.name}: {exc}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(_bar(pool.map(run, range(len(jobs))), progress, "synthetic voices", total=len(jobs)))
    general.extend(u for u in synthesized if u is not None)
    write_manifest([u for u in general if u.split != "calib"], out / "general.jsonl")

    # Calibration: a few minutes, mixed speakers, disjoint from every test split.
    calib = [u for u in general if u.split == "calib"]
    target_adapt = [u for u in target if u.split == "adapt"]
    calib += target_adapt[:: max(1, len(target_adapt) // calib_target)][:calib_target]
    write_manifest([Utterance(u.audio, u.text, u.speaker, "calib", u.duration) for u in calib], out / "calib.jsonl")

    for name, utts in (("target", target), ("general", [u for u in general if u.split != "calib"]), ("calib", calib)):
        report.counts[name] = {}
        for u in utts:
            split = "calib" if name == "calib" else u.split
            report.counts[name][split] = report.counts[name].get(split, 0) + 1
            m = report.minutes.setdefault(u.speaker, {})
            m[split] = round(m.get(split, 0.0) + (u.duration or 0) / 60, 2)
    report.seconds = round(time.perf_counter() - start, 1)
    provenance = {
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rule": f"target: Allison prompts in sorted file-name order, every {TEST_EVERY}th is test; general: "
                f"sentences shuffled with seed {seed}, each read by one voice only, first {test_per_voice} per voice test",
        "debian_packages": {p: package_version(p) for p in ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en",
                            "pocketsphinx-testdata", "r-cran-janeaustenr", "r-cran-stringr")},
        "voices": [asdict(v) for v in voices],
        "report": asdict(report),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1))
    if report.failed:
        logger.warning("%d item(s) failed and were left out (see provenance.json)", len(report.failed))
    return report


def _install_voices(voices: tuple[Voice, ...]) -> None:
    """apt-get install the engines and festival voices that are missing."""
    missing = set()
    for v in voices:
        binary = {"flite": "flite", "festival": "text2wave", "espeak-ng": "espeak-ng"}[v.engine]
        if shutil.which(binary) is None:
            missing.add("festival" if v.engine == "festival" else v.package)
        if v.engine == "festival" and not any(Path("/usr/share/festival/voices").glob(f"*/{v.voice.removeprefix('voice_')}")):
            missing.add(v.package)
    apt_install(sorted(missing))


def _bar(items, progress: bool, desc: str, total: int | None = None):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total)
