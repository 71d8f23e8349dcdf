"""Stage `download`: acquire the song collection named by params `data` into --out.

Writes `<out>/songs.parquet`, `<out>/audio/<song_id>.<ext>` and `<out>/report.json`
(see docs/pipeline.md). Exits non-zero, naming the report, when fewer than
`download.min_success_fraction` of the input rows made it, leaving the previous
collection in place. Bad params or input end with one `error: ...` line (exit 2).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from musiclust.data.acquire import acquire
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params

log = logging.getLogger("stages.download")


def main(argv: list[str] | None = None) -> None:
    """Run the download stage."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (persists between runs)")
    ap.add_argument("--manifest", default=None, help="manifest CSV (default: data.manifest in params)")
    ap.add_argument("--folder", default=None, help="music folder (default: data.folder in params)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    p = load_params(args.params)
    # a relative cache folder is relative to params.yaml's folder (the repository root under DVC)
    cache = Path(args.params).parent / Path(p.download.cache_dir).expanduser()
    res = acquire(
        p.data,
        p.download,
        p.audio,
        p.seed,
        args.out,
        manifest=args.manifest,
        folder=args.folder,
        cache_dir=cache,
    )
    print(f"download: {res.report['ok']}/{res.report['rows_in']} songs ok -> {res.songs_path}")


if __name__ == "__main__":
    run_main(main)
