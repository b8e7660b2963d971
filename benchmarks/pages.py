"""The pages under docs/results: each is written by its benchmark script (from the script's
description of the method and the stored results), never edited by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

DOCS = Path(__file__).resolve().parent.parent / "docs" / "results"


def write_page(name: str, title: str, script: str, about: str, body: str) -> Path:
    """Write docs/results/NAME.md: the title, what the benchmark does (``about``), the results."""
    path = DOCS / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# {title}\n\n"
        f"<!-- written by benchmarks/{script} (its --render redraws it from the stored results): "
        "edit the script, not this page -->\n\n"
        f"{about.strip()}\n\n{body.strip()}\n"
    )
    return path


def verdict(value: float, bound: float, lower_is_better: bool = True, unit: str = "") -> str:
    """'met' or 'missed by X' for ``value`` against ``bound``."""
    gap = value - bound if lower_is_better else bound - value
    return "met" if gap <= 0 else f"missed by {gap:.2f}{unit}"


def result_file(stem: Path | str, ext: str) -> Path:
    """STEM's file with extension ``ext`` (".json", ".md", ".png"). The stem keeps its dots
    (``--out runs/conf0.5`` is not ``runs/conf0``, which another run may also write); a result
    extension already on it is dropped first."""
    stem = Path(stem)
    name = stem.name
    for known in (".json", ".md", ".png"):
        if name.endswith(known):
            name = name[: -len(known)]
            break
    return stem.with_name(name + ext)


def result_args(parser, out: Path) -> None:
    """The options every stored-result benchmark takes: where its results go, redraw, note."""
    parser.add_argument("--out", default=str(out), help="results stem (.json/.md)")
    parser.add_argument("--render", action="store_true", help="only redraw the table and the page from the JSON")
    parser.add_argument("--note", help="a finding about the run, stored with it and shown on the page")


def store_and_publish(
    stem: Path,
    result: dict | None,
    note: str | None,
    table: Callable[[dict], str],
    page: tuple[str, str, str, str] | None,
) -> None:
    """Keep ``result`` (None: the stored one, for ``--render``) with ``note`` appended in
    STEM.json, write its ``table`` to STEM.md and to the page (name, title, script, about;
    None: the caller writes the page)."""
    if result is None:
        result = json.loads(result_file(stem, ".json").read_text())
    if note:
        result["note"] = f"{result.get('note') or ''} {note}".strip()
    result_file(stem, ".json").write_text(json.dumps(result, indent=1))
    text = table(result)
    result_file(stem, ".md").write_text(text)
    if page is not None:
        write_page(*page, text)
    print(text)


def publish_runs(results: Path, prefix: str, page: tuple[str, str, str, str], table: Callable[[dict], str]) -> Path:
    """Write the page (name, title, script, about) with one section per stored run
    ``results/PREFIX*.json``, each drawn by ``table``."""
    sections = [
        f"## {path.stem}\n\n`benchmarks/results/{path.name}`\n\n" + table(json.loads(path.read_text()))
        for path in sorted(results.glob(f"{prefix}*.json"))
    ]
    return write_page(*page, "\n".join(sections))
