"""Cluster every representation with every algorithm under one protocol.

Protocol (written into each ``info.json`` so the numbers carry it):
- levels: ``clip`` (cluster clip vectors), ``song_mean`` (cluster each song's
  mean clip vector) and ``song_vote`` (each song takes the majority cluster of
  its clips in a ``clip`` clustering; ties go to the smallest cluster id). A
  representation of song vectors (``vector_level`` song: the lyrics and metadata
  baselines, song-level models) is clustered at ``song_mean`` only: each clip carries
  its song's vector, so a clip clustering would cluster each song as many times as it
  has clips and its vote would repeat the song clustering; those levels are recorded
  as skipped (algorithm ``all``, one entry per level and seed) with :data:`SONG_VECTORS_REASON`;
- K-Means and GMM are fit on training units and predict all units; Ward,
  HDBSCAN and spectral clustering are fit on all units (``fit_on`` says which);
- ``k``: ``per_label`` runs one clustering per distinct class count of the label
  columns (``for_labels`` names the labels it serves), ``auto`` picks k in
  ``k_range`` by silhouette on the fit units (BIC for GMM), an integer fixes it;
  HDBSCAN and VaDE's own assignments (method ``own``) choose their own k;
- seeds: a model's latents of seed s are clustered with random_state s;
  baselines get every seed in ``seeds`` as random_state;
- spectral clustering is skipped on levels with more than
  Ward, HDBSCAN and spectral clustering are fit on a seeded sample of ``cluster.fit_sample`` units
  when a level has more, the rest joining the nearest centroid (see ``algorithms``).
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from musiclust.clustering.algorithms import Clustering, WardTree, fit_sample_index, run_algorithm
from musiclust.clustering.representations import Representation, Units, song_means
from musiclust.contracts.clusters import SEED_INDEPENDENT
from musiclust.params import ClusterParams
from musiclust.projection import degenerate_reason

log = logging.getLogger(__name__)

AUTO_SILHOUETTE_SAMPLE = 1000  # units used to score each candidate k in `auto` mode
#: why a representation of song vectors has no clip or song_vote runs (its skipped entries say so)
SONG_VECTORS_REASON = (
    "song vectors: every clip carries its song's vector, so the song_mean clustering is the only one"
)


@dataclass
class ClusterResult:
    """Every clustering run, every unit's assignment, and what was skipped."""

    runs: pd.DataFrame
    assignments: pd.DataFrame
    skipped: list[dict[str, Any]] = field(default_factory=list)
    k_plan: list[dict[str, Any]] = field(default_factory=list)


def label_classes(segments: pd.DataFrame, label_columns: Sequence[str]) -> dict[str, list[str]]:
    """Sorted distinct non-null values of each label column present in ``segments``."""
    out = {}
    for col in label_columns:
        if col not in segments.columns:
            log.warning("label column %r is not in segments.parquet; it cannot set k or be scored", col)
            continue
        vals = segments[col].dropna().astype(str)
        out[col] = sorted(vals[vals != ""].unique().tolist())
    return out


