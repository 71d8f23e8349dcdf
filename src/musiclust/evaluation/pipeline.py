"""The evaluate step: leakage audit, scores of every clustering run, seeds, significance.

Reads the cluster step's output (``assignments.parquet``, ``runs.parquet``,
``vectors/``, ``fed/``, ``manifest.json``) and the labels from
``segments.parquet``; writes

- ``metrics/evaluate.json`` (small, git-tracked): headline protocol only, nested so
  that DVC shows flat keys ``<representation>.<algorithm>.<label>.nmi``: clip
  level, scored on test songs, mean over seeds; plus ``nmi_ci95`` (half-width of
  the t interval), ``ari``, ``accuracy``, ``nmi_all`` (clip level, all songs),
  ``song_nmi`` (song_mean level, test songs), and ``<rep>.<algo>.silhouette``;
- ``metrics/all.csv``: one row per representation x algorithm x label x level x
  scope x seed with every metric as a column;
- ``metrics/means.csv``: the same aggregated over seeds: mean, ``_low``/``_high``
  (t interval) and ``_ci`` (half-width) of each metric, per method x label x level x scope;
- ``metrics/summary.json``: protocol, per-metric means with intervals, paired tests
  of each model against the best baseline, the leakage audit, and notes;
- ``plots/metrics/<label>_nmi.csv``: headline bar data (one row per method).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from musiclust.evaluation.leakage import single_column_scores
from musiclust.evaluation.metrics import (
    EXTERNAL,
    contingency,
    euclidean_distance_matrix,
    internal_scores,
    scores_from_contingency,
)
from musiclust.evaluation.stats import paired_t_test, t_quantile
from musiclust.fileio import read_json, write_json
from musiclust.params import EvaluateParams

log = logging.getLogger(__name__)

SCOPES = ("test", "all")
META = ("seed", "level", "unit_id", "song_id", "split")
HEADLINE = {"level": "clip", "scope": "test"}
SUMMARY_METRICS = ("nmi", "ari", "v_measure", "homogeneity", "completeness", "purity", "accuracy",
                   "silhouette", "calinski_harabasz", "davies_bouldin", "noise_fraction")


def unit_labels(segments: pd.DataFrame, label_columns: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Label tables indexed by clip (``segment_id``) and by song (``song_id``)."""
    cols = [c for c in label_columns if c in segments.columns]
    clip = segments.set_index(segments["segment_id"].astype(str))[cols]
    # labels are song metadata; the first non-null value of each song stands for the song
    song = segments.groupby(segments["song_id"].astype(str))[cols].first()
    clip = clip.astype(object).where(clip.notna(), None)
    song = song.astype(object).where(song.notna(), None)
    return {"clip": clip, "song": song}


def _codes(values: pd.Series) -> np.ndarray:
    """Integer class codes with -1 for unknown (null or empty) labels."""
    v = values.astype(object)
    known = v.notna() & (v.astype(str) != "")
    codes = np.full(len(v), -1, dtype=np.int64)
    if known.any():
        codes[known.to_numpy()] = pd.factorize(v[known].astype(str), sort=True)[0]
    return codes


def _n_classes(values: pd.Series) -> int:
    """Number of distinct known (non-null, non-empty) labels."""
    codes = _codes(values)
    return int(len(np.unique(codes[codes >= 0])))


