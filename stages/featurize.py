"""Stage ``featurize``: audio features for every clip (vector tables, tensor shards, train-only scalers).

python stages/featurize.py --segments data/segments --out data/features [--params params.yaml]
"""

from __future__ import annotations

import argparse

from musiclust.features.pipeline import featurize_segments
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params


def main(argv: list[str] | None = None) -> int:
    """Run the stage; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--segments", required=True, help="segment output folder (segments.parquet + audio-*.npy)"
    )
    parser.add_argument("--out", required=True, help="output folder for the feature sets")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params(args.params)
    featurize_segments(args.segments, args.out, p.audio.sample_rate, p.features, p.compute)
    return 0


if __name__ == "__main__":
    run_main(main)