def k_plan(k: Any, classes: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Which k values to run, and for which labels each is meant.

    ``per_label`` shares one clustering between labels with the same number of
    classes; labels with fewer than two classes cannot set k and are skipped.
    """
    if k == "auto":
        return [{"k": None, "k_mode": "auto", "for_labels": "*"}]
    if isinstance(k, int):
        return [{"k": int(k), "k_mode": "fixed", "for_labels": "*"}]
    by_k: dict[int, list[str]] = defaultdict(list)
    for label, vals in classes.items():
        if len(vals) < 2:
            log.warning("label %r has %d class(es); no per-label k for it", label, len(vals))
            continue
        by_k[len(vals)].append(label)
    return [
        {"k": kk, "k_mode": "per_label", "for_labels": ",".join(labels)}
        for kk, labels in sorted(by_k.items())
    ]


def majority_vote(song_of_unit: np.ndarray, clusters: np.ndarray, songs: np.ndarray) -> np.ndarray:
    """Most frequent cluster of each song's clips (ties: smallest cluster id), in order of ``songs``.

    Noise (``-1``) votes like any cluster, so a song of mostly-noise clips is noise.
    """
    song_index = pd.Index(songs)
    song_code = song_index.get_indexer(song_of_unit)
    if (song_code < 0).any():
        raise ValueError("majority_vote: a unit belongs to a song that is not in `songs`")
    values, c_code = np.unique(np.asarray(clusters), return_inverse=True)
    votes = np.zeros((len(song_index), len(values)), dtype=np.int64)
    np.add.at(votes, (song_code, c_code), 1)
    # argmax returns the first maximum, i.e. the smallest cluster id among tied ones (values are sorted)
    return values[votes.argmax(axis=1)].astype(np.int64)


def _choose_k(
    algorithm: str, x: np.ndarray, train: np.ndarray, k_range: tuple[int, int], seed: int, **kw: Any
) -> Clustering:
    """Run ``algorithm`` for every k in ``k_range`` and keep the best (silhouette; BIC for GMM)."""
    lo, hi = int(k_range[0]), int(k_range[-1])
    fit = train if algorithm in ("kmeans", "gmm") else np.ones(len(x), bool)
    best, best_score, scores = None, -np.inf, {}
    for k in range(max(2, lo), hi + 1):
        if fit.sum() <= k:
            break
        c = run_algorithm(algorithm, x, train, k, seed, **kw)
        if algorithm == "gmm":
            score = -c.info["bic"]
        else:
            labs = c.labels[fit]
            if len(np.unique(labs)) < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = float(
                    silhouette_score(
                        x[fit],
                        labs,
                        sample_size=min(int(fit.sum()), AUTO_SILHOUETTE_SAMPLE),
                        random_state=seed,
                    )
                )
        scores[k] = round(float(score), 6)
        if score > best_score:
            best, best_score = c, score
    if best is None:
        raise ValueError(f"{algorithm}: no k in {k_range} could be scored on {int(fit.sum())} units")
    best.info = {
        **best.info,
        "k_selection": "bic" if algorithm == "gmm" else "silhouette",
        "k_scores": scores,
    }
    return best


def _level_units(rep: Representation, seed: int) -> dict[str, Units]:
    clips = rep.units(seed)
    return {"clip": clips, "song_mean": song_means(clips)}


def _skip(
    skipped: list[dict[str, Any]], rep: Representation, algorithm: str, level: str, seed: int, reason: str
) -> None:
    skipped.append(
        {
            "representation": rep.name,
            "algorithm": algorithm,
            "level": level,
            "seed": int(seed),
            "reason": reason,
        }
    )


def _fit(
    algorithm: str,
    units: Units,
    entry: dict[str, Any],
    seed: int,
    cfg: ClusterParams,
    ward: WardTree | None,
    sample: np.ndarray | None,
) -> Clustering:
    """One clustering of ``units``: at the entry's k, or the best k of ``cluster.k_range`` (auto)."""
    train = units.split == "train"
    kw = {"min_samples": cfg.hdbscan_min_samples, "ward": ward, "sample": sample}
    if entry["k_mode"] == "auto":
        k_range = (int(cfg.k_range[0]), int(cfg.k_range[-1]))
        return _choose_k(algorithm, units.x, train, k_range, seed, **kw)
    return run_algorithm(algorithm, units.x, train, entry["k"], seed, **kw)


def _cluster_level(
    rep: Representation,
    seed: int,
    level: str,
    units: Units,
    songs: Units,
    plan: list[dict[str, Any]],
    cfg: ClusterParams,
    record: Callable[..., str],
    skipped: list[dict[str, Any]],
) -> None:
    """Every algorithm and k of ``plan`` on one level; a clip-level run also gives a song vote."""
    degenerate = degenerate_reason(units.x, min_points=3)
    if degenerate:
        # identical rows or too few points: no algorithm can say anything (and some crash on it)
        for algorithm in cfg.algorithms:
            _skip(skipped, rep, algorithm, level, seed, f"not clustered: {degenerate}")
        return
    ward: WardTree | None = None
    # Ward, HDBSCAN and spectral cost O(n^2): above cluster.fit_sample units they fit a seeded sample
    sample = fit_sample_index(len(units), cfg.fit_sample, seed)
    for algorithm in cfg.algorithms:
        entries = [{"k": None, "k_mode": "algorithm", "for_labels": "*"}] if algorithm == "hdbscan" else plan
        for entry in entries:
            try:
                if algorithm == "agglomerative" and ward is None:
                    ward = WardTree(
                        units.x if sample is None else units.x[sample]
                    )  # one linkage, cut at every k
                c = _fit(algorithm, units, entry, seed, cfg, ward, sample)
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
                # one failed fit (too few units, a singular covariance) must not end the whole stage
                log.warning(
                    "%s/%s/%s seed %s k=%s skipped: %s", rep.name, algorithm, level, seed, entry["k"], exc
                )
                _skip(skipped, rep, algorithm, level, seed, str(exc))
                continue
            record(rep, seed, level, algorithm, units, c, entry)
            if level == "clip":
                vote = majority_vote(units.song_id, c.labels, songs.unit_id)
                record(
                    rep,
                    seed,
                    "song_vote",
                    algorithm,
                    songs,
                    Clustering(vote, c.fit_on, c.k, {"from": "majority vote of clip clusters"}),
                    entry,
                )


def _own_clusters(rep: Representation, seed: int, clips: Units, record: Callable[..., str]) -> None:
    """A model's own mixture assignments (VaDE) recorded as algorithm ``own``, at clip level and by song vote."""
    own = np.asarray(rep.own_clusters[seed])
    ok = ~pd.isna(own)
    if (~ok).any():
        log.warning(
            "%s seed %s: %d clip(s) without an own cluster label (left out of `own`)",
            rep.name,
            seed,
            int((~ok).sum()),
        )
    units = clips.subset(ok)
    labels = own[ok].astype(np.int64)
    # the model was trained on training songs only, so its assignment of test clips is a prediction
    entry = {"k": None, "k_mode": "model", "for_labels": "*"}
    record(
        rep,
        seed,
        "clip",
        "own",
        units,
        Clustering(labels, "train", None, {"from": f"{rep.name}'s own mixture assignments"}),
        entry,
    )
    songs = pd.unique(units.song_id)
    vote = Clustering(
        majority_vote(units.song_id, labels, songs),
        "train",
        None,
        {"from": "majority vote of own clip clusters", "k_found_clips": int(len(np.unique(labels)))},
    )
    split = pd.Series(units.split, index=units.song_id).groupby(level=0).first().reindex(songs).to_numpy()
    song_units = Units(songs, songs.copy(), split, np.zeros((len(songs), 0), np.float32))
    record(rep, seed, "song_vote", "own", song_units, vote, entry)


def _cluster_one(
    rep: Representation,
    seed: int,
    plan: list[dict[str, Any]],
    cfg: ClusterParams,
    record: Callable[..., str],
    skipped: list[dict[str, Any]],
) -> None:
    """Every algorithm and k of ``plan`` on one representation and seed, at clip and song_mean level
    (song_mean only for song vectors, the clip and song_vote levels recorded as skipped)."""
    levels = _level_units(rep, seed)
    run_levels: tuple[str, ...] = ("clip", "song_mean")
    if rep.vector_level == "song":
        run_levels = ("song_mean",)
        for level in ("clip", "song_vote"):  # every algorithm alike: one entry (and one note) per level
            _skip(skipped, rep, "all", level, seed, SONG_VECTORS_REASON)
    for level in run_levels:
        _cluster_level(rep, seed, level, levels[level], levels["song_mean"], plan, cfg, record, skipped)
    if seed in rep.own_clusters:
        _own_clusters(rep, seed, levels["clip"], record)


class _Recorder:
    """Collects runs and assignments as plain arrays; one frame at the end (a frame per run costs more
    than the clustering)."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.assign: list[tuple] = []

    def __call__(
        self,
        rep: Representation,
        seed: int,
        level: str,
        algorithm: str,
        units: Units,
        c: Clustering,
        entry: dict[str, Any],
    ) -> str:
        k_mode = entry["k_mode"]
        k_tag = entry["k"] if k_mode in ("per_label", "fixed") else k_mode
        run_id = f"{rep.name}|{algorithm}|{level}|k={k_tag}|seed={seed}"
        self.runs.append(
            {
                "run_id": run_id,
                "representation": rep.name,
                "kind": rep.kind,
                "algorithm": algorithm,
                "seed": int(seed),
                "level": level,
                "fit_on": c.fit_on,
                "k_mode": k_mode,
                "k": -1 if c.k is None else int(c.k),
                "for_labels": entry["for_labels"],
                "n_units": len(units),
                "n_fit": int((units.split == "train").sum()) if c.fit_on == "train" else len(units),
                "n_clusters": c.n_clusters,
                "noise_fraction": c.noise_fraction,
                "info": _info_str(c.info),
            }
        )
        self.assign.append((run_id, units.unit_id, units.song_id, units.split, c.labels.astype(np.int64)))
        return run_id

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        runs = pd.DataFrame(self.runs)
        if not runs.empty and runs["run_id"].duplicated().any():
            raise RuntimeError(
                "duplicate run ids: " + ", ".join(runs.loc[runs["run_id"].duplicated(), "run_id"][:5])
            )
        a = self.assign
        assignments = pd.DataFrame(
            {
                "run_id": np.repeat([x[0] for x in a], [len(x[4]) for x in a]),
                "unit_id": np.concatenate([x[1] for x in a]) if a else np.array([], object),
                "song_id": np.concatenate([x[2] for x in a]) if a else np.array([], object),
                "split": np.concatenate([x[3] for x in a]) if a else np.array([], object),
                "cluster": np.concatenate([x[4] for x in a]) if a else np.array([], np.int64),
            }
        )
        return runs, assignments


def cluster_representations(
    reps: Sequence[Representation], classes: dict[str, list[str]], cfg: ClusterParams, seeds: Sequence[int]
) -> ClusterResult:
    """Run every algorithm on every representation, seed and level (see module doc)."""
    plan = k_plan(cfg.k, classes)
    if not plan:
        raise ValueError(
            "no k to cluster with: cluster.k is per_label but no label column has two or more classes; "
            "set cluster.k to auto or an integer"
        )
    record, skipped = _Recorder(), []
    jobs = [(rep, s) for rep in reps for s in (seeds if rep.seed_independent else sorted(rep.clips))]
    # hundreds of small problems: BLAS/OpenMP threads only contend (4x slower measured on 2 busy cores)
    with threadpool_limits(limits=1):
        for rep, seed in tqdm(
            jobs, desc=f"cluster {reps[0].name if reps else ''}", unit="seed", disable=None
        ):
            _cluster_one(rep, seed, plan, cfg, record, skipped)
    runs, assignments = record.frames()
    return ClusterResult(runs, assignments, skipped, plan)


def _info_str(info: dict[str, Any]) -> str:
    import json

    return json.dumps(info, sort_keys=True, default=str)


def representation_table(rep: Representation) -> pd.DataFrame:
    """Vectors of ``rep`` at clip and song_mean level as one frame (``seed`` = -1 if seed-independent)."""
    frames = []
    for s in [SEED_INDEPENDENT] if rep.seed_independent else sorted(rep.clips):
        for level, u in _level_units(rep, s).items():
            df = pd.DataFrame(u.x, columns=rep.columns)
            df.insert(0, "split", u.split)
            df.insert(0, "song_id", u.song_id)
            df.insert(0, "unit_id", u.unit_id)
            df.insert(0, "level", level)
            df.insert(0, "seed", int(s))
            frames.append(df)
    return pd.concat(frames, ignore_index=True)
