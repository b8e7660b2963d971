"""Cache folder, and OpenAI's own Whisper asset files (BPE ranks, normaliser tables).

The assets come from the ``openai-whisper`` source distribution on PyPI (MIT): from an
installed ``whisper`` package if there is one, else from a copy unpacked in the cache,
fetched once with ``pip download`` (no model code of that package is imported).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..errors import ExternalFailure, MissingFile

logger = logging.getLogger(__name__)

OPENAI_WHISPER_SDIST = "openai-whisper==20250625"
_SUBDIRS = {".tiktoken": "assets", ".npz": "assets", ".json": "normalizers"}


def cache_dir() -> Path:
    """``$ADAPTWIN_CACHE``, else ``~/.cache/adaptwin``."""
    root = os.environ.get("ADAPTWIN_CACHE") or Path.home() / ".cache" / "adaptwin"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def openai_asset(name: str) -> Path:
    """Path of ``whisper/assets/NAME`` or ``whisper/normalizers/NAME`` from OpenAI's package."""
    sub = _SUBDIRS[Path(name).suffix]
    spec = importlib.util.find_spec("whisper")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / sub / name
        if installed.is_file():
            return installed
    cached = cache_dir() / "openai-whisper" / sub / name
    if not cached.is_file():
        _fetch_sdist(cache_dir() / "openai-whisper")
    if not cached.is_file():
        raise MissingFile(f"{name} is not in the {OPENAI_WHISPER_SDIST} source distribution")
    return cached


def _fetch_sdist(dest: Path) -> None:
    logger.info("fetching OpenAI's tokenizer/normaliser files: pip download %s", OPENAI_WHISPER_SDIST)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            tmp,
            OPENAI_WHISPER_SDIST,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise ExternalFailure(
                f"could not fetch {OPENAI_WHISPER_SDIST} (needed for Whisper's tokenizer files): "
                f"{result.stderr[-400:]}\n"
                f"Fix: `pip install {OPENAI_WHISPER_SDIST}`, or download its sdist and unpack whisper/assets and "
                f"whisper/normalizers into {dest}"
            )
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".openai-whisper-"))
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (
                    len(parts) == 4
                    and parts[1] == "whisper"
                    and parts[2] in ("assets", "normalizers")
                    and member.isfile()
                ):
                    target = staging / parts[2] / parts[3]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
        if dest.exists():
            import shutil

            shutil.rmtree(dest)
        os.replace(staging, dest)
