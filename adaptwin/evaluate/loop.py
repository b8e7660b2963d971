"""Score a backend on a manifest: corpus WER with S/D/I, per speaker, speed and memory."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

from ..audio import SAMPLE_RATE, load_audio
from ..data.manifest import Utterance
from ..errors import InvalidInput
from ..runtime import get_backend
from ..runtime.gate import NoSpeechGate
from ..runtime.heap import peak_rss_mb
from .wer import Score, wer_counts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UtteranceResult:
    audio: str
    speaker: str | None
    reference: str
    hypothesis: str
    errors: int
    words: int


@dataclass
class EvalReport:
    wer: float
    n_utterances: int
    n_words: int
    substitutions: int
    deletions: int
    insertions: int
    rtf: float  # decoding wall time / audio duration
    audio_seconds: float
    wall_seconds: float
    peak_rss_mb: float
    per_speaker: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    backend: str = ""
    model: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _batches(utterances: list[Utterance], size: int, skipped: list[str]) -> Iterator[list[tuple[Utterance, object]]]:
    batch = []
    for u in utterances:
        if not u.text:
            skipped.append(f"{u.audio}: no reference text")
            continue
        try:
            audio = load_audio(u.audio)
        except (ValueError, OSError) as exc:
            skipped.append(f"{u.audio}: {exc}")
            logger.warning("skipping %s", exc)
            continue
        if len(audio) > 30 * SAMPLE_RATE:
            logger.warning("%s is longer than 30 s: only its first 30 s are scored", u.audio)
        batch.append((u, audio))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate(
    backend,
    utterances: Iterable[Utterance],
    *,
    batch_size: int = 8,
    num_beams: int = 1,
    language: str | None = "en",
    progress: bool = False,
    results: list[UtteranceResult] | None = None,
    gate: NoSpeechGate | None = NoSpeechGate(),
) -> EvalReport:
    """Decode every utterance with ``backend`` (a ``Backend``, or a ``LoadedWhisper`` for the
    PyTorch one; batched greedy by default) and score it; unreadable files are skipped and
    listed in the report, never fatal. ``gate``: the no-speech gate (None: off)."""
    if not hasattr(backend, "transcribe_batch"):  # a LoadedWhisper (or what load_whisper accepts)
        backend = get_backend("torch", backend)
    utterances = list(utterances)
    if not utterances:
        raise InvalidInput("nothing to evaluate: the manifest lists no utterances")
    total, speakers, skipped = Score(), {}, []
    audio_seconds = wall = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(utterances), desc="evaluating", unit="utt")
    for batch in _batches(utterances, batch_size, skipped):
        start = time.perf_counter()
        hyps = backend.transcribe_batch([a for _, a in batch], language=language, num_beams=num_beams, gate=gate)
        wall += time.perf_counter() - start
        for (u, audio), hyp in zip(batch, hyps):
            a = wer_counts(u.text, hyp)
            total.add(a)
            speakers.setdefault(u.speaker or "unknown", Score()).add(a)
            audio_seconds += len(audio) / SAMPLE_RATE
            if results is not None:
                results.append(UtteranceResult(str(u.audio), u.speaker, u.text, hyp, a.errors, a.ref_words))
        if bar is not None:
            bar.update(len(batch))
            bar.set_postfix(wer=f"{total.wer:.2f}")
    if bar is not None:
        bar.close()
    if skipped:
        logger.warning("skipped %d of %d utterances (see the report's 'skipped')", len(skipped), len(utterances))
    if total.utterances == 0:
        raise InvalidInput(f"none of the {len(utterances)} utterances could be scored: {skipped[:3]}")
    return EvalReport(
        wer=round(total.wer, 3),
        n_utterances=total.utterances,
        n_words=total.words,
        substitutions=total.substitutions,
        deletions=total.deletions,
        insertions=total.insertions,
        rtf=round(wall / max(audio_seconds, 1e-9), 4),
        audio_seconds=round(audio_seconds, 2),
        wall_seconds=round(wall, 2),
        peak_rss_mb=round(peak_rss_mb(), 1),
        per_speaker={
            k: {"wer": round(v.wer, 3), "n_utterances": v.utterances, "n_words": v.words}
            for k, v in sorted(speakers.items())
        },
        skipped=skipped,
        backend=backend.name,
    )
