"""2-D projections of latent points that never crash on degenerate input.

scikit-learn's t-SNE dies with a native segmentation fault (no Python error) when every
row is identical, and PCA, t-SNE and UMAP all fail or warn on fewer points than they
need. :func:`project_2d` looks at the input first and chooses what can be drawn honestly:
the requested method when the input allows it, otherwise a simpler one, and says which in
the returned note so the report can print it beside the map.

:func:`degenerate_reason` is the same check for clustering: the caller skips (or reports)
a clustering whose input cannot be clustered instead of crashing on it.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np

PROJECTIONS = ("pca", "tsne", "umap")
#: the largest perplexity used; smaller sets get about n/4 (a ring otherwise)
MAX_PERPLEXITY = 30.0
#: rows closer than this (after centring, relative to the data's scale) count as identical
_IDENTICAL_RTOL = 1e-9


def _prepare(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(n, d) float64 rows with non-finite values replaced by the column mean (or 0), and a note."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of points (n, d), got shape {x.shape}")
    note = None
    bad = ~np.isfinite(x)
    if bad.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no mean
            means = np.nanmean(np.where(bad, np.nan, x), axis=0) if x.shape[0] else np.zeros(x.shape[1])
        means = np.where(np.isfinite(means), means, 0.0)
        x = np.where(bad, means[None, :], x)
        note = (
            f"{int(bad.any(axis=1).sum())} point(s) with NaN/inf coordinates were drawn at the column means"
        )
    return x, note


def _distinct_rows(x: np.ndarray) -> int:
    """Number of distinct rows up to a tolerance relative to the data's scale."""
    if x.shape[0] == 0:
        return 0
    centred = x - x.mean(axis=0, keepdims=True)
    scale = float(np.abs(x).max()) or 1.0
    key = np.round(centred / (scale * _IDENTICAL_RTOL * 1e3), 0)
    return int(np.unique(key, axis=0).shape[0])


def degenerate_reason(x: np.ndarray, min_points: int = 2) -> str | None:
    """Why the rows of ``x`` cannot be clustered or projected meaningfully, or None.

    ``fewer than <min_points> points``, ``NaN/inf values``, ``all points identical``,
    ``zero variance`` (every column constant: same as identical) are the reasons.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_points:
        return f"fewer than {min_points} points ({x.shape[0] if x.ndim else 0})"
    if x.shape[1] == 0:
        return "points have no dimensions"
    if not np.isfinite(x).all():
        return "NaN/inf values"
    if _distinct_rows(x) <= 1:
        return "all points identical"
    return None


def umap_available() -> bool:
    """True when ``umap-learn`` is installed (checked without importing it: the import takes seconds)."""
    return importlib.util.find_spec("umap") is not None


def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n, d = x.shape
    k = min(2, n, d)
    out = np.zeros((n, 2))
    # exact SVD: deterministic for any seed and no random solver on a tiny or flat input
    out[:, :k] = PCA(n_components=k, svd_solver="full", random_state=seed).fit_transform(x)
    return out


def project_2d(
    x: np.ndarray, method: str, seed: int = 0, max_iter: int = 500
) -> tuple[np.ndarray, str | None]:
    """Project rows of ``x`` (n, d) to ``(n, 2)`` with ``pca``, ``tsne`` or ``umap``; never crashes.

    Returns ``(coords, note)``. ``note`` is None when the requested method ran as asked,
    else one line for the reader, e.g. ``all points identical: shown at one point`` or
    ``6 points are too few for t-SNE (needs more than 3 x perplexity): PCA used instead``.
    Same input and seed give the same coordinates.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r} ({', '.join(PROJECTIONS)})")
    x, nan_note = _prepare(x)
    n = x.shape[0]
    notes = [nan_note] if nan_note else []

    def done(coords: np.ndarray, note: str | None = None) -> tuple[np.ndarray, str | None]:
        all_notes = notes + ([note] if note else [])
        return np.asarray(coords, dtype=np.float64).reshape(n, 2), "; ".join(all_notes) or None

    if n == 0:
        return done(np.zeros((0, 2)), "no points to draw")
    distinct = _distinct_rows(x) if x.shape[1] else 1
    if distinct <= 1:
        what = "the only point" if n == 1 else f"all {n} points identical"
        return done(np.zeros((n, 2)), f"{what}: shown at one point")
    if x.shape[1] == 1 or n < 3:
        coords = np.zeros((n, 2))
        coords[:, 0] = (x[:, 0] - x[:, 0].mean()) if x.shape[1] == 1 else _pca(x, seed)[:, 0]
        return done(coords, None if method == "pca" else f"{n} point(s) in {x.shape[1]}-D: drawn on one axis")
    if method == "pca":
        return done(_pca(x, seed))
    if method == "tsne":
        return done(*_tsne(x, distinct, seed, max_iter))
    return done(*_umap(x, distinct, seed))


def _tsne(x: np.ndarray, distinct: int, seed: int, max_iter: int) -> tuple[np.ndarray, str | None]:
    """t-SNE coordinates of ``x`` (n, d), or PCA's and the reason when there are too few points for it."""
    n = x.shape[0]
    # t-SNE needs more points than 3 x perplexity; ~n/4 keeps small sets from collapsing into a ring
    perplexity = float(max(2.0, min(MAX_PERPLEXITY, (n - 1) / 4)))
    if n <= 3 * perplexity or distinct <= 3 * perplexity:
        who = f"{distinct} distinct points" if distinct < n else f"{n} points"
        return _pca(x, seed), f"{who} are too few for t-SNE (perplexity {perplexity:g}): PCA used instead"
    from sklearn.manifold import TSNE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        coords = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter
        ).fit_transform(x)
    if not np.isfinite(coords).all():
        return _pca(x, seed), "t-SNE gave non-finite coordinates: PCA used instead"
    return coords, None


def _umap(x: np.ndarray, distinct: int, seed: int) -> tuple[np.ndarray, str | None]:
    """UMAP coordinates of ``x`` (n, d), or PCA's and the reason when UMAP is missing or cannot serve."""
    n = x.shape[0]
    if not umap_available():
        return _pca(x, seed), "umap-learn is not installed: PCA used instead"
    n_neighbors = min(15, n - 1)
    if distinct <= n_neighbors or n < 5:
        return _pca(x, seed), f"{distinct} distinct points are too few for UMAP: PCA used instead"
    import umap

    with warnings.catch_warnings():  # "n_jobs overridden by random_state": intended, for determinism
        warnings.simplefilter("ignore")
        coords = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed).fit_transform(x)
    if not np.isfinite(coords).all():
        return _pca(x, seed), "UMAP gave non-finite coordinates: PCA used instead"
    return coords, None
