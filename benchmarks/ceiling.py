"""How much of a label the song vectors carry at all: supervised ceiling and chance level.

The headline (K-Means, k = the label's number of classes, song means) asks whether a label is the
*dominant* structure of a representation. When every representation scores low, this script asks
the two questions that tell a weak representation from a weak label:

- **supervised ceiling**: classifiers that *see* the label (logistic regression, an RBF SVM, a
  random forest), trained on song vectors with stratified k-fold cross-validation so every song
  is predicted once by a model that never saw it; the NMI/AMI of those predictions against the
  label bounds what any label-free clustering of the same vectors can reach (a clustering that
  beat it would have found the label better than a model trained on it);
- **chance level**: NMI of uniformly random assignments to k clusters, on as many songs as the
  headline's test set and on all songs: NMI is not chance-corrected and is biased upward on few
  songs (AMI is).

It reads the song-mean vectors a ``cluster@<rep>`` stage wrote (``data/clusters/<rep>/vectors.parquet``,
or the folders ``benchmarks/quality.py`` writes), so it measures exactly what the headline
clusters; models are measured per training seed and averaged. Not part of the pipeline: it is how
the ceiling numbers of ``docs/quality.md`` were measured::

    python benchmarks/ceiling.py --clusters runs/base/clusters --segments data/segments raw autoencoder
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/ceiling.py` from the repository root
    sys.path.insert(0, str(REPO))

from musiclust.contracts import segments as segments_contract  # noqa: E402
from musiclust.contracts.clusters import VECTOR_META  # noqa: E402
from musiclust.evaluation.metrics import external_scores  # noqa: E402
from musiclust.log import setup_logging  # noqa: E402

log = logging.getLogger("benchmarks.ceiling")


def classifiers(seed: int) -> dict[str, object]:
    """The supervised probes, each standardizing inside the fold (no test song shapes the scaler)."""
    return {
        "logistic": make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000)
        ),
        "svm_rbf": make_pipeline(StandardScaler(), SVC(C=1.0, class_weight="balanced")),
        "forest": RandomForestClassifier(n_estimators=300, class_weight="balanced", random_state=seed),
    }


def song_vectors(rep_dir: Path) -> dict[int, pd.DataFrame]:
    """Seed -> song-mean vectors (index song_id) of one clustered representation."""
    vec = pd.read_parquet(rep_dir / "vectors.parquet")
    vec = vec[vec["level"] == "song_mean"]
    cols = [c for c in vec.columns if c not in VECTOR_META]
    return {int(s): b.set_index("song_id")[cols] for s, b in vec.groupby("seed", sort=True)}


def bootstrap(y: np.ndarray, p: np.ndarray, n: int, seed: int) -> tuple[float, float]:
    """95 % percentile interval of NMI over songs resampled with replacement."""
    rng = np.random.default_rng(seed)
    vals = [external_scores(y[i], p[i])["nmi"] for i in (rng.integers(0, len(y), len(y)) for _ in range(n))]
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def measure_rep(
    x: pd.DataFrame, y: pd.Series, folds: int, seed: int
) -> dict[str, tuple[float, float, np.ndarray]]:
    """Probe name -> (NMI, AMI, predictions) over all songs of one seed's vectors."""
    out = {}
    k = y.nunique()
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # classes with fewer songs than folds: sklearn warns, still stratifies
        warnings.simplefilter("ignore", UserWarning)
        for name, clf in classifiers(seed).items():
            p = cross_val_predict(clf, x.to_numpy(), y.to_numpy(), cv=cv)
            s = external_scores(y.to_numpy(), p)
            out[name] = (s["nmi"], s["ami"], p)
    # the headline's clustering of the same vectors, fit on all songs (no split: the probes above see all)
    p = KMeans(k, n_init=10, random_state=seed).fit_predict(x.to_numpy())
    s = external_scores(y.to_numpy(), p)
    out["kmeans, k = classes"] = (s["nmi"], s["ami"], p)
    return out


