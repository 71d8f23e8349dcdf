"""Clustering scores: external (against a label) and internal (geometry only).

External scores are all computed from one contingency table so that scoring
hundreds of clusterings stays cheap; each formula matches scikit-learn's
definition (tests compare them) and has a hand-worked test, including the
degenerate case of a single cluster, where purity must equal the majority-class
share and ARI = NMI = 0.

Conventions
- A noise label (``-1`` from HDBSCAN) is treated as one more group: noise
  points are neither dropped nor silently merged into a cluster.
- NMI uses the arithmetic mean of the two entropies (scikit-learn's default),
  so NMI equals the V-measure. NMI rises with the number of clusters; AMI (adjusted
  for chance, scikit-learn's definition and its expected-MI kernel) is 0 for a random
  clustering whatever its k, so only AMI, or NMI at one fixed k, compares runs with
  different k.
- Accuracy is the share of points whose cluster is matched (one-to-one,
  Hungarian algorithm) to their class; with more clusters than classes, the
  unmatched clusters count as wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# scipy and scikit-learn are imported where they are used (purity/accuracy, AMI): importing them
# costs about 0.7 s of every process that loads this module, and the evaluate stage never calls them.

EXTERNAL = ("nmi", "ami", "ari", "v_measure", "homogeneity", "completeness", "purity", "accuracy")
INTERNAL = ("silhouette", "silhouette_n", "calinski_harabasz", "davies_bouldin")


def contingency(labels_true: np.ndarray, labels_pred: np.ndarray) -> np.ndarray:
    """Counts table ``(n_classes, n_clusters)`` of two labelings of the same points."""
    labels_true = np.asarray(labels_true)
    labels_pred = np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(
            f"labelings must be 1-D and equally long, got {labels_true.shape} and {labels_pred.shape}"
        )
    _, t = np.unique(labels_true, return_inverse=True)
    _, p = np.unique(labels_pred, return_inverse=True)
    table = np.zeros((t.max(initial=-1) + 1, p.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    n = counts.sum()
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def _comb2(x: np.ndarray | float) -> np.ndarray | float:
    return x * (x - 1) / 2.0


def scores_from_contingency(table: np.ndarray) -> dict[str, float]:
    """ARI, NMI, V-measure, homogeneity, completeness, purity and Hungarian accuracy.

    ``table[i, j]`` counts points of class ``i`` in cluster ``j``.
    """
    table = np.asarray(table, dtype=np.float64)
    n = table.sum()
    if n == 0:
        return {m: float("nan") for m in EXTERNAL}
    rows, cols = table.sum(axis=1), table.sum(axis=0)

    # adjusted Rand index (Hubert & Arabie 1985); identical labelings with one
    # group on both sides are a perfect match, as in scikit-learn
    sum_cells = _comb2(table).sum()
    sum_rows, sum_cols = _comb2(rows).sum(), _comb2(cols).sum()
    expected = sum_rows * sum_cols / _comb2(n) if n > 1 else 0.0
    max_index = (sum_rows + sum_cols) / 2.0
    if max_index == expected:
        ari = 1.0 if sum_cells == max_index else 0.0
    else:
        ari = float((sum_cells - expected) / (max_index - expected))

    # information-theoretic scores (Rosenberg & Hirschberg 2007)
    h_c, h_k = _entropy(rows), _entropy(cols)
    nz = table > 0
    pij = table[nz] / n
    outer = np.outer(rows, cols)[nz] / (n * n)
    mi = float(max((pij * np.log(pij / outer)).sum(), 0.0))
    if len(rows) == len(cols) == 1:
        homogeneity = completeness = nmi = 1.0
    else:
        homogeneity = mi / h_c if h_c > 0 else 1.0
        completeness = mi / h_k if h_k > 0 else 1.0
        nmi = mi / ((h_c + h_k) / 2.0) if (h_c + h_k) > 0 else 1.0
    ami = ami_from_contingency(table, mi, h_c, h_k)
    hc_sum = homogeneity + completeness
    v_measure = 2.0 * homogeneity * completeness / hc_sum if hc_sum > 0 else 0.0

    # purity: every cluster votes for its majority class
    purity = float(table.max(axis=0).sum() / n)
    # accuracy after a one-to-one matching of clusters to classes
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(-table)
    accuracy = float(table[r, c].sum() / n)
    return {
        "ari": ari,
        "nmi": float(min(nmi, 1.0)),
        "ami": float(ami),
        "v_measure": float(min(v_measure, 1.0)),
        "homogeneity": float(min(homogeneity, 1.0)),
        "completeness": float(min(completeness, 1.0)),
        "purity": purity,
        "accuracy": accuracy,
    }


def ami_from_contingency(
    table: np.ndarray, mi: float | None = None, h_c: float | None = None, h_k: float | None = None
) -> float:
    """Adjusted mutual information (arithmetic mean, scikit-learn's definition) of a contingency table.

    ``mi``, ``h_c``, ``h_k`` (mutual information and the two entropies, in nats) are computed when
    not given.
    """
    table = np.asarray(table, dtype=np.float64)
    n = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    rows, cols = rows[rows > 0], cols[cols > 0]
    if len(rows) == len(cols) == 1 or len(rows) == len(cols) == n:
        return 1.0  # scikit-learn: identical trivial labelings
    if h_c is None or h_k is None or mi is None:
        h_c, h_k = _entropy(rows), _entropy(cols)
        nz = table > 0
        outer = np.outer(table.sum(axis=1), table.sum(axis=0))[nz] / (n * n)
        pij = table[nz] / n
        mi = float(max((pij * np.log(pij / outer)).sum(), 0.0))
    t = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    # scikit-learn's exact expected mutual information (the Cython kernel behind
    # adjusted_mutual_info_score); the public function re-validates its label arrays on every call
    # (11 ms a call measured), which made the bootstrap 40x slower than the scoring itself.
    # tests/test_metrics.py checks AMI against the public one.
    from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information

    emi = float(expected_mutual_information(np.rint(t).astype(np.int64), int(round(n))))
    denom = (h_c + h_k) / 2.0 - emi
    # scikit-learn keeps the denominator away from 0 by machine epsilon, keeping its sign
    denom = min(denom, -np.finfo("float64").eps) if denom < 0 else max(denom, np.finfo("float64").eps)
    return float((mi - emi) / denom)


def external_scores(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """Every external score of clustering ``labels_pred`` against classes ``labels_true``."""
    return scores_from_contingency(contingency(labels_true, labels_pred))


def purity(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Share of points that belong to the majority class of their cluster."""
    return external_scores(labels_true, labels_pred)["purity"]


def hungarian_accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes."""
    return external_scores(labels_true, labels_pred)["accuracy"]


def euclidean_distance_matrix(x: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix ``(n, n)`` of the rows of ``x`` (float64, zero diagonal)."""
    x = np.asarray(x, dtype=np.float64)
    sq = (x * x).sum(axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def silhouette_from_distances(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient from a precomputed distance matrix.

    Same definition as ``sklearn.metrics.silhouette_score`` (a point alone in
    its cluster scores 0), but one matrix product per call, so a distance
    matrix computed once per representation serves every clustering of it.
    Returns NaN unless 2 <= number of clusters <= n - 1.
    """
    labels = np.asarray(labels)
    n = len(labels)
    _, inv = np.unique(labels, return_inverse=True)
    k = inv.max(initial=-1) + 1
    if not 2 <= k <= n - 1:
        return float("nan")
    onehot = np.zeros((n, k))
    onehot[np.arange(n), inv] = 1.0
    sums = dist @ onehot  # (n, k): summed distance from each point to each cluster
    counts = onehot.sum(axis=0)
    own = counts[inv]
    a = sums[np.arange(n), inv] / np.maximum(own - 1, 1)
    mean_other = sums / counts[None, :]
    mean_other[np.arange(n), inv] = np.inf
    b = mean_other.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where((own > 1) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(s.mean())


def internal_scores(
    x: np.ndarray, labels: np.ndarray, dist: np.ndarray | None = None, sample_idx: np.ndarray | None = None
) -> dict[str, Any]:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin of ``labels`` on vectors ``x``.

    ``sample_idx`` (indices into ``x``) restricts the silhouette to a sample,
    whose size is returned as ``silhouette_n``; ``dist`` is the distance matrix
    of exactly those sampled rows (computed here when not given). CH and DB use
    every point. Scores are NaN where undefined (fewer than 2 clusters, or
    every point its own cluster).
    """
    labels = np.asarray(labels)
    x = np.asarray(x)
    idx = np.arange(len(labels)) if sample_idx is None else np.asarray(sample_idx)
    if dist is None:
        dist = euclidean_distance_matrix(x[idx])
    out: dict[str, Any] = {
        "silhouette": silhouette_from_distances(dist, labels[idx]),
        "silhouette_n": int(len(idx)),
    }
    ch, db = calinski_harabasz_davies_bouldin(x, labels)
    out["calinski_harabasz"], out["davies_bouldin"] = ch, db
    return out


def calinski_harabasz_davies_bouldin(x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Calinski-Harabasz and Davies-Bouldin indices (scikit-learn's definitions), NaN where undefined.

    Computed together from the cluster centroids; written out because the
    scikit-learn versions spend most of their time validating inputs when
    called for hundreds of small clusterings.
    """
    x = np.asarray(x, dtype=np.float64)
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    n, k = len(inv), inv.max(initial=-1) + 1
    if not 2 <= k <= n - 1:
        return float("nan"), float("nan")
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, inv, x)
    centroids = sums / counts[:, None]
    resid = x - centroids[inv]
    within = float((resid**2).sum())
    between = float((counts * ((centroids - x.mean(axis=0)) ** 2).sum(axis=1)).sum())
    ch = 1.0 if within == 0 else between * (n - k) / (within * (k - 1))
    # Davies-Bouldin: mean over clusters of the worst (s_i + s_j) / d(c_i, c_j)
    spread = np.bincount(inv, weights=np.sqrt((resid**2).sum(axis=1)), minlength=k) / counts
    cd = np.sqrt(np.maximum(((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2), 0.0))
    if np.allclose(spread, 0) or np.allclose(cd, 0):
        return float(ch), 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (spread[:, None] + spread[None, :]) / cd
    ratio[~np.isfinite(ratio)] = 0.0  # sklearn: coincident centroids contribute 0
    np.fill_diagonal(ratio, 0.0)
    return float(ch), float(ratio.max(axis=1).mean())
