"""Stage ``evaluate``: score every representation's clusterings, rank them once, write the metrics."""

from __future__ import annotations

import argparse
import logging

from musiclust.contracts import metrics as contract
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.ranking.pipeline import run_evaluate_step

log = logging.getLogger("musiclust.stages.evaluate")


def main(argv: list[str] | None = None) -> contract.Evaluation:
    """Parse paths, load params, evaluate, write (see musiclust.contracts.metrics)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--segments", required=True, help="data/segments (or its segments.parquet), for the labels"
    )
    ap.add_argument("--clusters", required=True, help="data/clusters (one folder per representation)")
    ap.add_argument("--headline", required=True, help="headline metrics JSON (the DVC metrics file)")
    ap.add_argument("--means", required=True, help="scores aggregated over seeds CSV")
    ap.add_argument("--table", required=True, help="per-seed scores CSV")
    ap.add_argument("--summary", required=True, help="ranking, intervals, leakage JSON")
    ap.add_argument("--results", required=True, help="Markdown results table (copied into README)")
    ap.add_argument("--plots", required=True, help="folder for bar-chart CSVs")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    ev = run_evaluate_step(
        args.segments,
        args.clusters,
        params.representations,
        params.data.label_columns,
        params.evaluate,
        params.cluster.algorithms,
        params.segment.split,
    )
    contract.write(
        ev,
        headline=args.headline,
        means=args.means,
        table=args.table,
        summary=args.summary,
        results=args.results,
        plots=args.plots,
    )
    for label, w in ev.summary["winner"].items():
        if w is None:
            log.warning("no winner for %s: %s", label, ev.summary["not_ranked"][label]["reason"])
            continue
        log.info(
            "winner for %s: %s, NMI %.3f [%.3f, %.3f] on %d test songs (cannot be separated from: %s)",
            label,
            w["representation"],
            w["nmi"],
            w["nmi_low"],
            w["nmi_high"],
            w["n_songs"],
            ", ".join(w["not_separable_from"]) or "none",
        )
    return ev


if __name__ == "__main__":
    run_main(main)
