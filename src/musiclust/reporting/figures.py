"""The report's figures: functions from frames/arrays to matplotlib figures (no file I/O).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`style.fig_to_png` turns it
into bytes. Styling comes from :mod:`musiclust.reporting.style` so all figures look alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from musiclust.reporting.style import SEQUENTIAL_CMAP, apply_style, category_styles

log = logging.getLogger(__name__)


def _new_fig(w: float, h: float, nrows: int = 1, ncols: int = 1, **kw):
    apply_style()
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def umap_available() -> bool:
    """True when the optional ``umap-learn`` package is installed (checked without importing it:
    the import alone takes seconds)."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def embed_2d(x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """Project rows of ``x`` (n, d) to 2-D with ``pca``, ``tsne`` or ``umap``.

    Degenerate inputs (fewer than 3 rows or 1 dimension) are padded with zeros rather than
    failing, so a tiny run still gets a (trivial) map.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 3 or x.shape[1] < 2:
        out = np.zeros((n, 2))
        out[:, : min(2, x.shape[1])] = x[:, :2]
        return out
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        # perplexity must stay below n; ~n/4 keeps small sets from collapsing into a ring
        perplexity = float(max(2.0, min(30.0, (n - 1) / 4)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                    max_iter=500).fit_transform(x)
    if method == "umap":
        import warnings

        import umap

        with warnings.catch_warnings():  # "n_jobs overridden by random_state": intended, for determinism
            warnings.simplefilter("ignore")
            return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(x)
    raise ValueError(f"unknown projection {method!r} (pca, tsne, umap)")


def latent_map(
    projections: Mapping[str, np.ndarray],
    colourings: Mapping[str, Sequence[object]],
    title: str,
) -> Figure:
    """Grid of scatter plots: one row per projection, one column per colouring.

    ``projections`` maps a method name to (n, 2) points; ``colourings`` maps a column title
    (``cluster``, ``language``, ``genre``) to n category values (None/NaN shown as "unknown").
    """
    methods, cols = list(projections), list(colourings)
    fig, axes = _new_fig(3.3 * len(cols), 3.0 * len(methods) + 0.4, len(methods), len(cols))
    for j, cname in enumerate(cols):
        vals = pd.Series(list(colourings[cname]), dtype=object).where(lambda s: s.notna(), "unknown")
        vals = vals.astype(str)
        cats = sorted(vals.unique(), key=lambda c: (c == "unknown", _natural(c)))
        styles = category_styles(cats)
        for i, method in enumerate(methods):
            ax = axes[i][j]
            pts = projections[method]
            for cat in cats:
                m = (vals == cat).to_numpy()
                colour, marker = styles[cat]
                if cat == "unknown":
                    colour = "#BBBBBB"
                ax.scatter(pts[m, 0], pts[m, 1], s=14, c=colour, marker=marker, label=cat,
                           alpha=0.85, linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"coloured by {cname}")
            if j == 0:
                ax.set_ylabel(method.upper() if method != "tsne" else "t-SNE")
            if i == len(methods) - 1:
                ncol = 1 if len(cats) <= 6 else 2
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=max(ncol, min(4, len(cats))),
                          frameon=False, markerscale=1.4, handletextpad=0.2, columnspacing=0.8)
    fig.suptitle(title, fontsize=12)
    return fig


def _natural(s: str) -> tuple:
    """Sort ``cluster 2`` before ``cluster 10``."""
    try:
        return (0, float(s))
    except ValueError:
        return (1, s)


def training_curves(curves: Mapping[str, pd.DataFrame]) -> Figure:
    """Per-epoch loss, one row per model (its own scale) and columns reconstruction / KL / total.

    Solid blue: validation songs; dashed orange: training songs. The line is the mean over
    seeds at each epoch and the band spans the seeds' minimum to maximum (seeds that stopped
    early simply end). Models differ in loss scale by orders of magnitude (log-mel vs MFCC
    statistics), which is why they do not share axes.
    """
    parts = [p for p in ("recon", "kl", "total")
             if any(f"val_{p}" in df.columns or f"train_{p}" in df.columns for df in curves.values())]
    keys = list(curves)
    fig, axes = _new_fig(3.3 * max(1, len(parts)), 1.55 * len(keys) + 0.9, len(keys), max(1, len(parts)),
                         sharex="row")
    titles = {"recon": "reconstruction", "kl": "KL divergence", "total": "total loss"}
    for i, key in enumerate(keys):
        df = curves[key]
        for j, part in enumerate(parts):
            ax = axes[i][j]
            for split, colour, ls in (("val", "#0072B2", "-"), ("train", "#E69F00", "--")):
                col = f"{split}_{part}"
                if col not in df.columns or "epoch" not in df.columns:
                    continue
                g = df.groupby("epoch")[col]
                mean, lo, hi = g.mean(), g.min(), g.max()
                if not np.isfinite(mean).any():
                    continue
                ax.plot(mean.index, mean.values, ls=ls, color=colour, lw=1.3,
                        label="validation" if split == "val" else "training")
                if df.get("seed", pd.Series([0])).nunique() > 1:
                    ax.fill_between(mean.index, lo.values, hi.values, color=colour, alpha=0.18, lw=0)
            if i == 0:
                ax.set_title(titles[part])
            if j == 0:
                ax.set_ylabel(key, fontsize=10, fontweight="bold")
            if i == len(keys) - 1:
                ax.set_xlabel("epoch")
            ax.tick_params(labelsize=8)
    if parts and keys:
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside upper center", ncol=2, frameon=False)
    return fig


