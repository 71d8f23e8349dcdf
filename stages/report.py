"""Stage ``report``: the self-contained HTML report and its PNG figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from musiclust.log import setup_logging
from musiclust.params import load_params
from musiclust.reporting.build import ReportConfig, write_report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", type=Path, default=Path("data/raw"))
    ap.add_argument("--segments", type=Path, default=Path("data/segments"))
    ap.add_argument("--lyrics", type=Path, default=Path("data/lyrics.parquet"))
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--clusters", type=Path, default=Path("data/clusters"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics"))
    ap.add_argument("--train-plots", type=Path, default=Path("plots/train"))
    ap.add_argument("--out", type=Path, default=Path("plots/report/index.html"))
    ap.add_argument("--figures", type=Path, default=Path("plots/figures"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    setup_logging()
    p = load_params(args.params)
    cfg = ReportConfig(label_columns=tuple(p.data.label_columns), n_central_songs=p.report.n_central_songs,
                       excerpt_s=p.report.excerpt_s, projections=tuple(p.report.projections))
    write_report(args.raw, args.segments, args.lyrics, args.models, args.clusters, args.metrics,
                 args.train_plots, args.out, args.figures, cfg, args.params, Path.cwd())


if __name__ == "__main__":
    main()