class VectorStore:
    """Vectors of each representation, seed and level, with a unit-id lookup (loaded lazily)."""

    def __init__(self, clusters_dir: Path, manifest: dict[str, Any], fed: bool) -> None:
        self.dir = clusters_dir
        self.manifest = manifest
        self.fed = fed
        self._tables: dict[str, pd.DataFrame] = {}
        self._blocks: dict[tuple, tuple[np.ndarray, pd.Index, np.ndarray]] = {}

    def table(self, rep: str) -> pd.DataFrame:
        if rep not in self._tables:
            info = self.manifest["representations"][rep]
            rel = info.get("fed_file") if self.fed and info.get("fed_file") else info["file"]
            self._tables[rep] = pd.read_parquet(self.dir / rel)
        return self._tables[rep]

    def block(self, rep: str, seed: int, level: str) -> tuple[np.ndarray, pd.Index, np.ndarray]:
        """``(x (n, d), unit index, split)`` for one representation, seed and level."""
        vec_level = "clip" if level == "clip" else "song_mean"
        key = (rep, seed, vec_level)
        if key not in self._blocks:
            t = self.table(rep)
            sub = t[t["seed"] == seed]
            sub = sub[sub["level"] == vec_level]
            cols = [c for c in sub.columns if c not in META]
            self._blocks[key] = (
                sub[cols].to_numpy(np.float64), pd.Index(sub["unit_id"].astype(str)), sub["split"].astype(str).to_numpy())
        return self._blocks[key]

    def columns(self, rep: str) -> list[str]:
        return [c for c in self.table(rep).columns if c not in META]


def leakage_audit(store: VectorStore, labels: dict[str, pd.DataFrame], label_columns: Sequence[str],
                  threshold: float) -> pd.DataFrame:
    """Single-column audit of every representation's input columns (clip level, every seed)."""
    rows = []
    reps = list(store.manifest["representations"])
    for rep in tqdm(reps, desc="leakage audit", unit="rep", disable=None):
        t = store.table(rep)
        clip = t[t["level"] == "clip"]
        cols = store.columns(rep)
        for seed, block in clip.groupby("seed", sort=True):
            y_all = labels["clip"].reindex(block["unit_id"].astype(str))
            train = (block["split"] == "train").to_numpy()
            x = block[cols].to_numpy(np.float64)
            for label in label_columns:
                if label not in y_all.columns:
                    continue
                for s in single_column_scores(x, cols, y_all[label].to_numpy(), train, label):
                    rows.append({"representation": rep, "seed": int(seed), "label": label, "column": s.column,
                                 "balanced_accuracy": s.balanced_accuracy, "n_eval": s.n_eval,
                                 "evaluated_on": s.evaluated_on})
    df = pd.DataFrame(rows, columns=["representation", "seed", "label", "column", "balanced_accuracy", "n_eval",
                                     "evaluated_on"])
    df["flagged"] = df["balanced_accuracy"] >= threshold
    for (rep, label), g in df[df["flagged"]].groupby(["representation", "label"]):
        top = g.sort_values("balanced_accuracy", ascending=False).drop_duplicates("column").head(5)
        log.warning(
            "LEAKAGE AUDIT: %s: %d column(s) alone predict %r with balanced accuracy >= %.2f (top: %s). "
            "Its %s scores may reflect leakage or a trivially readable label, not discovered structure.",
            rep, g["column"].nunique(), label, threshold,
            ", ".join(f"{r.column}={r.balanced_accuracy:.3f}" for r in top.itertuples()), label)
    return df


