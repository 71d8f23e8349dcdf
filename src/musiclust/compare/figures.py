"""Figures of the experiment comparison: frames (from :mod:`musiclust.compare.frames`) -> PNG bytes.

Uses matplotlib's object API (``Figure``, no pyplot state) and writes PNGs without a software or
date stamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from musiclust.compare.frames import is_number  # noqa: E402

# Okabe-Ito, readable for colour-blind readers
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (no metadata, deterministic)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _numeric(values: pd.Series) -> bool:
    return all(is_number(v) and not math.isnan(v) for v in values)


def curve_figure(curves: pd.DataFrame, param: str, label: str, metric: str = "nmi") -> Figure:
    """``metric`` on ``label`` against ``param``: one line with interval bars per representation and series.

    ``curves``: :func:`frames.metric_vs_param` frames concatenated with a ``representation`` column.
    A numeric param is drawn on a numeric axis (logarithmic when it spans a factor of 8 or more,
    as a beta sweep 1..16 does); anything else on evenly spaced categories.
    """
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    values = curves["value"]
    numeric = _numeric(values)
    if numeric:
        positions = {v: float(v) for v in values}
        lo, hi = min(positions.values()), max(positions.values())
        if lo > 0 and hi / lo >= 8:
            ax.set_xscale("log", base=2)
        ticks = sorted(set(positions.values()))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    else:
        cats = list(dict.fromkeys(str(v) for v in values))
        positions = {v: float(cats.index(str(v))) for v in values}
        ax.set_xticks(range(len(cats)), cats)
    groups = list(curves.groupby(["representation", "series"], sort=True))
    for i, ((rep, series), g) in enumerate(groups):
        x = np.array([positions[v] for v in g["value"]])
        y = g["metric"].to_numpy(float)
        err = np.vstack([y - g["low"].to_numpy(float), g["high"].to_numpy(float) - y])
        name = rep if not series else f"{rep} ({series})"
        ax.errorbar(
            x,
            y,
            yerr=None if np.isnan(err).all() else np.nan_to_num(err),
            capsize=4,
            marker=MARKERS[i % len(MARKERS)],
            color=PALETTE[i % len(PALETTE)],
            label=name,
        )
    ax.set_xlabel(param)
    ax.set_ylabel(f"{metric.upper()} ({label})")
    ax.set_title(f"{metric.upper()} on {label} against {param} (bars: interval)")
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(fontsize=8)
    return fig


def maps_figure(
    grid: Mapping[str, Mapping[str, pd.DataFrame]],
    method: str,
    colour: Mapping[str, str] | None = None,
    colour_name: str = "",
) -> Figure:
    """Latent maps side by side: one row per representation, one column per experiment.

    ``grid``: representation -> experiment -> map rows (``x``, ``y``, ``song_id``); ``colour``
    maps song_id to a label value (points of unknown songs are grey).
    """
    reps = list(grid)
    exps = list(dict.fromkeys(e for r in reps for e in grid[r]))
    fig = Figure(figsize=(2.8 * max(len(exps), 1) + 1.2, 2.7 * max(len(reps), 1)), layout="constrained")
    axes = fig.subplots(max(len(reps), 1), max(len(exps), 1), squeeze=False)
    classes = sorted(set(colour.values())) if colour else []
    for r, rep in enumerate(reps):
        for c, exp in enumerate(exps):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            frame = grid[rep].get(exp)
            if frame is None:
                ax.set_title(f"{exp}\n(no map)", fontsize=9)
                continue
            cls = [colour.get(s) if colour else None for s in frame["song_id"]]
            col = [PALETTE[classes.index(k) % len(PALETTE)] if k in classes else "#999999" for k in cls]
            ax.scatter(frame["x"], frame["y"], c=col, s=12, linewidths=0)
            note = frame["note"].dropna().unique() if "note" in frame else []
            ax.set_title(f"{exp}" + (f"\n{note[0]}" if len(note) else ""), fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{rep} ({method})", fontsize=9)
    if classes:
        handles = [
            Line2D([], [], marker="o", ls="", color=PALETTE[i % len(PALETTE)], label=k)
            for i, k in enumerate(classes)
        ]
        fig.legend(handles=handles, title=colour_name, loc="outside right upper", fontsize=8)
    return fig


def ranking_figure(headline: pd.DataFrame, ranking: pd.DataFrame, label: str) -> Figure:
    """Headline NMI with its interval per representation (rows, in ranking order), one marker per experiment."""
    exps = [c for c in ranking.columns if c != "mean" and not c.startswith("rank_")]
    reps = list(ranking.index)
    fig = Figure(figsize=(8.0, 0.38 * len(reps) + 1.6), layout="constrained")
    ax = fig.subplots()
    sub = headline[headline["label"] == label].set_index(["representation", "experiment"])
    width = 0.6 / max(len(exps), 1)
    for j, exp in enumerate(exps):
        ys, xs, lo, hi = [], [], [], []
        for i, rep in enumerate(reps):
            if (rep, exp) not in sub.index:
                continue
            row = sub.loc[(rep, exp)]
            ys.append(i - 0.3 + width * (j + 0.5))
            xs.append(row["nmi"])
            lo.append(row["nmi"] - row["nmi_low"])
            hi.append(row["nmi_high"] - row["nmi"])
        ax.errorbar(
            xs,
            ys,
            xerr=np.nan_to_num(np.array([lo, hi], dtype=float)),
            ls="",
            capsize=2,
            marker=MARKERS[j % len(MARKERS)],
            color=PALETTE[j % len(PALETTE)],
            label=exp,
        )
    ax.set_yticks(range(len(reps)), reps)
    ax.invert_yaxis()
    ax.set_xlabel(f"headline NMI ({label})")
    ax.set_title(f"Representations on {label}, best first (mean over experiments)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")
    return fig


def loss_nmi_figure(frame: pd.DataFrame, label: str) -> Figure:
    """Best validation loss (x) against headline NMI (y): one panel per model, one point per experiment.

    One panel per model because losses of different models (inputs, KL weights) are not on one scale.
    """
    models = sorted(frame["representation"].unique())
    ncols = min(max(len(models), 1), 4)
    nrows = max(math.ceil(len(models) / ncols), 1)
    fig = Figure(figsize=(max(3.2 * ncols, 5.0), 2.8 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, rep in zip(axes, models):
        g = frame[frame["representation"] == rep]
        y = g["nmi"].to_numpy(float)
        err = np.vstack([y - g["nmi_low"].to_numpy(float), g["nmi_high"].to_numpy(float) - y])
        ax.errorbar(
            g["best_val_loss"], y, yerr=np.nan_to_num(err), ls="", capsize=3, marker="o", color=PALETTE[0]
        )
        for x, yy, exp in zip(g["best_val_loss"], y, g["experiment"]):
            ax.annotate(str(exp), (x, yy), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(rep, fontsize=10)
        ax.set_xlabel("best val loss", fontsize=8)
        ax.set_ylabel(f"NMI ({label})", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(models) :]:
        ax.set_visible(False)
    fig.suptitle(f"Best validation loss against NMI ({label})", fontsize=10)
    return fig
