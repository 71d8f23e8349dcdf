"""Stage `evaluate`: leakage audit, scores, seeds and significance of every clustering run."""

from __future__ import annotations

import argparse

from musiclust.evaluation.pipeline import run_evaluate_step
from musiclust.evaluation.tables import write_results_markdown
from musiclust.log import setup_logging
from musiclust.params import load_params


def main(argv: list[str] | None = None) -> None:
    """Parse paths, load params, run the evaluate step."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", required=True, help="data/segments (or its segments.parquet), for the labels")
    ap.add_argument("--clusters", required=True, help="output folder of the cluster stage")
    ap.add_argument("--metrics", required=True, help="headline metrics JSON (git-tracked)")
    ap.add_argument("--table", required=True, help="per-seed scores CSV")
    ap.add_argument("--means", required=True, help="scores aggregated over seeds CSV")
    ap.add_argument("--summary", required=True, help="protocol, significance, leakage JSON")
    ap.add_argument("--plots", required=True, help="folder for bar-chart CSVs")
    ap.add_argument("--results", required=True, help="Markdown results table (copied into README)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    summary = run_evaluate_step(
        args.segments,
        args.clusters,
        args.metrics,
        args.table,
        args.plots,
        args.summary,
        args.means,
        label_columns=params.data.label_columns,
        params=params.evaluate,
    )
    write_results_markdown(args.means, summary, args.results, params.data.label_columns)
    best = ", ".join(f"{lab}: {b['method']} NMI {b['nmi']}" for lab, b in summary["best_unsupervised_headline"].items())
    print(f"evaluate: best headline {best or 'none'}; {len(summary['leakage']['flagged'])} leakage flag(s) -> {args.metrics}")


if __name__ == "__main__":
    main()
