"""``musiclust compare`` and ``musiclust plots-template``: argument parsing and the file handling.

musiclust compare                         the baseline and its experiments (dvc exp show)
musiclust compare main exp-a exp-b        exactly these revisions or experiment names
musiclust compare --out compare.html --reps beta_vae vae
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from musiclust.fileio import UserInputError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``musiclust compare``."""
    p.add_argument(
        "revs",
        nargs="*",
        help="revisions or experiment names (default: the baseline and "
        "its experiments, as `dvc exp show` lists them)",
    )
    p.add_argument("--repo", default=".", help="the DVC repository (default: .)")
    p.add_argument(
        "--out",
        default="compare.html",
        help="the HTML page to write (default: compare.html); a folder gets index.html inside it",
    )
    p.add_argument(
        "--reps",
        nargs="+",
        default=[],
        metavar="REP",
        help="representations to show in the table, curves and maps (default: those whose "
        "NMI differs between experiments)",
    )
    p.add_argument(
        "--map-method",
        default="tsne",
        choices=["tsne", "umap", "pca"],
        help="which 2-D map to show side by side (falls back to one that exists)",
    )
    p.add_argument("--no-maps", action="store_true", help="do not read maps.parquet (faster)")
    p.add_argument("--workspace", action="store_true", help="include the uncommitted workspace")


def run(args: argparse.Namespace) -> int:
    """List and load the experiments, print the table, write the page."""
    from musiclust.compare import frames, page, source

    revisions, notes = source.list_revisions(args.repo, args.revs, args.workspace)
    experiments, left_out = source.load_experiments(revisions, args.repo)
    notes += left_out
    if not experiments:
        raise SystemExit(f"no experiment to compare in {args.repo}: " + ("; ".join(notes) or "none listed"))
    if not args.revs:
        experiments = frames.order_by_params(experiments)
    headline = frames.headline_frame(experiments)
    reps = page.curve_representations(headline, args.reps)[:3]
    table = frames.summary_table(frames.params_frame(experiments), headline, reps)
    sys.stdout.write(frames.format_table(table).to_string(index=False) + "\n")

    maps = None
    if not args.no_maps:
        if not reps:
            maps = page.Maps(
                notes=[
                    "No representation's headline numbers differ between the experiments; no maps to compare."
                ]
            )
        else:
            maps = _load_maps(experiments, reps, headline, args)
    html = page.render_page(experiments, maps=maps, representations=args.reps, table_reps=reps, notes=notes)
    out = Path(args.out)
    if out.is_dir():  # a folder: the page goes inside it, as a web server would look for it
        out = out / "index.html"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"--out {args.out}: cannot write the page ({exc.strerror or exc})") from None
    log.info("wrote %s (%d experiments)", out, len(experiments))
    return 0


def _load_maps(experiments, reps, headline, args):
    from musiclust.compare import frames, page, source

    per_rep, notes = {}, []
    for rep in reps:
        per_rep[rep] = {}
        for e in experiments:
            frame, why = source.load_maps(e, rep, args.repo)
            per_rep[rep][e.name] = frame
            if why:
                notes.append(why)
    labels = frames.labels_of(headline)
    colour = source.load_song_labels(experiments[0], labels[0], args.repo) if labels else None
    return page.Maps(
        frames=per_rep,
        method=args.map_method,
        notes=notes,
        colour=colour,
        colour_name=labels[0] if colour else "",
    )


def add_template_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``musiclust plots-template``."""
    p.add_argument(
        "tarballs",
        nargs=3,
        metavar="TGZ",
        help="npm tarballs of vega@5, vega-lite@5 and vega-embed@6 (`npm pack ...`)",
    )
    p.add_argument(
        "--out",
        default=".dvc/plots/offline.html",
        help="template to write (default: .dvc/plots/offline.html, set in .dvc/config)",
    )


def run_template(args: argparse.Namespace) -> int:
    """Write the offline ``dvc plots`` template."""
    from musiclust.compare.plots_template import write_template

    out = write_template(args.tarballs, args.out)
    log.info("wrote %s (%.0f kB)", out, out.stat().st_size / 1000)
    return 0
