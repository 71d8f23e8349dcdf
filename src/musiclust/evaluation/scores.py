"""Score every clustering run of one representation: per seed, per scope, per label.

Point estimates (every external and internal score) for the ``test`` and ``all`` scopes, and,
for the test scope, the bootstrap distribution of NMI (and of AMI on song-level runs at the
label's k) over the shared resamples of test songs (:mod:`musiclust.evaluation.stats`), kept per
run so that ``evaluate`` can draw seeds with the songs and pair representations. For models, the
Mutual Information Gap of the latents against each label (:mod:`musiclust.evaluation.disentanglement`).
Runs inside the ``cluster`` stage, which computes only a representation that changed (the others
come from its store, :mod:`musiclust.clustering.store`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from musiclust.contracts.clusters import (
    BOOT_COLUMNS,
    DISENTANGLEMENT_COLUMNS,
    LEAKAGE_COLUMNS,
    SCORE_COLUMNS,
    SEED_INDEPENDENT,
    VECTOR_META,
    ClusterOutput,
)
from musiclust.evaluation.disentanglement import disentanglement_rows
from musiclust.evaluation.leakage import single_column_scores
from musiclust.evaluation.metrics import (
    EXTERNAL,
    ami_from_contingency,
    euclidean_distance_matrix,
    external_scores,
    internal_scores,
)
from musiclust.evaluation.stats import ResamplePlan, batch_nmi, resample_plan
from musiclust.params import EvaluateParams

log = logging.getLogger(__name__)

SCOPES = ("test", "all")
#: a group of runs that differ only by seed: one row of means.csv per group and scope
GROUP = ["representation", "algorithm", "level", "k_mode", "k", "label"]


@dataclass
class Labels:
    """Integer class codes (-1 = unknown) of every clip and every song, per label column."""

    clip: dict[str, pd.Series]  # label -> codes indexed by segment_id
    song: dict[str, pd.Series]  # label -> codes indexed by song_id
    classes: dict[str, list[str]]
    test_songs: pd.Index  # sorted song ids of the test split: the units the bootstrap resamples

    def level(self, level: str) -> dict[str, pd.Series]:
        return self.clip if level == "clip" else self.song


def _codes(values: pd.Series, classes: list[str]) -> np.ndarray:
    pos = {c: i for i, c in enumerate(classes)}
    return np.array([pos.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64)


def make_labels(segments: pd.DataFrame, label_columns: Sequence[str]) -> Labels:
    """Labels of clips and songs from ``segments.parquet`` (a song's first non-null value stands for it)."""
    seg = segments.copy()
    seg["segment_id"], seg["song_id"] = seg["segment_id"].astype(str), seg["song_id"].astype(str)
    clip, song, classes = {}, {}, {}
    for col in label_columns:
        if col not in seg.columns:
            continue
        vals = seg[col].astype(object).where(seg[col].notna(), None)
        vals = vals.map(lambda v: None if v is None or str(v) == "" else str(v))
        classes[col] = sorted(v for v in vals.dropna().unique())
        clip[col] = pd.Series(_codes(vals, classes[col]), index=pd.Index(seg["segment_id"]))
        first = vals.groupby(seg["song_id"]).first()
        song[col] = pd.Series(_codes(first, classes[col]), index=first.index)
    test = pd.Index(sorted(seg.loc[seg["split"].astype(str) == "test", "song_id"].unique()))
    return Labels(clip, song, classes, test)


@dataclass
class RepScores:
    """Per-seed score rows of one representation and the bootstrap NMI of each test-scope row."""

    rows: list[dict] = field(default_factory=list)
    boot: dict[tuple, np.ndarray] = field(default_factory=dict)  # (*GROUP values, seed) -> (B,) NMI
    boot_ami: dict[tuple, np.ndarray] = field(
        default_factory=dict
    )  # the same for AMI, song_mean per_label runs


def _vector_blocks(vectors: pd.DataFrame) -> dict[tuple[int, str], tuple[np.ndarray, pd.Index]]:
    cols = [c for c in vectors.columns if c not in VECTOR_META]
    out = {}
    for (seed, level), g in vectors.groupby(["seed", "level"], sort=True):
        out[(int(seed), str(level))] = (g[cols].to_numpy(np.float64), pd.Index(g["unit_id"].astype(str)))
    return out


def _boot_tables(
    y: np.ndarray, c: np.ndarray, song_pos: np.ndarray, weights: np.ndarray, n_test: int
) -> np.ndarray:
    """(B, classes, clusters) contingency tables of the test units under each resample of test songs
    (a song's units go in or out together, as many times as the song is drawn)."""
    _, cc = np.unique(c, return_inverse=True)
    per_song = np.zeros((n_test, int(y.max()) + 1, int(cc.max()) + 1))
    np.add.at(per_song, (song_pos, y, cc), 1.0)
    return np.tensordot(weights, per_song, axes=(1, 0))


def _boot_nmi(tables: np.ndarray) -> np.ndarray:
    """(B,) NMI of each resampled table (NaN where a resample holds a single class: as for the point
    estimate, a clustering is not scored against one class, which would read as 0 or 1 by convention)."""
    nmi = batch_nmi(tables)
    return np.where((tables.sum(axis=2) > 0).sum(axis=1) > 1, nmi, np.nan)


def _boot_ami(tables: np.ndarray) -> np.ndarray:
    """(B,) AMI of each resampled table (NaN where a resample holds a single class)."""
    return np.array([ami_from_contingency(t) if (t.sum(axis=1) > 0).sum() > 1 else np.nan for t in tables])


@dataclass(frozen=True)
class _Run:
    """One clustering run's units, as arrays."""

    meta: Any  # the runs.parquet row
    unit_ids: np.ndarray
    song_ids: np.ndarray
    split: np.ndarray
    clusters: np.ndarray


class _Scorer:
    """Scores the runs of one representation; shares vector blocks and silhouette samples between them."""

    def __init__(
        self, out: ClusterOutput, labels: Labels, plan: ResamplePlan, silhouette_sample: int
    ) -> None:
        self.out, self.labels, self.plan, self.sample = out, labels, plan, silhouette_sample
        self.blocks = _vector_blocks(out.vectors)
        self.seed_independent = out.info.get("seeds") == "all"
        self.weights = plan.weights
        self.test_pos = pd.Series(np.arange(len(labels.test_songs)), index=labels.test_songs)
        self.conditioned = set(out.info.get("conditioned_on") or [])
        self.dist_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.res = RepScores()

    def run(self, r: _Run) -> None:
        """Every scope and label of one run."""
        meta = r.meta
        vec_level = "clip" if meta.level == "clip" else "song_mean"
        vec_seed = SEED_INDEPENDENT if self.seed_independent else int(meta.seed)
        x, index = self.blocks[(vec_seed, vec_level)]
        pos = index.get_indexer(r.unit_ids)
        for scope in SCOPES:
            in_scope = (r.split == "test") if scope == "test" else np.ones(len(r.split), bool)
            if not in_scope.any():
                continue
            inner = _internal(
                x,
                pos,
                r.clusters,
                in_scope & (pos >= 0),
                self.sample,
                self.dist_cache,
                (vec_seed, vec_level, scope),
            )
            c_scope = r.clusters[in_scope]
            base = {
                "representation": self.out.name,
                "kind": self.out.info["kind"],
                "modality": self.out.info["modality"],
                "algorithm": meta.algorithm,
                "level": meta.level,
                "scope": scope,
                "k_mode": meta.k_mode,
                "k": int(meta.k),
                "seed": int(meta.seed),
                "n_clusters": int(len(np.unique(c_scope[c_scope >= 0]))),
                "noise_fraction": float(np.mean(c_scope < 0)),
                **inner,
                "run_id": meta.run_id,
            }
            for label, codes in self.labels.level(meta.level).items():
                if meta.for_labels == "*" or label in str(meta.for_labels).split(","):
                    self.label(r, scope, in_scope, label, codes, base)

    def label(
        self, r: _Run, scope: str, in_scope: np.ndarray, label: str, codes: pd.Series, base: dict
    ) -> None:
        """The scores of one run against one label in one scope (and its bootstrap on test songs)."""
        y = codes.reindex(r.unit_ids).fillna(-1).to_numpy(np.int64)
        ok = in_scope & (y >= 0)
        row = dict(
            base,
            label=label,
            conditioned=label in self.conditioned,
            n_units=int(ok.sum()),
            n_songs=int(len(np.unique(r.song_ids[ok]))),
        )
        if ok.sum() == 0 or len(np.unique(y[ok])) < 2:
            row.update({m: float("nan") for m in EXTERNAL}, note="fewer than two classes in scope")
        else:
            row.update(external_scores(y[ok], r.clusters[ok]), note="")
            if scope == "test":
                self.bootstrap(r, label, y[ok], r.clusters[ok], r.song_ids[ok])
        self.res.rows.append(row)

    def bootstrap(self, r: _Run, label: str, y: np.ndarray, c: np.ndarray, song_ids: np.ndarray) -> None:
        meta = r.meta
        key = (self.out.name, meta.algorithm, meta.level, meta.k_mode, int(meta.k), label, int(meta.seed))
        song_pos = self.test_pos.reindex(song_ids).to_numpy().astype(np.int64)
        tables = _boot_tables(y, c, song_pos, self.weights, len(self.labels.test_songs))
        self.res.boot[key] = _boot_nmi(tables)
        if meta.level == "song_mean" and meta.k_mode == "per_label":  # the headline kind of run
            self.res.boot_ami[key] = _boot_ami(tables)


def score_representation(
    out: ClusterOutput, labels: Labels, plan: ResamplePlan, silhouette_sample: int
) -> RepScores:
    """Every run of ``out`` scored against every label it serves, in both scopes."""
    if not out.applicable or out.runs.empty:
        return RepScores()
    scorer = _Scorer(out, labels, plan, silhouette_sample)
    groups = {rid: g for rid, g in out.assignments.groupby("run_id", observed=True, sort=False)}
    for meta in out.runs.sort_values("run_id").itertuples(index=False):
        g = groups.get(meta.run_id)
        if g is None or g.empty:
            log.warning("run %s has no assignments; not scored", meta.run_id)
            continue
        scorer.run(
            _Run(
                meta,
                g["unit_id"].astype(str).to_numpy(),
                g["song_id"].astype(str).to_numpy(),
                g["split"].astype(str).to_numpy(),
                g["cluster"].to_numpy(np.int64),
            )
        )
    return scorer.res


def _internal(
    x: np.ndarray,
    pos: np.ndarray,
    clusters: np.ndarray,
    mask: np.ndarray,
    sample: int,
    cache: dict,
    key: tuple,
) -> dict[str, float]:
    """Internal scores restricted to ``mask``; the silhouette sample and its distances are shared by
    every run of the same seed, level and scope (runs arrive sorted, so the cache stays small)."""
    idx = np.flatnonzero(mask)
    if len(idx) < 3:
        nan = float("nan")
        return {"silhouette": nan, "silhouette_n": 0, "calinski_harabasz": nan, "davies_bouldin": nan}
    rows = pos[idx]
    ckey = key + (len(idx), int(rows.sum()))
    if ckey not in cache:
        rng = np.random.default_rng(0)
        local = (
            np.sort(rng.choice(len(idx), size=sample, replace=False))
            if len(idx) > sample
            else np.arange(len(idx))
        )
        if len(cache) >= 6:
            cache.pop(next(iter(cache)))
        cache[ckey] = (local, euclidean_distance_matrix(x[rows[local]]))
    local, dist = cache[ckey]
    return internal_scores(x[rows], clusters[idx], dist=dist, sample_idx=local)


def leakage_rows(out: ClusterOutput, segments: pd.DataFrame, labels: Labels) -> pd.DataFrame:
    """Single-column audit of the representation's clustered columns (clip level, every seed)."""
    clip_labels = segments.set_index(segments["segment_id"].astype(str))
    v = out.vectors[out.vectors["level"] == "clip"]
    cols = [c for c in v.columns if c not in VECTOR_META]
    rows = []
    for seed, block in v.groupby("seed", sort=True):
        y_all = clip_labels.reindex(block["unit_id"].astype(str))
        train = (block["split"] == "train").to_numpy()
        x = block[cols].to_numpy(np.float64)
        for label in labels.clip:
            for s in single_column_scores(x, cols, y_all[label].to_numpy(), train, label):
                rows.append(
                    {
                        "representation": out.name,
                        "seed": int(seed),
                        "label": label,
                        "column": s.column,
                        "balanced_accuracy": s.balanced_accuracy,
                    }
                )
    return pd.DataFrame(rows, columns=LEAKAGE_COLUMNS)


def score_output(
    out: ClusterOutput, segments: pd.DataFrame, label_columns: Sequence[str], params: EvaluateParams
) -> ClusterOutput:
    """``out`` with its ``scores``, ``boot``, ``leakage`` and (models) ``disentanglement`` tables filled in
    (see the contract)."""
    labels = make_labels(segments, label_columns)
    keep = [c for c, v in labels.classes.items() if len(v) >= 2]
    labels.clip = {k: labels.clip[k] for k in keep}
    labels.song = {k: labels.song[k] for k in keep}
    labels.classes = {k: labels.classes[k] for k in keep}
    plan = resample_plan(len(labels.test_songs), params.bootstrap, seed=0)
    with threadpool_limits(limits=1):
        res = score_representation(out, labels, plan, params.silhouette_sample)
        leak = (
            leakage_rows(out, segments, labels) if out.applicable else pd.DataFrame(columns=LEAKAGE_COLUMNS)
        )
    boot = [
        (*key, metric, vals.astype(np.float32).tolist())
        for metric, src in (("nmi", res.boot), ("ami", res.boot_ami))
        for key, vals in sorted(src.items())
    ]
    out.scores = pd.DataFrame(res.rows).reindex(columns=SCORE_COLUMNS)
    out.boot = pd.DataFrame(boot, columns=BOOT_COLUMNS)
    out.leakage = leak
    out.disentanglement = (
        disentanglement_rows(out.name, out.latents, labels.clip)
        if out.applicable and out.latents is not None
        else pd.DataFrame(columns=DISENTANGLEMENT_COLUMNS)
    )
    return out
