"""Clustering algorithms behind one call, with the fit/predict protocol made explicit.

Algorithms that can assign new points (K-Means, Gaussian mixture) are fit on
training units only and then predict every unit, so test songs never shape the
clusters they are scored on. The others (Ward agglomerative, HDBSCAN, spectral)
cannot predict and are fit on all units; :class:`Clustering` records which.

``hdbscan`` is scikit-learn's HDBSCAN (no ``eps`` to tune); its noise points
keep the label ``-1`` and are scored as a group of their own.

Cost in the number of units n (dimension d, k clusters), and the plan above ``cluster.fit_sample``:

- ``kmeans``: O(n k d) per iteration, memory O(n d): fit on the training units, predicts the rest;
- ``gmm``: O(n k d^2) per EM step (full covariance up to d = 16, diagonal above): the same;
- ``agglomerative`` (Ward): O(n^2) time and memory (100k clips would need ~40 GB of distances);
- ``hdbscan``: between O(n log n) and O(n^2) time, O(n) to O(n^2) memory;
- ``spectral``: a k-NN graph and an eigensolver, ~O(n^2) in practice.

The last three cannot predict new points. Up to ``cluster.fit_sample`` units they are fit on all of
them; above it, on a seeded random sample of that many units (``fit_on == "sample"``), and every
other unit joins the nearest centroid of the sample's clusters (noise excepted), so their cost stops
growing with the collection.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import HDBSCAN, KMeans, SpectralClustering
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from musiclust.params import ALGORITHMS

log = logging.getLogger(__name__)

PREDICTIVE = ("kmeans", "gmm")  # fit on train, predict the rest
FIT_ALL = ("agglomerative", "hdbscan", "spectral")  # fit on every unit
NOISE = -1

#: covariance of the Gaussian mixture: full where the dimension is small enough
#: to estimate it, diagonal above (a full 384x384 covariance from ~100 songs is noise)
GMM_FULL_MAX_DIM = 16


@dataclass
class Clustering:
    """Cluster label of every unit (``-1`` = noise) and how it was obtained."""

    labels: np.ndarray
    fit_on: str  # "train" | "all"
    k: int | None  # requested number of clusters (None: chosen by the algorithm)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(len(np.unique(self.labels[self.labels != NOISE])))

    @property
    def noise_fraction(self) -> float:
        return float(np.mean(self.labels == NOISE)) if len(self.labels) else 0.0


class WardTree:
    """Ward linkage computed once and cut at any k (same partitions as sklearn's Ward)."""

    def __init__(self, x: np.ndarray) -> None:
        self.z = linkage(np.asarray(x, dtype=np.float64), method="ward")

    def cut(self, k: int) -> np.ndarray:
        return fcluster(self.z, t=k, criterion="maxclust").astype(np.int64) - 1


def _gmm(k: int, d: int, seed: int) -> GaussianMixture:
    cov = "full" if d <= GMM_FULL_MAX_DIM else "diag"
    return GaussianMixture(n_components=k, covariance_type=cov, reg_covar=1e-4, n_init=2, random_state=seed)


def fit_sample_index(n: int, fit_sample: int, seed: int) -> np.ndarray | None:
    """The units a non-predictive algorithm is fit on when there are more than ``fit_sample`` (else None)."""
    if n <= fit_sample:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=fit_sample, replace=False))


#: elements of the (rows, centroids, dims) difference array nearest_centroid builds at a time (32 MiB)
NEAREST_CHUNK_ELEMENTS = 2**22


