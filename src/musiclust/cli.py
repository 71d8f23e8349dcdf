"""The ``musiclust`` command: utilities beside the DVC pipeline.

musiclust bench featurize [--clips N]   speed of the featurizer against plain librosa
musiclust bench pipeline [--songs N] [--manifest CSV | --folder DIR]
                                        per-stage time, realtime factor and memory of
                                        download, segment, featurize, embed_lyrics
musiclust assign FILE...                place new songs among the learned clusters
  [--explore OUT.html]                  ... and draw them on the report's interactive map
musiclust compare [REV...]              table and HTML page comparing DVC experiments
musiclust plots-template TGZ TGZ TGZ    offline HTML template for `dvc plots show/diff`
"""

from __future__ import annotations

import argparse
import sys

from musiclust.fileio import UserInputError
from musiclust.log import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="musiclust", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="what", required=True)
    bf = bench_sub.add_parser("featurize", help="featurizer speed vs a plain librosa loop")
    # light imports: no heavy deps at module level
    from musiclust.bench import featurize as _bench
    from musiclust.bench import pipeline as _bench_pipeline

    _bench.add_arguments(bf)
    bp = bench_sub.add_parser("pipeline", help="per-stage speed and memory of the per-song stages on N songs")
    _bench_pipeline.add_arguments(bp)

    asg = sub.add_parser("assign", help="place audio files among a trained model's clusters")
    from musiclust import assign as _assign

    _assign.add_arguments(asg)

    cmp = sub.add_parser("compare", help="compare DVC experiments: table and a self-contained HTML page")
    from musiclust.compare import command as _compare

    _compare.add_arguments(cmp)
    tpl = sub.add_parser("plots-template", help="build the offline HTML template for `dvc plots show/diff`")
    _compare.add_template_arguments(tpl)

    args = parser.parse_args(argv)
    setup_logging()
    try:
        return _dispatch(parser, args)
    except UserInputError as exc:  # bad input the user can fix: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from musiclust import assign as _assign
    from musiclust.bench import featurize as _bench
    from musiclust.bench import pipeline as _bench_pipeline
    from musiclust.compare import command as _compare

    if args.command == "bench":
        return int((_bench if args.what == "featurize" else _bench_pipeline).run(args) or 0)
    if args.command == "assign":
        return int(_assign.run(args) or 0)
    if args.command == "compare":
        return int(_compare.run(args) or 0)
    if args.command == "plots-template":
        return int(_compare.run_template(args) or 0)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