def score_runs(
    runs: pd.DataFrame,
    assignments: pd.DataFrame,
    store: VectorStore,
    labels: dict[str, pd.DataFrame],
    label_columns: Sequence[str],
    silhouette_sample: int,
) -> pd.DataFrame:
    """One row per run x label x scope with every external and internal score."""
    groups = {rid: g for rid, g in assignments.groupby("run_id", observed=True, sort=False)}
    dist_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    codes = {lvl: {c: _codes(t[c]) for c in t.columns} for lvl, t in labels.items()}
    seed_independent = {r for r, v in store.manifest["representations"].items() if v.get("seeds") == "all"}
    rows = []
    for run in tqdm(list(runs.itertuples(index=False)), desc="score", unit="run", disable=None):
        g = groups.get(run.run_id)
        if g is None or g.empty:
            log.warning("run %s has no assignments; not scored", run.run_id)
            continue
        unit_ids = g["unit_id"].astype(str).to_numpy()
        clusters = g["cluster"].to_numpy(np.int64)
        split = g["split"].astype(str).to_numpy()
        lab_level = "clip" if run.level == "clip" else "song"
        lab_pos = labels[lab_level].index.get_indexer(unit_ids)
        vec_seed = -1 if run.representation in seed_independent else int(run.seed)
        x, index, _ = store.block(run.representation, vec_seed, run.level)
        pos = index.get_indexer(unit_ids)
        has_vec = pos >= 0
        for scope in SCOPES:
            in_scope = (split == "test") if scope == "test" else np.ones(len(split), bool)
            base = {
                "representation": run.representation, "kind": run.kind, "algorithm": run.algorithm,
                "level": run.level, "scope": scope, "fit_on": run.fit_on, "seed": int(run.seed),
                "k_mode": run.k_mode, "k": int(run.k), "run_id": run.run_id,
            }
            n_scope = int(in_scope.sum())
            if n_scope == 0:
                continue
            inner = _internal(x, pos, clusters, in_scope & has_vec, silhouette_sample, dist_cache,
                              (run.representation, vec_seed, "clip" if run.level == "clip" else "song", scope))
            c_scope = clusters[in_scope]
            base.update({
                "n_clusters": int(len(np.unique(c_scope[c_scope >= 0]))),
                "noise_fraction": float(np.mean(c_scope < 0)),
                **inner,
            })
            for label in label_columns:
                if label not in codes[lab_level]:
                    continue
                if run.for_labels != "*" and label not in str(run.for_labels).split(","):
                    continue
                y = np.where(lab_pos >= 0, codes[lab_level][label][lab_pos], -1)
                ok = in_scope & (y >= 0)
                row = dict(base, label=label, n_units=int(ok.sum()), n_unlabelled=int((in_scope & (y < 0)).sum()))
                if ok.sum() == 0 or len(np.unique(y[ok])) < 2:
                    row.update({m: float("nan") for m in EXTERNAL})
                    row["note"] = "fewer than two classes in scope"
                else:
                    row.update(scores_from_contingency(contingency(y[ok], clusters[ok])))
                    row["note"] = ""
                rows.append(row)
    return pd.DataFrame(rows)


def _internal(x: np.ndarray, pos: np.ndarray, clusters: np.ndarray, mask: np.ndarray, sample: int,
              cache: dict, key: tuple) -> dict[str, Any]:
    """Internal scores of the clustering restricted to ``mask``; the silhouette sample and its
    distance matrix are shared by every run of the same representation, seed, level and scope."""
    idx = np.flatnonzero(mask)
    if len(idx) < 3:
        return {"silhouette": float("nan"), "silhouette_n": 0, "calinski_harabasz": float("nan"),
                "davies_bouldin": float("nan")}
    rows = pos[idx]
    ckey = key + (len(idx), int(rows.sum()))
    if ckey not in cache:
        rng = np.random.default_rng(0)
        sample_local = np.sort(rng.choice(len(idx), size=sample, replace=False)) if len(idx) > sample else np.arange(len(idx))
        if len(cache) >= 6:  # bounded memory; runs arrive grouped by representation and seed
            cache.pop(next(iter(cache)))
        cache[ckey] = (sample_local, euclidean_distance_matrix(x[rows[sample_local]]))
    sample_local, dist = cache[ckey]
    return internal_scores(x[rows], clusters[idx], dist=dist, sample_idx=sample_local)


#: Ranges of the bounded scores, for clipping interval bounds.
METRIC_RANGE = {
    **{m: (0.0, 1.0) for m in ("nmi", "v_measure", "homogeneity", "completeness", "purity", "accuracy",
                               "noise_fraction")},
    "ari": (-1.0, 1.0), "silhouette": (-1.0, 1.0), "calinski_harabasz": (0.0, np.inf), "davies_bouldin": (0.0, np.inf),
}