def nearest_centroid(x: np.ndarray, fit_x: np.ndarray, fit_labels: np.ndarray) -> np.ndarray:
    """Label of the nearest centroid of ``fit_x``'s clusters (noise ``-1`` excepted) for every row of ``x``."""
    ids = np.array(sorted(set(fit_labels.tolist()) - {NOISE}), dtype=np.int64)
    if len(ids) == 0:
        return np.full(len(x), NOISE, np.int64)
    cents = np.stack([fit_x[fit_labels == c].mean(axis=0) for c in ids])
    out = np.empty(len(x), np.int64)
    # bounded memory whatever k: HDBSCAN finds hundreds of clusters in a 5,000-unit sample, and a
    # fixed 8,192 rows x 800 centroids x 48 dims was 2.5 GiB (10 GiB for the 384-dim lyrics)
    chunk = max(1, NEAREST_CHUNK_ELEMENTS // (len(ids) * max(1, x.shape[1])))
    for i in range(0, len(x), chunk):
        d = ((x[i : i + chunk, None, :] - cents[None]) ** 2).sum(axis=2)
        out[i : i + chunk] = ids[d.argmin(axis=1)]
    return out


def run_algorithm(
    algorithm: str,
    x: np.ndarray,
    train_mask: np.ndarray,
    k: int | None,
    seed: int,
    min_samples: int = 5,
    ward: WardTree | None = None,
    sample: np.ndarray | None = None,
) -> Clustering:
    """Cluster the rows of ``x`` with ``algorithm`` into ``k`` groups.

    ``train_mask`` marks the units a predictive algorithm is fit on. ``ward``
    reuses a precomputed linkage of the same units the algorithm is fit on. ``k`` is ignored by
    ``hdbscan``, which finds its own number of clusters. ``sample`` (indices, from
    :func:`fit_sample_index`): a non-predictive algorithm is fit on those units only and the
    others join the nearest centroid.
    """
    if sample is not None and algorithm in FIT_ALL:
        x = np.asarray(x, dtype=np.float64)
        fit = run_algorithm(algorithm, x[sample], train_mask[sample], k, seed, min_samples, ward)
        labels = nearest_centroid(x, x[sample], fit.labels)
        labels[sample] = fit.labels  # the sampled units keep their own clusters (noise included)
        info = {**fit.info, "fit_sample": len(sample), "rest": "nearest centroid of the sample's clusters"}
        return Clustering(labels, "sample", fit.k, info)
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    train_mask = np.asarray(train_mask, bool)
    if algorithm in PREDICTIVE:
        return _run_predictive(algorithm, x, train_mask, k, seed)
    if algorithm == "agglomerative":
        if k is None or n < k:
            raise ValueError(f"agglomerative: need at least k={k} units, have {n}")
        tree = ward or WardTree(x)
        return Clustering(tree.cut(k), "all", k, {"linkage": "ward"})
    if algorithm == "hdbscan":
        m = max(2, min(min_samples, n - 1))
        labels = HDBSCAN(min_cluster_size=m, min_samples=m, copy=True).fit_predict(x)
        return Clustering(labels.astype(np.int64), "all", None, {"min_cluster_size": m, "min_samples": m})
    if algorithm == "spectral":
        if k is None or n <= k:
            raise ValueError(f"spectral: need more than k={k} units, have {n}")
        nn = int(min(10, n - 1))
        with warnings.catch_warnings():
            # a disconnected k-NN graph is reported by sklearn as a warning; the result is still usable
            warnings.simplefilter("ignore", UserWarning)
            model = SpectralClustering(
                n_clusters=k,
                affinity="nearest_neighbors",
                n_neighbors=nn,
                assign_labels="cluster_qr",
                random_state=seed,
            ).fit(x)
        return Clustering(model.labels_.astype(np.int64), "all", k, {"affinity": f"knn{nn}"})
    raise ValueError(f"unknown clustering algorithm {algorithm!r} (have {', '.join(ALGORITHMS)})")


def _run_predictive(
    algorithm: str, x: np.ndarray, train_mask: np.ndarray, k: int | None, seed: int
) -> Clustering:
    """K-Means or GMM fit on the ``train_mask`` rows of ``x`` (float64), then predicted for every row."""
    n_fit = int(train_mask.sum())
    if k is None or n_fit < k:
        raise ValueError(f"{algorithm}: need at least k={k} training units, have {n_fit}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if algorithm == "kmeans":
            model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x[train_mask])
            info = {"inertia": float(model.inertia_)}
        else:
            model = _gmm(k, x.shape[1], seed).fit(x[train_mask])
            info = {"bic": float(model.bic(x[train_mask])), "covariance": model.covariance_type}
    return Clustering(model.predict(x).astype(np.int64), "train", k, info)
