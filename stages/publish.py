"""Stage ``publish``: copy what ``evaluate`` wrote into the git-tracked metrics files.

``evaluate`` writes its tables into ``data/evaluation/`` (cached by DVC, so its run-cache restores a
configuration evaluated before, e.g. a beta swept back); this stage copies them, byte for byte, to
``metrics/`` (the DVC metrics file and the tables that git tracks, so `dvc metrics diff` works on any
clone) and the bar-chart data in ``plots/``. Outputs that git tracks (``cache: false``) switch the
run-cache off for the stage that writes them: keeping them in a stage of their own, that costs a copy.
The standard library only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv: list[str] | None = None) -> list[Path]:
    """Copy ``--evaluation``'s files to ``--metrics`` and its ``plots/`` folder to ``--plots``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--evaluation", type=Path, required=True, help="data/evaluation (the evaluate stage)")
    ap.add_argument("--metrics", type=Path, required=True, help="folder of the git-tracked metrics files")
    ap.add_argument("--plots", type=Path, required=True, help="folder of the git-tracked bar-chart data")
    args = ap.parse_args(argv)
    if not args.evaluation.is_dir():
        print(f"error: {args.evaluation}: no such folder; run the evaluate stage first", file=sys.stderr)
        raise SystemExit(2)
    written = []
    for src in sorted(p for p in args.evaluation.iterdir() if p.is_file()):
        _copy(src, args.metrics / src.name)
        written.append(args.metrics / src.name)
    if args.plots.exists():
        shutil.rmtree(args.plots)  # outputs are rewritten whole
    for src in sorted((args.evaluation / "plots").glob("*")):
        _copy(src, args.plots / src.name)
        written.append(args.plots / src.name)
    print(f"publish: {len(written)} files from {args.evaluation}", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