def aggregate(scores: pd.DataFrame, ci: float) -> pd.DataFrame:
    """Mean over seeds with a Student-t interval, per method x label x level x scope and metric."""
    keys = ["representation", "kind", "algorithm", "label", "level", "scope"]
    grouped = scores.groupby(keys, sort=True)
    out = grouped.agg(
        n_seeds=("seed", "nunique"),
        seeds=("seed", lambda s: ",".join(str(v) for v in sorted(set(s)))),
        n_units=("n_units", "median"),
        k=("k", "first"),
    ).reset_index()
    out["n_units"] = out["n_units"].astype(int)
    for m in SUMMARY_METRICS:
        mean, sd, n = grouped[m].mean().to_numpy(), grouped[m].std(ddof=1).to_numpy(), grouped[m].count().to_numpy()
        tq = np.array([t_quantile(int(k), ci) for k in n])
        half = np.where(n >= 2, tq * sd / np.sqrt(np.maximum(n, 1)), np.nan)
        lo, hi = METRIC_RANGE.get(m, (-np.inf, np.inf))
        # a symmetric t interval can leave the metric's range (NMI 0.98 +/- 0.04 over 3 seeds);
        # the bounds are clipped to it, the half-width (_ci) is kept as computed
        out[m], out[f"{m}_ci"] = mean, half
        out[f"{m}_low"], out[f"{m}_high"] = np.clip(mean - half, lo, hi), np.clip(mean + half, lo, hi)
    return out


def compare_to_baselines(scores: pd.DataFrame, agg: pd.DataFrame, metric: str, alpha: float) -> list[dict[str, Any]]:
    """Paired t-test over seeds of each model against the best baseline.

    For a model's algorithm A the best baseline is the baseline with the highest
    mean ``metric`` under A (same label, level, scope); VaDE's ``own`` method is
    compared with the best baseline under any algorithm. Seeds are paired by value.
    """
    res = []
    base = agg[(agg["kind"] == "baseline") & np.isfinite(agg[metric])]
    by_method = {key: g.set_index("seed")[metric] for key, g in scores.groupby(
        ["representation", "algorithm", "label", "level", "scope"], sort=False)}
    best_by: dict[tuple, pd.Series] = {}
    for key, g in base.groupby(["algorithm", "label", "level", "scope"]):
        best_by[key] = g.sort_values(metric, ascending=False).iloc[0]
    for key, g in base.groupby(["label", "level", "scope"]):
        best_by[("*",) + key] = g.sort_values(metric, ascending=False).iloc[0]
    for m in agg[agg["kind"] == "model"].itertuples(index=False):
        best = best_by.get(("*" if m.algorithm == "own" else m.algorithm, m.label, m.level, m.scope))
        if best is None or not np.isfinite(getattr(m, metric)):
            continue
        a = by_method[(m.representation, m.algorithm, m.label, m.level, m.scope)]
        b = by_method[(best["representation"], best["algorithm"], m.label, m.level, m.scope)]
        common = sorted(set(a.index) & set(b.index))
        test = paired_t_test(a.reindex(common).to_numpy(), b.reindex(common).to_numpy())
        significant = bool(np.isfinite(test.p_value) and test.p_value < alpha)
        if not np.isfinite(test.p_value):
            verdict = "not testable (fewer than two paired seeds)"
        else:
            verdict = ("better" if test.mean_diff > 0 else "worse") if significant else "not significant"
        res.append({
            "representation": m.representation, "algorithm": m.algorithm, "label": m.label, "level": m.level,
            "scope": m.scope, "metric": metric, "model_mean": _num(getattr(m, metric)),
            "baseline": f"{best['representation']}/{best['algorithm']}", "baseline_mean": _num(best[metric]),
            "mean_diff": _num(test.mean_diff), "t": _num(test.t), "p_value": _num(test.p_value), "n_pairs": test.n,
            "significant": significant, "verdict": verdict,
        })
    return res


