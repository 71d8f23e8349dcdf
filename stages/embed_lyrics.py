"""Stage ``embed_lyrics``: one lyrics embedding per song -> ``data/lyrics.parquet``.

Songs without lyrics are masked (``has_lyrics`` false, zero vector), never dropped;
``tfidf-char`` is fit on the training split read from the segments table.
"""

from __future__ import annotations

import argparse

from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.text.embed import run
from musiclust.text.models import ModelUnavailableError


def main(argv: list[str] | None = None) -> None:
    """Parse paths, load params, embed the lyrics."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="download output folder (holds songs.parquet)")
    ap.add_argument("--segments", required=True, help="segment output folder (holds segments.parquet)")
    ap.add_argument("--out", required=True, help="output table, e.g. data/lyrics.parquet")
    ap.add_argument(
        "--features", default=None, help="featurize output folder (only for lyrics.describe_audio)"
    )
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    try:
        summary = run(args.raw, args.segments, args.out, params.lyrics, features_dir=args.features)
    except ModelUnavailableError as exc:  # a configuration problem: the message says what to do
        raise SystemExit(f"embed_lyrics: {exc}") from None
    print(
        f"embed_lyrics: {summary.n_with_lyrics}/{summary.n_songs} songs with lyrics, "
        f"encoder {summary.encoder}, dim {summary.dim} -> {args.out}"
    )


if __name__ == "__main__":
    run_main(main)
