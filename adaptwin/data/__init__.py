"""Speech data: manifests, calibration windows, and the standard evaluation sets."""

from .manifest import (
    AUDIO_SUFFIXES,
    WINDOW_SECONDS,
    Utterance,
    bundled_clips,
    from_hf_dataset,
    pack_windows,
    read_utterances,
    write_manifest,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "WINDOW_SECONDS",
    "Utterance",
    "bundled_clips",
    "from_hf_dataset",
    "pack_windows",
    "read_utterances",
    "write_manifest",
]
