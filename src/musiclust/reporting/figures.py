"""The report's figures: functions from frames/arrays to matplotlib figures (no file I/O).

Every function only draws what an earlier stage computed (2-D maps from the cluster stage,
intervals from the evaluation, losses from training); :func:`style.fig_to_png` turns the
figure into bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from musiclust.reporting.style import OKABE_ITO, SEQUENTIAL_CMAP, apply_style, category_styles

#: How each projection method is named on an axis.
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _new_fig(w: float, h: float, nrows: int = 1, ncols: int = 1, **kw):
    apply_style()
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def natural_key(s: object) -> tuple:
    """Sort ``2`` before ``10`` and numbers before words."""
    try:
        return (0, float(str(s)), "")
    except ValueError:
        return (1, 0.0, str(s))


def latent_map(points: Mapping[str, pd.DataFrame], labels: Mapping[str, pd.Series], title: str) -> Figure:
    """Grid of scatter plots: one row per projection method, one column per label.

    ``points`` maps a method to a frame with ``song_id``, ``x``, ``y``; ``labels`` maps a label
    name to a Series song_id -> value (missing shown as "unknown", grey).
    """
    methods, cols = list(points), list(labels)
    fig, axes = _new_fig(3.3 * len(cols), 3.0 * len(methods) + 0.4, len(methods), len(cols))
    for j, lab in enumerate(cols):
        for i, method in enumerate(methods):
            pts = points[method]
            vals = (
                pts["song_id"]
                .map(labels[lab])
                .astype(object)
                .where(lambda s: s.notna(), "unknown")
                .astype(str)
            )
            cats = sorted(vals.unique(), key=lambda c: (c == "unknown", natural_key(c)))
            styles = category_styles(cats)
            ax = axes[i][j]
            for cat in cats:
                m = (vals == cat).to_numpy()
                colour, marker = styles[cat]
                ax.scatter(
                    pts["x"].to_numpy()[m],
                    pts["y"].to_numpy()[m],
                    s=14,
                    marker=marker,
                    label=cat,
                    c="#BBBBBB" if cat == "unknown" else colour,
                    alpha=0.85,
                    linewidths=0,
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"coloured by {lab}")
            if j == 0:
                ax.set_ylabel(METHOD_NAMES[method])
            if i == len(methods) - 1:
                ax.legend(
                    loc="upper center",
                    bbox_to_anchor=(0.5, -0.04),
                    ncol=min(4, len(cats)),
                    frameon=False,
                    markerscale=1.4,
                    handletextpad=0.2,
                    columnspacing=0.8,
                )
    fig.suptitle(title, fontsize=12)
    return fig


def training_curve(key: str, history: pd.DataFrame) -> Figure:
    """Validation loss (``val_total``) of one model against optimizer steps, on its own scale.

    One figure per model (the report lays them out in a grid), so an experiment that re-trains
    one model redraws one. Thin lines: each seed; thick line: their mean at each step (drawn
    only, never reported).
    """
    fig, axes = _new_fig(3.4, 2.6)
    ax = axes[0][0]
    for _, g in history.groupby("seed", sort=True):
        ax.plot(g["step"], g["val_total"], color=OKABE_ITO[0], lw=0.8, alpha=0.35)
    mean = history.groupby("step", sort=True)["val_total"].mean()
    ax.plot(mean.index, mean.to_numpy(), color=OKABE_ITO[0], lw=1.8)
    ax.set_title(key)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation loss")
    return fig


def ranking_bars(rows: Sequence[Mapping[str, object]], label: str, ci: float) -> Figure:
    """Horizontal NMI bars with the evaluation's interval as whiskers, best rank on top.

    Dark blue: the winner; light blue: not separable from it; grey: separable (worse), or not
    ranked (a label without a winner, a model that saw the label). No whisker where the evaluation
    wrote no interval.
    """
    n = len(rows)
    fig, axes = _new_fig(6.4, 0.32 * n + 1.2)
    ax = axes[0][0]
    y = np.arange(n)[::-1]
    nmi = np.array([float(r["nmi"]) for r in rows])
    low = np.array([float(r["nmi"] if r["nmi_low"] is None else r["nmi_low"]) for r in rows])
    high = np.array([float(r["nmi"] if r["nmi_high"] is None else r["nmi_high"]) for r in rows])
    err = np.array([nmi - low, high - nmi])
    colours = [
        OKABE_ITO[0]
        if r["rank"] == 1
        else ("#BBBBBB" if r["rank"] is None or r["separable_from_winner"] else "#9ecae1")
        for r in rows
    ]
    ax.barh(y, nmi, color=colours, xerr=err, error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333333"})
    ax.set_yticks(y, [str(r["representation"]) for r in rows])
    ax.set_xlabel(f"NMI with {label} (test songs; whiskers: {ci:.0%} interval)")
    ax.set_xlim(left=0)
    return fig


def reconstruction_figure(
    original: np.ndarray, recon: np.ndarray, title: str, names: Sequence[str]
) -> Figure:
    """Original vs reconstructed inputs for a few clips.

    2-D items (n_mels x frames) are shown as images side by side on a shared colour scale;
    1-D items (feature vectors) as two lines per clip.
    """
    n = len(original)
    if original.ndim >= 3:
        fig, axes = _new_fig(6.5, 1.9 * n + 0.5, n, 2)
        for i in range(n):
            a, b = original[i], recon[i]
            vmin, vmax = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
            for j, (img, what) in enumerate(((a, "original"), (b, "reconstructed"))):
                ax = axes[i][j]
                im = ax.imshow(img, origin="lower", aspect="auto", cmap=SEQUENTIAL_CMAP, vmin=vmin, vmax=vmax)
                ax.set_title(f"{names[i]}: {what}", fontsize=9)
                ax.set_xlabel("frame")
                ax.set_ylabel("mel band")
            fig.colorbar(im, ax=axes[i].tolist(), shrink=0.8)
    else:
        fig, axes = _new_fig(6.5, 1.6 * n + 0.5, n, 1)
        for i in range(n):
            ax = axes[i][0]
            ax.plot(original[i], color=OKABE_ITO[0], lw=1.3, label="original")
            ax.plot(recon[i], color=OKABE_ITO[3], lw=1.3, ls="--", label="reconstructed")
            ax.set_title(names[i], fontsize=9)
            ax.set_ylabel("value (standardized)")
        axes[-1][0].set_xlabel("feature index")
        axes[0][0].legend(frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2)
    fig.suptitle(title, fontsize=12)
    return fig