def _num(v: Any) -> float | None:
    """JSON-safe number: NaN/inf become None."""
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def headline_metrics(agg: pd.DataFrame, leak: pd.DataFrame, conditioned: dict[str, list[str]]) -> dict[str, Any]:
    """Nested ``{rep: {algo: {label: {...}, silhouette}}}`` for the headline protocol."""
    out: dict[str, Any] = {}
    idx = agg.set_index(["representation", "algorithm", "label", "level", "scope"])
    head = agg[(agg["level"] == HEADLINE["level"]) & (agg["scope"] == HEADLINE["scope"])]
    for r in head.itertuples(index=False):
        d = out.setdefault(r.representation, {}).setdefault(r.algorithm, {})
        entry = {"nmi": _num(r.nmi), "nmi_ci95": _num(r.nmi_ci), "ari": _num(r.ari), "accuracy": _num(r.accuracy)}
        for name, level, scope in (("nmi_all", "clip", "all"), ("song_nmi", "song_mean", "test")):
            key = (r.representation, r.algorithm, r.label, level, scope)
            entry[name] = _num(idx.loc[key, "nmi"]) if key in idx.index else None
        if r.label in conditioned.get(r.representation, []):
            entry["conditioned_on_label"] = 1  # this model saw the label: not an unsupervised score
        entry["silhouette"] = _num(r.silhouette)  # of the clustering used for this label (its k)
        if r.algorithm == "hdbscan":
            entry["noise_fraction"] = _num(r.noise_fraction)
        d[r.label] = entry
    n_flag = leak.loc[leak["flagged"]].groupby(["representation", "label"])["column"].nunique() if len(leak) else {}
    out["leakage"] = {f"{rep}.{label}": int(n) for (rep, label), n in dict(n_flag).items()} if len(leak) else {}
    out["leakage"]["flagged_pairs"] = len(out["leakage"])
    return out