def reconstruction_figure(original: np.ndarray, recon: np.ndarray, title: str,
                          names: Sequence[str] | None = None) -> Figure:
    """Original vs reconstructed inputs for a few clips.

    2-D items (n_mels x frames) are shown as images side by side on a shared colour scale;
    1-D items (feature vectors) as two lines per clip.
    """
    n = min(len(original), 3)
    names = list(names)[:n] if names is not None else [f"clip {i}" for i in range(n)]
    if original.ndim >= 3:
        fig, axes = _new_fig(6.5, 1.9 * n + 0.5, n, 2)
        for i in range(n):
            a, b = np.squeeze(original[i]), np.squeeze(recon[i])
            vmin, vmax = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
            for j, (img, lab) in enumerate(((a, "original"), (b, "reconstructed"))):
                ax = axes[i][j]
                im = ax.imshow(img, origin="lower", aspect="auto", cmap=SEQUENTIAL_CMAP, vmin=vmin, vmax=vmax)
                ax.set_title(f"{names[i]}: {lab}", fontsize=9)
                ax.set_xlabel("frame")
                ax.set_ylabel("mel band")
            fig.colorbar(im, ax=axes[i].tolist(), shrink=0.8)
    else:
        fig, axes = _new_fig(6.5, 1.6 * n + 0.5, n, 1)
        for i in range(n):
            ax = axes[i][0]
            ax.plot(original[i], color="#0072B2", lw=1.3, label="original")
            ax.plot(recon[i], color="#D55E00", lw=1.3, ls="--", label="reconstructed")
            ax.set_title(names[i], fontsize=9)
            ax.set_ylabel("value (standardized)")
        axes[-1][0].set_xlabel("feature index")
        axes[0][0].legend(frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2)
    fig.suptitle(title, fontsize=12)
    return fig


def composition_figure(clusters: Sequence[object], labels: Sequence[object], label_name: str,
                       title: str) -> Figure:
    """Cluster make-up: stacked bars of label shares per cluster and the count heatmap."""
    ct = pd.crosstab(pd.Series(list(clusters), name="cluster").astype(str),
                     pd.Series(list(labels), name=label_name).fillna("unknown").astype(str))
    ct = ct.loc[sorted(ct.index, key=_natural), sorted(ct.columns, key=_natural)]
    fig, axes = _new_fig(10.0, 0.35 * len(ct) + 2.6, 1, 2)
    ax = axes[0][0]
    shares = ct.div(ct.sum(axis=1), axis=0)
    styles = category_styles(list(ct.columns))
    left = np.zeros(len(ct))
    for lab in ct.columns:
        ax.barh(range(len(ct)), shares[lab].to_numpy(), left=left, color=styles[lab][0], label=lab,
                edgecolor="white", lw=0.5)
        left += shares[lab].to_numpy()
    ax.set_yticks(range(len(ct)), [f"{c} (n={int(ct.loc[c].sum())})" for c in ct.index])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of {label_name}")
    ax.set_ylabel("cluster")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(5, len(ct.columns)), frameon=False)
    ax = axes[0][1]
    im = ax.imshow(ct.to_numpy(), cmap=SEQUENTIAL_CMAP, aspect="auto", vmin=0)
    ax.set_xticks(range(len(ct.columns)), ct.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(ct)), ct.index)
    ax.set_xlabel(label_name)
    ax.set_ylabel("cluster")
    top = ct.to_numpy().max() if ct.size else 0
    for (i, j), v in np.ndenumerate(ct.to_numpy()):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                color="black" if v > 0.6 * top else "white")
    fig.colorbar(im, ax=ax, shrink=0.8, label="songs")
    fig.suptitle(title, fontsize=12)
    return fig


def metric_heatmap(matrix: pd.DataFrame, title: str, vmin: float | None = None,
                   vmax: float | None = None) -> Figure:
    """Representations (rows) x metrics (columns), values annotated; NaN cells left blank."""
    fig, axes = _new_fig(max(5.0, 0.95 * matrix.shape[1] + 2.5), 0.42 * matrix.shape[0] + 1.8)
    ax = axes[0][0]
    arr = matrix.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(arr), cmap=SEQUENTIAL_CMAP, aspect="auto", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=35, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    finite = arr[np.isfinite(arr)]
    lo, hi = (vmin if vmin is not None else (finite.min() if finite.size else 0),
              vmax if vmax is not None else (finite.max() if finite.size else 1))
    for (i, j), v in np.ndenumerate(arr):
        if np.isfinite(v):
            bright = (v - lo) / (hi - lo) > 0.6 if hi > lo else False
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="black" if bright else "white")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title)
    return fig


def dataset_figure(songs: pd.DataFrame, label_columns: Sequence[str]) -> Figure | None:
    """Songs per value of the first two label columns (grouped bars); None without labels."""
    cols = [c for c in label_columns if c in songs.columns]
    if not cols:
        return None
    fig, axes = _new_fig(6.5, 3.0)
    ax = axes[0][0]
    first = songs[cols[-1]].fillna("unknown").astype(str)  # genre on the x axis when both exist
    if len(cols) >= 2:
        second = songs[cols[0]].fillna("unknown").astype(str)
        ct = pd.crosstab(first, second)
        styles = category_styles(list(ct.columns))
        width = 0.8 / max(1, len(ct.columns))
        for k, c in enumerate(ct.columns):
            ax.bar(np.arange(len(ct)) + k * width - 0.4 + width / 2, ct[c].to_numpy(), width,
                   color=styles[c][0], label=f"{cols[0]}={c}")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_xticks(range(len(ct)), ct.index, rotation=20)
    else:
        vc = first.value_counts().sort_index()
        ax.bar(range(len(vc)), vc.to_numpy(), color="#0072B2")
        ax.set_xticks(range(len(vc)), vc.index, rotation=20)
    ax.set_xlabel(cols[-1])
    ax.set_ylabel("songs")
    ax.set_title("Songs per label")
    return fig
