"""Stage ``cluster``: cluster, map and score every representation (each model's latents, each baseline).

One process for all of them: ``data/clusters/<rep>/`` for every model of ``train.models`` and
every baseline of ``cluster.baselines`` (``--out`` rewritten whole). A representation whose inputs,
params and code are those of an earlier run is copied from the store (``--cache``,
:mod:`musiclust.clustering.store`) rather than computed again, so an experiment that re-trains one
model re-clusters that model only. ``--rep NAME --out data/clusters/NAME`` clusters one
representation alone (tests, benchmarks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musiclust.clustering.stage import ClusterSettings, cluster_all, cluster_one
from musiclust.clustering.store import ClusterStore
from musiclust.contracts import clusters as contract
from musiclust.contracts.segments import read_segments
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.workspace import shared_cache


def main(argv: list[str] | None = None) -> contract.ClusterOutput | dict[str, str]:
    """Parse paths, load params, cluster every representation (or ``--rep`` alone) into ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rep", default=None, help="one representation (a model key or a baseline name) alone")
    ap.add_argument("--segments", required=True, help="data/segments (or its segments.parquet)")
    ap.add_argument("--models", default=None, help="models/ (every model of train.models)")
    ap.add_argument("--model", default=None, help="models/<key> (with --rep of a model)")
    ap.add_argument(
        "--features", default=None, help="data/features (raw, pca, spectral_features, raw_lyrics)"
    )
    ap.add_argument("--lyrics", default=None, help="data/lyrics.parquet (lyrics, raw_lyrics)")
    ap.add_argument(
        "--out", required=True, help="data/clusters (data/clusters/<rep> with --rep); rewritten whole"
    )
    ap.add_argument("--cache", default=None, help="store of earlier representations' outputs, reused")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    if args.rep is None and args.models is None:
        ap.error("give --models (every representation of params.yaml) or --rep (one alone)")
    setup_logging()
    params = load_params(args.params)
    if args.rep is not None:
        segments = read_segments(args.segments)
        settings = ClusterSettings.of(params)
        return cluster_one(
            args.rep, segments, settings, Path(args.out), args.model, args.features, args.lyrics
        )
    # an experiment's temporary copy (dvc exp run --queue) shares the store of its repository
    store = ClusterStore(shared_cache(args.cache), stage_file=Path(__file__))
    return cluster_all(params, args.segments, args.models, args.features, args.lyrics, args.out, store)


if __name__ == "__main__":
    run_main(main)