def given_bound(x: pd.DataFrame, meta: pd.DataFrame, label: str, given: str, seed: int) -> dict[str, float]:
    """K-Means with k = ``label``'s classes versus the partition a representation that *also*
    separates ``given`` is driven to: ``given``'s classes times K-Means with k // (its classes) on
    the vectors. Both fit on the train songs, scored on test and all songs.

    Under K-Means at the label's k, a vector in which the ``given`` split is strong enough to win
    at ``given``'s k spends a split on it at ``label``'s k too (when the vectors' k-cluster
    between-variance grows slowly in k, as on diffuse audio features); this partition is what
    such a fusion is driven towards, an estimate (not a proof) of what it can deliver for ``label``.
    """
    m = meta.loc[x.index]
    y, g = m[label].astype(str).to_numpy(), m[given].astype(str).to_numpy()
    train, test = (m["split"] == "train").to_numpy(), (m["split"] == "test").to_numpy()
    k, groups = len(set(y)), sorted(set(g))
    xs = x.to_numpy()
    plain = KMeans(k, n_init=10, random_state=seed).fit(xs[train]).predict(xs)
    inner = KMeans(max(k // len(groups), 1), n_init=10, random_state=seed).fit(xs[train]).predict(xs)
    split = np.array([groups.index(v) for v in g]) * (inner.max() + 1) + inner
    out = {}
    for name, p in (("kmeans", plain), ("given", split)):
        out[f"{name}_test"] = external_scores(y[test], p[test])["nmi"] if test.any() else float("nan")
        out[f"{name}_all"] = external_scores(y, p)["nmi"]
    return out


def chance(y: np.ndarray, k: int, n_songs: int, draws: int, seed: int) -> float:
    """Mean NMI of uniformly random assignments of ``n_songs`` songs (drawn from ``y``) to ``k`` clusters."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(draws):
        idx = rng.choice(len(y), size=n_songs, replace=False)
        vals.append(external_scores(y[idx], rng.integers(0, k, n_songs))["nmi"])
    return float(np.mean(vals))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reps", nargs="+", help="representations under --clusters")
    ap.add_argument("--clusters", required=True, help="folder of cluster@<rep> outputs")
    ap.add_argument("--segments", required=True, help="data/segments (labels and splits)")
    ap.add_argument("--label", default="genre")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--boot", type=int, default=300, help="bootstrap resamples for the intervals")
    ap.add_argument(
        "--given",
        default=None,
        help="a second label (e.g. language): also give the bound on --label for a representation "
        "that separates this one as well",
    )
    ap.add_argument("--out", default=None, help="write the Markdown table here too")
    args = ap.parse_args(argv)
    setup_logging()
    seg = segments_contract.read_segments(args.segments)
    songs = seg.drop_duplicates("song_id").set_index("song_id")
    labels = songs[args.label].dropna().astype(str)
    n_test = int((songs.loc[labels.index, "split"] == "test").sum())
    k = labels.nunique()
    rows = [
        f"{args.label}: {len(labels)} songs with a label, {k} classes, {n_test} of them test songs; "
        f"{args.folds}-fold stratified cross-validation over all songs; NMI and AMI are means over "
        "training seeds, the interval a 95% bootstrap over songs of the first seed's predictions",
        "",
        "| representation | probe | sees the label | NMI [95%] | AMI |",
        "|---|---|---|---|---|",
    ]
    vectors = {rep: song_vectors(Path(args.clusters) / rep) for rep in args.reps}
    for rep, per_seed in vectors.items():
        results: dict[str, list] = {}
        for seed, x in per_seed.items():
            x = x.loc[x.index.intersection(labels.index)]
            y = labels.loc[x.index]
            for name, r in measure_rep(x, y, args.folds, max(seed, 0)).items():
                results.setdefault(name, []).append((*r, y.to_numpy()))
        for name, rs in results.items():
            nmi, ami = float(np.mean([r[0] for r in rs])), float(np.mean([r[1] for r in rs]))
            lo, hi = bootstrap(rs[0][3], rs[0][2], args.boot, 0)
            sees = "no" if name.startswith("kmeans") else "yes"
            rows.append(f"| {rep} | {name} | {sees} | {nmi:.3f} [{lo:.3f}, {hi:.3f}] | {ami:.3f} |")
        log.info("%s done (%d seed(s))", rep, len(per_seed))
    if args.given:
        meta = songs.loc[labels.index].dropna(subset=[args.given])
        rows += [
            "",
            f"{args.label} NMI (test / all songs, fit on train songs, mean over seeds): K-Means with k = {k}, "
            f"and {args.given} x K-Means with k // (its classes), the partition a representation that also "
            f"separates {args.given} is driven to",
            "",
            f"| representation | K-Means k = {k} | {args.given} x K-Means |",
            "|---|---|---|",
        ]
        for rep, per_seed in vectors.items():
            r = [given_bound(x.loc[x.index.intersection(meta.index)], meta, args.label, args.given, max(s, 0))
                 for s, x in per_seed.items()]  # fmt: skip
            m = {key: float(np.mean([v[key] for v in r])) for key in r[0]}
            rows.append(
                f"| {rep} | {m['kmeans_test']:.3f} / {m['kmeans_all']:.3f} | {m['given_test']:.3f} / {m['given_all']:.3f} |"
            )
    y = labels.to_numpy()
    rows += [
        "",
        f"Chance (uniformly random assignment to k = {k} clusters, mean of 500 draws): NMI "
        f"{chance(y, k, n_test, 500, 0):.3f} on {n_test} songs (the headline's test set), "
        f"{chance(y, k, len(y), 500, 1):.3f} on all {len(y)} songs; AMI is 0 by construction.",
    ]
    text = "\n".join(rows) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    log.info("\n%s", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
