"""Stage ``segment``: cut every song into clips with a song-level train/val/test split.

python stages/segment.py --raw data/raw --out data/segments [--params params.yaml]
"""

from __future__ import annotations

import argparse

from musiclust.audio.segment import segment_corpus
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params


def main(argv: list[str] | None = None) -> int:
    """Run the stage; returns 0 (the report in ``<out>/report.json`` lists skipped songs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="download output folder (songs.parquet + audio/)")
    parser.add_argument(
        "--out", required=True, help="output folder (segments.parquet, audio-*.npy, report.json)"
    )
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params(args.params)
    segment_corpus(args.raw, args.out, p.audio, p.segment, p.data.label_columns, p.seed, p.compute)
    return 0


if __name__ == "__main__":
    run_main(main)