def run_evaluate_step(
    segments_path: str | Path,
    clusters_dir: str | Path,
    metrics_path: str | Path,
    table_path: str | Path,
    plots_dir: str | Path,
    summary_path: str | Path,
    means_path: str | Path,
    label_columns: Sequence[str],
    params: EvaluateParams,
) -> dict[str, Any]:
    """Score every clustering run and write the metrics files. Returns the summary."""
    segments_path = Path(segments_path)
    if segments_path.is_dir():
        segments_path = segments_path / "segments.parquet"
    clusters_dir = Path(clusters_dir)
    for name in ("manifest.json", "runs.parquet", "assignments.parquet"):
        if not (clusters_dir / name).is_file():
            raise FileNotFoundError(f"{clusters_dir / name}: missing; run the cluster stage first")
    segments = pd.read_parquet(segments_path)
    manifest = read_json(clusters_dir / "manifest.json")
    runs = pd.read_parquet(clusters_dir / "runs.parquet")
    assignments = pd.read_parquet(clusters_dir / "assignments.parquet")
    labels = unit_labels(segments, label_columns)
    present = [c for c in label_columns if c in labels["clip"].columns]
    missing = sorted(set(label_columns) - set(present))
    if missing:
        log.warning("label column(s) %s not in %s: not scored", missing, segments_path)
    too_few = [c for c in present if _n_classes(labels["song"][c]) < 2]
    if too_few:
        log.warning("label column(s) %s have fewer than two classes in %s: not scored", too_few, segments_path)
    present = [c for c in present if c not in too_few]
    if not present:
        raise ValueError(f"{segments_path}: no label column of {list(label_columns)} has two or more classes to score")
    conditioned = {r: list(v.get("conditioned_on") or []) for r, v in manifest["representations"].items()}

    with threadpool_limits(limits=1):  # many small matrix jobs: threads only contend
        leak = leakage_audit(VectorStore(clusters_dir, manifest, fed=False), labels, present, params.leakage_threshold)
        store = VectorStore(clusters_dir, manifest, fed=True)
        scores = score_runs(runs, assignments, store, labels, present, params.silhouette_sample)
    if scores.empty:
        raise RuntimeError(f"no clustering run in {clusters_dir} could be scored against {present}")

    flagged = set(map(tuple, leak.loc[leak["flagged"], ["representation", "label"]].drop_duplicates().to_numpy()))
    modality = {r: v.get("modality", "audio") for r, v in manifest["representations"].items()}
    scores.insert(2, "modality", scores["representation"].map(modality))
    scores["unsupervised"] = [lab not in conditioned.get(rep, []) for rep, lab in zip(scores["representation"], scores["label"])]
    scores["leakage_flag"] = [(rep, lab) in flagged for rep, lab in zip(scores["representation"], scores["label"])]
    agg = aggregate(scores, params.ci)
    agg.insert(2, "modality", agg["representation"].map(modality))
    agg["unsupervised"] = [lab not in conditioned.get(rep, []) for rep, lab in zip(agg["representation"], agg["label"])]
    agg["leakage_flag"] = [(rep, lab) in flagged for rep, lab in zip(agg["representation"], agg["label"])]
    comparisons = compare_to_baselines(scores, agg, "nmi", params.alpha)

    # -- outputs ------------------------------------------------------------------------------
    table_path = Path(table_path)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    order = ["representation", "kind", "modality", "algorithm", "level", "scope", "label", "seed", "fit_on", "k_mode", "k",
             "n_clusters", "n_units", "n_unlabelled", "noise_fraction", *EXTERNAL, "silhouette", "silhouette_n",
             "calinski_harabasz", "davies_bouldin", "unsupervised", "leakage_flag", "note", "run_id"]
    scores = scores.sort_values(["representation", "algorithm", "level", "scope", "label", "seed"])
    scores[order].to_csv(table_path, index=False, float_format="%.6g")

    write_json(metrics_path, headline_metrics(agg, leak, conditioned))

    plots_dir = Path(plots_dir)
    if plots_dir.exists():
        for old in plots_dir.glob("*.csv"):
            old.unlink()  # rewritten whole
    plots_dir.mkdir(parents=True, exist_ok=True)
    head = agg[(agg["level"] == HEADLINE["level"]) & (agg["scope"] == HEADLINE["scope"])]
    for label, g in head.groupby("label"):
        bars = pd.DataFrame({
            "method": g["representation"] + "/" + g["algorithm"], "representation": g["representation"],
            "algorithm": g["algorithm"], "nmi": g["nmi"], "nmi_low": g["nmi_low"], "nmi_high": g["nmi_high"],
            "ari": g["ari"], "n_seeds": g["n_seeds"],
        }).sort_values("nmi", ascending=False)
        bars.to_csv(plots_dir / f"{label}_nmi.csv", index=False, float_format="%.6g")

    means_path = Path(means_path)
    means_path.parent.mkdir(parents=True, exist_ok=True)
    agg.to_csv(means_path, index=False, float_format="%.6g")

    summary = _summary(manifest, agg, comparisons, leak, params, present)
    write_json(summary_path, summary)
    not_sig = sum(1 for c in comparisons if not c["significant"])
    log.info("scored %d runs (%d rows); %d model-vs-baseline comparison(s), %d not significant at alpha=%g; "
             "%d leakage flag(s)", len(runs), len(scores), len(comparisons), not_sig, params.alpha,
             len(summary["leakage"]["flagged"]))
    return summary


