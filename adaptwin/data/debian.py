"""Real speech and text from Debian packages, unpacked into the cache (``apt-get download`` +
``dpkg -x``, so nothing is installed system-wide), and the system tools the builder needs."""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ExternalFailure
from ..models.assets import cache_dir
from ..optional import require

logger = logging.getLogger(__name__)


def _run(cmd: list[str], what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise ExternalFailure(f"{cmd[0]} is not available, needed to {what}: run on Debian/Ubuntu or install it")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExternalFailure(f"{' '.join(cmd)} failed ({what}): {proc.stderr.strip()[-400:]}")
    return proc.stdout


def unpacked(package: str) -> Path:
    """Root folder of ``package``'s files, downloaded and unpacked once into the cache."""
    root = cache_dir() / "debs" / package
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    logger.info("fetching the Debian package %s (apt-get download, once; kept in %s)", package, root)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        try:
            proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
            if proc.returncode != 0:
                subprocess.run(["apt-get", "update"], capture_output=True)
                proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        except FileNotFoundError:
            raise ExternalFailure(f"apt-get is needed to fetch the Debian package {package}") from None
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            said = " ".join(proc.stderr.split())[-300:]
            raise ExternalFailure(
                f"apt-get download {package} failed ({said}): without network access, fetch {package}'s .deb "
                f"elsewhere and unpack it with `dpkg -x FILE.deb {root}` (then create {root}/.complete)"
            )
        staging = Path(tmp) / "root"
        _run(["dpkg", "-x", str(debs[0]), str(staging)], f"unpack {package}")
        (staging / ".complete").write_text(debs[0].name)
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    return root


def package_version(package: str) -> str | None:
    root = cache_dir() / "debs" / package / ".complete"
    return root.read_text().strip() if root.is_file() else None


def apt_install(packages: list[str]) -> None:
    """``apt-get install`` system packages (needs root); a clear error otherwise."""
    if not packages:
        return
    logger.info("installing %s with apt-get", " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise ExternalFailure(
            f"could not install {' '.join(packages)} (run as root, or apt-get install them yourself): "
            f"{proc.stderr.strip()[-300:]}"
        )


def allison_root() -> Path:
    return unpacked("asterisk-core-sounds-en-g722") / "usr/share/asterisk/sounds/en_US_f_Allison"


def allison_prompts() -> list[tuple[Path, str]]:
    """(G.722 file, transcript) of the Asterisk prompts read by Allison Smith (CC-BY-SA-3.0).
    Non-speech entries ("[beep]", "(1 second of silence)") and prompts without audio are dropped."""
    audio_root = allison_root()
    text_file = next((unpacked("asterisk-core-sounds-en") / "usr/share").rglob("core-sounds-en.txt.gz"))
    prompts = []
    for line in gzip.open(text_file, "rt", encoding="utf-8", errors="replace"):
        if line.startswith(";") or ":" not in line:
            continue
        name, text = line.split(":", 1)
        text = text.strip()
        path = audio_root / f"{name.strip()}.g722"
        if text and not re.search(r"[\[(]", text) and path.is_file():  # "[beep]", "(5 seconds of silence)"
            prompts.append((path, text))
    if not prompts:
        raise ExternalFailure(f"no Allison prompts found under {audio_root}")
    return sorted(prompts, key=lambda p: str(p[0].relative_to(audio_root)))


def librivox_utterances() -> list[tuple[Path, str]]:
    """The five LibriVox *Sense and Sensibility* utterances of ``pocketsphinx-testdata``."""
    root = unpacked("pocketsphinx-testdata") / "usr/share/pocketsphinx/test/data/librivox"
    out = []
    for line in (root / "transcription").read_text().splitlines():
        text, _, utt = line.rpartition("(")
        text = text.replace("<s>", "").replace("</s>", "").strip()
        path = root / f"{utt.strip(') ')}.wav"
        if path.is_file():
            out.append((path, text))
    return out


def r_package_data(package: str, r_name: str) -> dict:
    """Objects of an R package's lazy-load data base (``data/Rdata.rdb``), read with ``rdata``."""
    import zlib

    require("rdata", "reading R data")
    from rdata import conversion, parser

    base = unpacked(package) / f"usr/lib/R/site-library/{r_name}/data/Rdata"
    index = conversion.convert(parser.parse_data(gzip.decompress(base.with_suffix(".rdx").read_bytes())))
    blob = base.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (offset, length) in index["variables"].items():
        raw = blob[int(offset) : int(offset) + int(length)]
        out[name] = conversion.convert(parser.parse_data(zlib.decompress(raw[4:])))  # 4-byte length header
    return out
