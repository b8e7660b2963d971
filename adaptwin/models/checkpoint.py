"""``load_whisper(source)`` and ``save(model, dir)``: dense or compressed, hub, HF dir,
CTranslate2 dir or built-in name; saved as an ordinary HF-style directory, atomically."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InvalidInput, MissingFile
from .assets import cache_dir
from .builtin import BUILTINS, builtin_dir
from .structure import head_is_factored, rebuild_structure

logger = logging.getLogger(__name__)


@dataclass
class LoadedWhisper:
    model: nn.Module  # WhisperForConditionalGeneration, possibly with compressed modules
    processor: Any  # WhisperProcessor (feature extractor + tokenizer), None when the folder has none
    path: Path  # the local HF-style directory it was loaded from

    @property
    def compressed(self) -> bool:
        return getattr(self.model.config, "adaptwin", None) is not None


def resolve(source: str | os.PathLike) -> Path:
    """A local HF-style directory for ``source`` (converting or downloading if needed)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() and "model_type" in _read_config(path / "config.json"):
            return path
        if (path / "model.bin").is_file():
            return _converted_ct2(path)
        raise InvalidInput(
            f"{path} is neither a Hugging Face model folder (config.json) nor a CTranslate2 folder (model.bin)"
        )
    if path.exists():
        raise InvalidInput(
            f"{path} is a file; give the model's folder, a built-in name ({', '.join(BUILTINS)}) or a hub id"
        )
    if str(source) in BUILTINS:
        return builtin_dir(str(source))
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(source)))
    except Exception as exc:  # offline, unknown id, ...
        raise InvalidInput(
            f"could not find model {source!r}: not a folder, not a built-in name ({', '.join(BUILTINS)}), and the "
            f"Hugging Face hub did not provide it ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"{path} is not valid JSON ({exc}): the folder is corrupt; save or download the model again"
        ) from None
    if not isinstance(config, dict):
        raise InvalidInput(f"{path} is not a model config (a JSON object): save or download the model again")
    return config


def _converted_ct2(ct2_dir: Path) -> Path:
    from .convert import convert_ct2_dir

    stat = (ct2_dir / "model.bin").stat()
    key = hashlib.sha256(f"{ct2_dir.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / "models" / f"ct2-{key}"
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".ct2-"))
        try:
            convert_ct2_dir(ct2_dir, tmp)
            os.chmod(tmp, 0o755)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return {}
    state = {}
    for f in files:
        try:
            state.update(load_file(str(path / f)))
        except Exception as exc:  # safetensors raises its own error type for a cut or garbled file
            raise InvalidInput(
                f"{path / f} is truncated or corrupt ({type(exc).__name__}: {exc}): save or download the model again"
            ) from None
    return state


def load_whisper(
    source: str | os.PathLike, *, dtype: torch.dtype | None = None, device: str | None = None
) -> LoadedWhisper:
    """Load a dense or AdaPTwin-compressed Whisper model and its processor, without remote code."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    path = resolve(source)
    config = WhisperConfig.from_pretrained(str(path))
    if config.model_type != "whisper":
        raise InvalidInput(f"{path} holds a {config.model_type!r} model, not Whisper")
    meta = getattr(config, "adaptwin", None)
    state = _state_dict(path)
    if not state:
        if meta:
            raise MissingFile(f"{path} has no model.safetensors: the compressed checkpoint is incomplete")
        model = WhisperForConditionalGeneration.from_pretrained(str(path))
    else:
        with torch.device("meta"):
            model = WhisperForConditionalGeneration(config)
        if meta:
            rebuild_structure(model, meta)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if not (k == "proj_out.weight" and config.tie_word_embeddings)]
        if missing or unexpected:
            raise InvalidInput(
                f"{path} does not match its config: missing {missing[:4]}, unexpected {unexpected[:4]} "
                "(was it saved by a different adaptwin version?)"
            )
        if not head_is_factored(model):  # a factorized head is already one pair for lookup and logits
            model.tie_weights()
        if (path / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(str(path))
    left = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if p.is_meta]
    if left:
        raise InvalidInput(f"{path}: these tensors were never loaded: {left[:4]}")
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    model.eval()
    processor = None
    if (path / "preprocessor_config.json").is_file() or (path / "processor_config.json").is_file():
        processor = WhisperProcessor.from_pretrained(str(path))
    return LoadedWhisper(model, processor, path)


OUTPUT_MARKERS = ("config.json", "adaptwin_export.json")  # what adaptwin writes: a model or an export folder


def check_output_dir(out: str | os.PathLike) -> Path:
    """``out`` may be written: it does not exist, is empty, or is an earlier adaptwin output
    (which is replaced); anything else is refused before any work starts, so no user folder
    is ever overwritten and no hour of compute ends in a refusal."""
    out = Path(out).expanduser()
    if out.exists():
        if not out.is_dir():
            raise InvalidInput(f"{out} is a file: give a folder name for the output (--out)")
        if any(out.iterdir()) and not any((out / m).is_file() for m in OUTPUT_MARKERS):
            raise InvalidInput(
                f"{out} exists and is not a model or export folder: choose another --out "
                "(an earlier adaptwin output there would be replaced)"
            )
    parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write {out}: {parent} is not writable; choose another --out")
    return out


@contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; when the block completes it replaces ``out``
    in one rename. A crash, a failed check or a full disk leaves any previous ``out`` intact
    and no half-written folder behind. ``out`` must pass ``check_output_dir``."""
    out = check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OSError(
                exc.errno,
                f"no space left while writing {out}; nothing was overwritten: free disk space "
                "or choose another output folder",
            ) from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save(model: nn.Module, out: str | os.PathLike, processor: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (and ``processor``) to ``out`` as an HF-style folder, atomically (see ``atomic_dir``)."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        if processor is not None:
            processor.save_pretrained(str(tmp))
        if extra:
            (tmp / "adaptwin_source.json").write_text(json.dumps(extra, indent=1, default=str))
    logger.info("saved %s", out)
    return Path(out).expanduser()
