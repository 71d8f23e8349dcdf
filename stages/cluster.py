"""Stage `cluster`: cluster every model's latents and the baselines (see docs/pipeline.md)."""

from __future__ import annotations

import argparse

from musiclust.clustering.pipeline import run_cluster_step
from musiclust.log import setup_logging
from musiclust.params import load_params


def main(argv: list[str] | None = None) -> None:
    """Parse paths, load params, run the cluster step."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", required=True, help="data/segments (or its segments.parquet)")
    ap.add_argument("--features", required=True, help="data/features")
    ap.add_argument("--lyrics", default=None, help="data/lyrics.parquet")
    ap.add_argument("--models", required=True, help="folder of models/<key>/ with latents.parquet")
    ap.add_argument("--out", required=True, help="output folder (rewritten whole)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    manifest = run_cluster_step(
        args.segments,
        args.features,
        args.lyrics,
        args.models,
        args.out,
        params.cluster,
        seeds=params.seeds,
        label_columns=params.data.label_columns,
        raw_sets=params.train.features,
    )
    print(f"cluster: {manifest['n_runs']} runs of {len(manifest['representations'])} representations -> {args.out}")


if __name__ == "__main__":
    main()
