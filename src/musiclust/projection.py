"""2-D projections (PCA, t-SNE, UMAP) that never crash on degenerate input."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE


def project_2d(x: np.ndarray, method: str, seed: int = 0) -> tuple[np.ndarray, str | None]:
    """Rows of ``x`` (n, d) in 2-D, and a note saying which fallback was used (None: none)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    n = x.shape[0]
    out = np.zeros((n, 2))
    if n == 0:
        return out, "no points"
    if np.ptp(x, axis=0).max(initial=0.0) == 0.0:
        return out, "all points identical: shown at one point"
    if n < 3 or x.shape[1] < 2:
        out[:, : min(2, x.shape[1])] = x[:, :2]
        return out, f"only {n} point(s) or one dimension: raw coordinates shown"
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x), None
    if method == "tsne":
        perplexity = float(max(2.0, min(30.0, (n - 1) / 4)))
        return TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500
        ).fit_transform(x), None
    if method == "umap":
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(
                x
            ), None
    raise ValueError(f"unknown projection {method!r} (pca, tsne, umap)")
