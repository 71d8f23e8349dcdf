"""Headline quality of chosen representations on a real collection, without the full pipeline.

Runs the real ``cluster@<rep>`` stage for each representation given (a model key whose
``models/<key>/`` exists, or a baseline: raw, pca, spectral_features, lyrics, raw_lyrics) into
``--work/<tag>/clusters/<rep>`` and the real evaluation on them, and writes the headline numbers
(K-Means, k = the label's number of classes, song means, test songs, mean over seeds, percentile
bootstrap interval over test songs) plus the same clustering scored on all songs to
``--work/<tag>/quality.json`` and a Markdown table beside it. Not part of the pipeline; it is how
the numbers of docs/quality.md were measured, on a scratch clone whose params point at the collection
(``data.source: manifest``, ``cluster.algorithms: [kmeans]`` keeps it fast)::

    python benchmarks/quality.py --tag base --params params.yaml raw autoencoder vae conv_vae
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/quality.py` from the repository root
    sys.path.insert(0, str(REPO))

from stages import cluster as cluster_stage  # noqa: E402

from musiclust.log import setup_logging  # noqa: E402
from musiclust.params import load_params  # noqa: E402
from musiclust.ranking.pipeline import run_evaluate_step  # noqa: E402

log = logging.getLogger("benchmarks.quality")
FEATURE_BASELINES = ("raw", "pca", "spectral_features")


def cluster_args(rep: str, root: Path, out: Path, params: str) -> list[str]:
    """The cluster stage's command line for ``rep`` (as dvc.yaml builds it)."""
    args = ["--rep", rep, "--segments", str(root / "data/segments"), "--out", str(out), "--params", params]
    if rep in FEATURE_BASELINES:
        return [*args, "--features", str(root / "data/features")]
    if rep == "lyrics":
        return [*args, "--lyrics", str(root / "data/lyrics.parquet")]
    if rep == "raw_lyrics":
        return [
            *args,
            "--features",
            str(root / "data/features"),
            "--lyrics",
            str(root / "data/lyrics.parquet"),
        ]
    return [*args, "--model", str(root / "models" / rep)]


def measure(reps: list[str], tag: str, params_path: str, root: Path, work: Path) -> dict:
    """Cluster and evaluate ``reps``; returns ``{rep: {label: {...}}}`` (also written to disk)."""
    out = work / tag
    for rep in reps:
        cluster_stage.main(cluster_args(rep, root, out / "clusters" / rep, params_path))
    p = load_params(params_path)
    ev = run_evaluate_step(
        root / "data/segments",
        out / "clusters",
        reps,
        p.data.label_columns,
        p.evaluate,
        p.cluster.algorithms,
        p.segment.split,
    )
    m = ev.means
    allsongs = m[
        (m["algorithm"] == "kmeans") & (m["level"] == "song_mean") & (m["k_mode"] == "per_label")
        & (m["scope"] == "all")
    ]  # fmt: skip
    result: dict = {}
    for rep, labels in ev.headline.items():
        for label in p.data.label_columns:
            if label not in labels:
                continue
            row = allsongs[(allsongs["representation"] == rep) & (allsongs["label"] == label)]
            result.setdefault(rep, {})[label] = {
                **{k: labels[label][k] for k in ("nmi", "nmi_low", "nmi_high")},
                "nmi_all_songs": float(row["nmi"].iloc[0]) if len(row) else None,
            }
    lines = [
        f"| {tag} | representation | label | test NMI [95% interval] | all-songs NMI |",
        "|---|---|---|---|---|",
    ]
    for rep, labels in result.items():
        for label, r in labels.items():
            lines.append(
                f"| {tag} | {rep} | {label} | {r['nmi']:.3f} [{r['nmi_low']:.3f}, {r['nmi_high']:.3f}] | "
                f"{r['nmi_all_songs']:.3f} |"
            )
    (out / "quality.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    (out / "quality.md").write_text("\n".join(lines) + "\n")
    log.info("%s\n%s", out / "quality.md", "\n".join(lines))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reps", nargs="+", help="model keys and/or baselines to measure")
    ap.add_argument("--tag", required=True, help="name of this measurement (a folder under --work)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", default=".", help="pipeline root holding data/ and models/")
    ap.add_argument("--work", default="runs", help="where cluster outputs and the tables go")
    args = ap.parse_args(argv)
    setup_logging()
    measure(args.reps, args.tag, args.params, Path(args.root), Path(args.work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