def _summary(manifest: dict[str, Any], agg: pd.DataFrame, comparisons: list[dict[str, Any]], leak: pd.DataFrame,
             params: EvaluateParams, labels: Sequence[str]) -> dict[str, Any]:
    best = {}
    head = agg[(agg["level"] == HEADLINE["level"]) & (agg["scope"] == HEADLINE["scope"]) & agg["unsupervised"]]
    for label, g in head.groupby("label"):
        g = g[np.isfinite(g["nmi"])].sort_values("nmi", ascending=False)
        if len(g):
            b = g.iloc[0]
            best[label] = {"method": f"{b['representation']}/{b['algorithm']}", "nmi": _num(b["nmi"]),
                           "nmi_low": _num(b["nmi_low"]), "nmi_high": _num(b["nmi_high"]),
                           "leakage_flag": bool(b["leakage_flag"])}
    by_modality: dict[str, dict[str, Any]] = {}
    for (label, mod), g in head.groupby(["label", "modality"]):
        g = g[np.isfinite(g["nmi"])].sort_values("nmi", ascending=False)
        if len(g):
            b = g.iloc[0]
            by_modality.setdefault(label, {})[mod] = {
                "method": f"{b['representation']}/{b['algorithm']}", "nmi": _num(b["nmi"]), "nmi_ci95": _num(b["nmi_ci"]),
                "ari": _num(b["ari"]), "n_seeds": int(b["n_seeds"]), "leakage_flag": bool(b["leakage_flag"])}
    flagged = leak[leak["flagged"]]
    worst = (leak.sort_values("balanced_accuracy", ascending=False).groupby(["representation", "label"]).head(1)
             if len(leak) else leak)
    not_sig = [c for c in comparisons if not c["significant"]]
    return {
        "protocol": {
            **manifest.get("protocol", {}),
            "headline": f"level={HEADLINE['level']}, scored on {HEADLINE['scope']} songs, mean over seeds",
            "scopes": "test: units of test songs only; all: every song (train+val+test)",
            "interval": f"{params.ci:.0%} Student-t interval over seeds (n_seeds - 1 df); undefined with one seed",
            "significance": f"paired t-test over seeds (paired by seed value), alpha={params.alpha}; each model vs the "
                            "best baseline (highest mean NMI) under the same algorithm, label, level and scope; "
                            "VaDE 'own' vs the best baseline under any algorithm",
            "silhouette": f"on a random sample of at most {params.silhouette_sample} units (silhouette_n states the size); "
                          "CH and DB on all units; song_vote runs use song_mean vectors; noise is its own group",
            "leakage": "each input column alone: 16 equal-frequency bins fit on train clips, each predicting its "
                       "majority label; balanced accuracy on val+test clips; flagged at >= "
                       f"{params.leakage_threshold}. Model inputs are audited through the baselines that hold the "
                       "same columns (raw = train.features, spectral_features, lyrics); tensor inputs (logmel) are not "
                       "audited cell by cell; model latents are audited like any other column",
            "labels": list(labels),
        },
        "best_unsupervised_headline": best,
        "best_by_modality": by_modality,
        "comparisons": comparisons,
        "not_significant": [f"{c['representation']}/{c['algorithm']} vs {c['baseline']} ({c['label']}, {c['level']}, "
                            f"{c['scope']}): diff {_fmt(c['mean_diff'], '+.3f')}, p={_fmt(c['p_value'], '.3g')}"
                            for c in not_sig
                            if c["level"] == HEADLINE["level"] and c["scope"] == HEADLINE["scope"]],
        "leakage": {
            "threshold": params.leakage_threshold,
            "flagged": sorted({f"{r}.{lab}" for r, lab in flagged[["representation", "label"]].to_numpy()}),
            "flagged_columns": [
                {"representation": r.representation, "seed": int(r.seed), "label": r.label, "column": r.column,
                 "balanced_accuracy": _num(r.balanced_accuracy)}
                for r in flagged.sort_values("balanced_accuracy", ascending=False).head(50).itertuples()
            ],
            "n_flagged_columns": int(len(flagged)),
            "max_by_representation": [
                {"representation": r.representation, "label": r.label, "column": r.column,
                 "balanced_accuracy": _num(r.balanced_accuracy)} for r in worst.itertuples()
            ],
        },
        "not_unsupervised": sorted({f"{rep}.{lab}" for rep, lab in
                                    agg.loc[~agg["unsupervised"], ["representation", "label"]].to_numpy()}),
        "skipped_runs": _count_skips(manifest.get("skipped_runs", [])),
        "skipped_representations": manifest.get("skipped_representations", []),
    }


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _count_skips(skips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Skipped runs grouped by representation/algorithm/level/reason, with the number of seeds."""
    counts: dict[tuple, int] = {}
    for s in skips:
        key = (s.get("representation"), s.get("algorithm"), s.get("level"), s.get("reason"))
        counts[key] = counts.get(key, 0) + 1
    return [{"representation": r, "algorithm": a, "level": lv, "reason": why, "n_seeds": n}
            for (r, a, lv, why), n in sorted(counts.items(), key=lambda kv: tuple(map(str, kv[0])))]
