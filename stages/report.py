"""Stage ``report``: the self-contained HTML report, its PNG figures and (with Chromium) a PDF."""

from __future__ import annotations

import argparse
from pathlib import Path

from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.reporting.build import write_report
from musiclust.reporting.inputs import ReportPaths
from musiclust.workspace import shared_cache


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", type=Path, default=Path("data/raw"))
    ap.add_argument("--segments", type=Path, default=Path("data/segments"))
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--clusters", type=Path, default=Path("data/clusters"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics"))
    ap.add_argument(
        "--vega", type=Path, default=Path(".dvc/plots/offline.html"), help="vega libraries for the explorer"
    )
    ap.add_argument("--out", type=Path, default=Path("plots/report/index.html"))
    ap.add_argument("--figures", type=Path, default=Path("plots/figures"))
    ap.add_argument("--pdf", type=Path, default=None, help="also print the page to this PDF (needs Chromium)")
    ap.add_argument("--history", type=Path, default=None, help="every model's training history in one CSV")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder of figures and excerpts drawn by earlier reports (redraws only what changed; same output)",
    )
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    setup_logging()
    p = load_params(args.params)
    paths = ReportPaths(
        raw=args.raw,
        segments=args.segments,
        models=args.models,
        clusters=args.clusters,
        metrics=args.metrics,
        vega=args.vega,
    )
    write_report(
        paths,
        p.representations,
        p.report,
        p.data.label_columns,
        args.out,
        args.figures,
        pdf=args.pdf,
        history_csv=args.history,
        cache_dir=shared_cache(args.cache),
    )


if __name__ == "__main__":
    run_main(main)
