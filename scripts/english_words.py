"""Write ``adaptwin/assets/english_words.tsv``: the most frequent English words and their
frequencies (per word of running text), from the ``wordfreq`` package's English list
(data CC BY-SA 4.0, https://github.com/rspeer/wordfreq). Compression ranks a vocabulary's
tokens by these frequencies (``adaptwin.compress.vocab.token_prior``) to choose which rows
of the vocabulary head stay dense.

    pip install wordfreq && python scripts/english_words.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "adaptwin" / "assets" / "english_words.tsv"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--words", type=int, default=30000, help="how many of the most frequent words")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    from wordfreq import top_n_list, word_frequency

    lines = [f"{w}\t{word_frequency(w, 'en'):.4g}" for w in top_n_list("en", args.words) if "\t" not in w]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} words to {args.out}")


if __name__ == "__main__":
    main()
