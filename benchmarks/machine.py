"""What every benchmark result records: command, commit, machine, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone


def machine_info() -> dict:
    import torch
    import transformers

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "adaptwin",
                "benchmarks/*.py",
                "pyproject.toml",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        commit += " + uncommitted changes" if changed else ""
    except OSError:
        commit = None
    return {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def machine_line(info: dict) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads); torch {info['torch']}, "
        f"transformers {info['transformers']}; commit {info['commit']}; {info['date']}"
    )
