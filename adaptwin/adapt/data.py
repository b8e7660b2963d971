"""Adaptation data: the target speaker's utterances (and general replay) packed into 30 s
windows with their transcripts, as log-mel features and teacher-forcing token ids."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..audio import SAMPLE_RATE, load_audio
from ..data.manifest import WINDOW_SECONDS, Utterance, pack_windows, read_utterances
from ..errors import InvalidInput

logger = logging.getLogger(__name__)

IGNORE = -100  # label of positions that carry no loss
NON_SPEECH = re.compile(r"^\s*[\(\[<][^\)\]>]*[\)\]>]\s*$")  # "(2 seconds of silence)", "[noise]", "<beep>"


@dataclass
class Windows:
    """Packed training windows: features [N, n_mels, 3000], ids/labels N x [T_i], source per window."""

    features: torch.Tensor
    ids: list[torch.Tensor]  # decoder input: prompt + text
    labels: list[torch.Tensor]  # next token, IGNORE on the prompt
    source: list[str]  # "target" or "general"
    seconds: list[float]  # audio per window (speech and the gaps between utterances)
    record: dict[str, Any]  # what the windows were made of (stored with the adapted model)
    held_out: list[Utterance] = field(default_factory=list)  # target utterances kept for validation
    audio: list[Any] | None = None  # per window the 16 kHz samples, kept only until speech cuts are made
    cut: list[bool] | None = None  # per window: its audio ends inside the speech (``teacher.cut_speech``)

    def __len__(self) -> int:
        return self.features.shape[0]

    def subset(self, index: list[int]) -> "Windows":
        """These windows, in this order; the record says how many of the built ones are used."""
        source = [self.source[i] for i in index]
        seconds = [self.seconds[i] for i in index]
        used = {
            "windows": len(index),
            "of": len(self),
            "target_windows": source.count("target"),
            "target_minutes": round(sum(t for t, s in zip(seconds, source) if s == "target") / 60, 2),
        }
        return Windows(
            self.features[index],
            [self.ids[i] for i in index],
            [self.labels[i] for i in index],
            source,
            seconds,
            {**self.record, "used": used},
            self.held_out,
            None if self.audio is None else [self.audio[i] for i in index],
            None if self.cut is None else [self.cut[i] for i in index],
        )


def _utterances(source) -> tuple[list[Utterance], str]:
    if isinstance(source, (list, tuple)):
        return list(source), f"{len(source)} utterances"
    return read_utterances(source), str(source)


def training_utterances(source, name: str) -> tuple[list[Utterance], str]:
    """The utterances of ``source`` one may train on: its ``adapt`` split when the manifest has
    splits (test utterances are never used), all of them otherwise; each needs a transcript."""
    utts, label = _utterances(source)
    if any(u.split for u in utts):
        splits = sorted({u.split or "none" for u in utts})
        utts = [u for u in utts if u.split == "adapt"]
        if not utts:
            raise InvalidInput(
                f"the {name} set {label} has splits {splits} but no 'adapt' split to train on; "
                'mark training utterances with "split": "adapt" (test ones are never used)'
            )
    annotations = [u for u in utts if u.text and NON_SPEECH.match(u.text)]
    if annotations:
        logger.info(
            "leaving out %d %s utterance(s) whose transcript only annotates non-speech (e.g. %r)",
            len(annotations),
            name,
            annotations[0].text,
        )
        utts = [u for u in utts if u not in annotations]
    missing = [str(u.audio) for u in utts if not (u.text or "").strip()]
    if missing:
        raise InvalidInput(
            f"{len(missing)} {name} utterance(s) have no transcript (e.g. {missing[0]}): "
            'adaptation trains on transcripts; add a "text" field to every row'
        )
    if not utts:
        raise InvalidInput(f"the {name} set {label} is empty: nothing to adapt on")
    return utts, label


def _duration(u: Utterance) -> float:
    if u.duration:
        return float(u.duration)
    return len(load_audio(u.audio)) / SAMPLE_RATE


GOLDEN = (5**0.5 - 1) / 2  # 0.618...: i * GOLDEN mod 1 spreads any prefix of indices evenly


def take_minutes(utts: list[Utterance], minutes: float | None, seconds: float = WINDOW_SECONDS) -> list[Utterance]:
    """Utterances adding up to ``minutes`` of audio, spread evenly over the manifest (kept in
    its order); those longer than a window (``seconds``) are left out.

    They are taken in a golden-ratio stride (index i at i * 0.618 mod 1), not from the start:
    a manifest sorted by name or topic would otherwise give five minutes of one kind of prompt.
    Fewer minutes take a subset of what more minutes take."""
    fits = []
    for u in utts:
        d = _duration(u)
        if d > seconds:
            logger.warning("leaving out %s: %.1f s does not fit one %.0f s training window", u.audio, d, seconds)
        else:
            fits.append((u, d))
    if minutes is None:
        return [u for u, _ in fits]
    chosen, total = set(), 0.0
    for i in sorted(range(len(fits)), key=lambda i: (i * GOLDEN) % 1.0):
        if total >= minutes * 60:
            break
        chosen.add(i)
        total += fits[i][1]
    if total < minutes * 60 - 1:
        logger.warning(
            "asked for %.1f min of target speech, the adapt split holds %.1f min: using all of it", minutes, total / 60
        )
    return [u for i, (u, _) in enumerate(fits) if i in chosen]


def hold_out(utts: list[Utterance], share: float) -> tuple[list[Utterance], list[Utterance]]:
    """(train, validation): about ``share`` of the utterances, spread over the list in the same
    golden-ratio stride as ``take_minutes`` (index i is held out when i * 0.618 + 0.5 mod 1 < share)."""
    if share <= 0 or len(utts) < 2:
        return list(utts), []
    val = [i for i in range(len(utts)) if (i * GOLDEN + 0.5) % 1.0 < share]
    if not val or len(val) == len(utts):
        return list(utts), []
    keep = set(val)
    return [u for i, u in enumerate(utts) if i not in keep], [utts[i] for i in val]


def canary_utterances(source, limit: int) -> tuple[list[Utterance], str]:
    """At most ``limit`` transcribed utterances of the canary set (its ``validation`` split when
    the manifest has splits), every k-th so that each speaker keeps its share."""
    utts, label = _utterances(source)
    if any(u.split for u in utts):
        utts = [u for u in utts if u.split == "validation"]
    utts = [u for u in utts if (u.text or "").strip() and not NON_SPEECH.match(u.text)]
    if not utts:
        raise InvalidInput(
            f"the canary set {label} has no transcribed utterances (in a 'validation' split when it has "
            "splits): give general speakers that are neither replayed nor tested, with transcripts"
        )
    if len(utts) > limit:
        utts = [utts[int(i * len(utts) / limit)] for i in range(limit)]
    return utts, label


def fingerprint(utts: list[Utterance]) -> str:
    h = hashlib.sha256()
    for u in utts:
        h.update(json.dumps([str(Path(u.audio).name), u.text]).encode())
    return h.hexdigest()[:16]


def build_windows(
    processor,
    target,
    general=None,
    *,
    minutes: float | None = None,
    replay: float = 0.25,
    fill: float = 1.0,
    holdout: float = 0.0,
    seed: int = 0,
    language: str = "en",
    max_tokens: int = 448,
    multilingual: bool = False,
    keep_audio: bool = False,
) -> Windows:
    """Target windows (``minutes`` of the adapt split, spread over it, less a ``holdout`` share kept
    for validation in ``Windows.held_out``) and general windows making up ``replay`` of the total.
    Utterances are shuffled (seeded); each window holds a random amount of speech, from one
    utterance up to ``fill`` of its length; the rest is padding, as it is when a short clip is
    transcribed. ``keep_audio``: the windows keep their samples (for ``teacher.cut_speech``)."""
    target_utts, target_label = training_utterances(target, "target")
    seconds = float(getattr(processor.feature_extractor, "chunk_length", WINDOW_SECONDS))
    chosen = take_minutes(target_utts, minutes, seconds)
    target_utts, held_out = hold_out(chosen, holdout)
    if not target_utts:
        raise InvalidInput(f"no target utterance of {target_label} fits a {seconds:.0f} s window: nothing to adapt on")
    rng = random.Random(seed)
    speech = fill * seconds

    def caps(_: int) -> float:  # a window holds one utterance up to `speech` seconds, uniformly
        return rng.uniform(0.0, speech)

    # shuffled, so that a window mixes kinds of prompts (not a run of numbers), and of varied
    # length, so that training also sees one short clip in a window, as when it is transcribed
    shuffled = list(target_utts)
    rng.shuffle(shuffled)
    packed = [(a, t, "target") for a, t in pack_windows(shuffled, seconds=seconds, caps=caps)]
    general_utts: list[Utterance] = []
    general_label = None
    if general is not None and replay > 0:
        general_utts, general_label = training_utterances(general, "general")
        general_utts = [u for u in general_utts if _duration(u) <= max(speech, 0.1)]
        rng.shuffle(general_utts)
        want = max(1, round(replay / (1 - replay) * len(packed)))
        general_windows = pack_windows(general_utts, max_windows=want, seconds=seconds, caps=caps)[:want]
        packed += [(a, t, "general") for a, t in general_windows]
        logger.info(
            "replay: %d general windows beside %d target windows",
            len(general_windows),
            len(packed) - len(general_windows),
        )
    elif replay > 0:
        logger.warning("no general speech given: adapting without replay (other speakers may regress)")

    feats, ids, labels = _encode(processor, packed, language, max_tokens, multilingual)
    target_seconds = sum(_duration(u) for u in chosen)
    record = {
        "target": {
            "source": target_label,
            "utterances": len(chosen),
            "minutes": round(target_seconds / 60, 2),
            "speakers": sorted({u.speaker or "unknown" for u in chosen}),
            "fingerprint": fingerprint(chosen),
            "windows": sum(s == "target" for *_, s in packed),
            "held_out": len(held_out),
        },
        "general": None
        if not general_label
        else {
            "source": general_label,
            "windows": sum(s == "general" for *_, s in packed),
            "seed": seed,
            "speakers": sorted({u.speaker or "unknown" for u in general_utts}),
        },
    }
    return Windows(
        feats,
        ids,
        labels,
        [s for *_, s in packed],
        [len(a) / SAMPLE_RATE for a, _, _ in packed],
        record,
        held_out,
        [a for a, _, _ in packed] if keep_audio else None,
    )


def validation_windows(
    processor,
    utts: list[Utterance],
    source: str,
    *,
    speech: float,
    language: str = "en",
    max_tokens: int = 448,
    multilingual: bool = False,
) -> Windows:
    """Validation utterances in manifest order, packed into windows of at most ``speech`` seconds
    of audio each (fixed, so every evaluation sees the same windows)."""
    seconds = float(getattr(processor.feature_extractor, "chunk_length", WINDOW_SECONDS))
    packed = [(a, t, source) for a, t in pack_windows(utts, seconds=seconds, caps=lambda _: speech)]
    feats, ids, labels = _encode(processor, packed, language, max_tokens, multilingual)
    record = {
        "utterances": len(utts),
        "minutes": round(sum(_duration(u) for u in utts) / 60, 2),
        "speakers": sorted({u.speaker or "unknown" for u in utts}),
    }
    return Windows(feats, ids, labels, [source] * len(packed), [len(a) / SAMPLE_RATE for a, _, _ in packed], record)


def _encode(processor, packed, language: str, max_tokens: int, multilingual: bool):
    """Log-mel features [N, n_mels, frames] and teacher-forcing ids/labels of packed windows."""
    feats = processor.feature_extractor(
        [a for a, _, _ in packed], sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features  # [N, n_mels, 3000]
    tok = processor.tokenizer
    if multilingual:
        tok.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
    prompt_len = len(tok("").input_ids) - 1  # <|startoftranscript|> ... <|notimestamps|>
    ids, labels = [], []
    for _, text, _ in packed:
        full = tok(" " + text.strip()).input_ids  # prompt + text + <|endoftext|>
        if len(full) > max_tokens:
            logger.warning(
                "a window's transcript has %d tokens, more than the decoder's %d: cut", len(full), max_tokens
            )
            full = full[: max_tokens - 1] + full[-1:]
        x = torch.tensor(full[:-1])
        y = torch.tensor(full[1:])
        y[: prompt_len - 1] = IGNORE  # the language/task tokens are given, not learned
        ids.append(x)
        labels.append(y)
    return feats, ids, labels


def pad_batch(seqs: list[torch.Tensor], value: int) -> torch.Tensor:
    """[B, T_max] right-padded; causal decoding keeps real positions unaffected by the padding."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out
