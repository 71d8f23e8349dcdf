"""Stage ``cluster@<rep>``: cluster, map and score one representation (a model's latents or a baseline)."""

from __future__ import annotations

import argparse
import logging

from musiclust.clustering.pipeline import cluster_representation
from musiclust.contracts import clusters as contract
from musiclust.contracts.segments import read_segments
from musiclust.evaluation.scores import score_output
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params

log = logging.getLogger("musiclust.stages.cluster")


def main(argv: list[str] | None = None) -> contract.ClusterOutput:
    """Parse paths, load params, cluster ``--rep`` into ``--out`` (data/clusters/<rep>)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rep", required=True, help="representation: a model key or a baseline name")
    ap.add_argument("--segments", required=True, help="data/segments (or its segments.parquet)")
    ap.add_argument("--model", default=None, help="models/<key> (model representations)")
    ap.add_argument("--features", default=None, help="data/features (raw, pca, spectral_features)")
    ap.add_argument("--lyrics", default=None, help="data/lyrics.parquet (lyrics baseline)")
    ap.add_argument("--out", required=True, help="output folder data/clusters/<rep> (rewritten whole)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    segments = read_segments(args.segments)
    output = cluster_representation(
        args.rep,
        segments,
        params.cluster,
        params.seeds,
        params.data.label_columns,
        model_dir=args.model,
        features_dir=args.features,
        lyrics_path=args.lyrics,
        raw_sets=params.train.features,
    )
    output = score_output(output, segments, params.data.label_columns, params.evaluate)
    contract.write(args.out, output)
    log.info(
        "cluster@%s: %s -> %s",
        args.rep,
        f"{len(output.runs)} runs" if output.applicable else f"not applicable ({output.info['reason']})",
        args.out,
    )
    return output


if __name__ == "__main__":
    run_main(main)
