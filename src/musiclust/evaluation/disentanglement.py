"""Disentanglement of a model's latents against each label: the Mutual Information Gap.

MIG (Chen, Li, Grosse, Duvenaud 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders", NeurIPS) asks whether one latent dimension, and only one, carries a label: each
latent dimension is discretized, its mutual information with the label computed, and

    MIG = (I(z_top; y) - I(z_second; y)) / H(y)

where ``z_top`` and ``z_second`` are the dimensions with the largest and second-largest mutual
information. 1: a single dimension carries all of the label; 0: no dimension does, or two carry
it equally. As in the paper's reference code (and ``disentanglement_lib``), each dimension is
cut into :data:`MIG_BINS` equal-width bins and the plug-in estimate of the mutual information of
the two discrete variables is used. Here the bins are fit on the training clips (values outside
their range go to the end bins) and the information is measured on the held-out test clips.

A latent with a single dimension has no second dimension: its gap is measured to zero.
The plug-in estimate is biased upwards by about ``(bins - 1)(classes - 1) / 2n`` nats; the
bias is shared by the top and the second dimension, so it mostly cancels in the gap.

Only model latents are scored (a baseline has no latent axes to disentangle). The rows are
written beside the clusterings by :mod:`musiclust.evaluation.scores` (contract:
``disentanglement.parquet``) and averaged over seeds by ``evaluate``
(:func:`musiclust.ranking.aggregate.summarize_mig`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from musiclust.contracts.clusters import DISENTANGLEMENT_COLUMNS, VECTOR_META

#: bins per latent dimension (Chen et al.'s and disentanglement_lib's choice)
MIG_BINS = 20
#: ``equal_width`` (the reference) or ``equal_frequency`` (quantiles of the training values)
MIG_BINNING = "equal_width"
#: the clips whose mutual information is measured (bins are fit on ``train``)
MIG_SCOPE = "test"
#: the method in words (summary.json ``disentanglement_method``, results.md)
METHOD = (
    f"Mutual Information Gap (Chen et al. 2018) of each latent dimension against the label: "
    f"{MIG_BINS} {MIG_BINNING.replace('_', '-')} bins per dimension fit on the training clips, "
    f"plug-in mutual information on the {MIG_SCOPE} clips, (top - second) / H(label); 1 = one "
    "dimension alone carries the label, 0 = none or several equally"
)


def bin_edges(x: np.ndarray, n_bins: int = MIG_BINS, strategy: str = MIG_BINNING) -> list[np.ndarray]:
    """Inner bin edges of each column of ``x`` (n, d), fit on these rows.

    ``equal_width``: ``n_bins`` bins of equal width between the column's min and max;
    ``equal_frequency``: edges at the column's quantiles (repeated edges merged, so a column
    with few distinct values gets fewer bins). A constant column gets a single bin.
    """
    if n_bins < 2:
        raise ValueError(f"MIG needs at least 2 bins per dimension, got {n_bins}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"bin_edges: need a non-empty (n, d) array, got shape {x.shape}")
    edges = []
    for col in np.asarray(x, dtype=np.float64).T:
        if strategy == "equal_width":
            lo, hi = float(col.min()), float(col.max())
            inner = np.linspace(lo, hi, n_bins + 1)[1:-1] if hi > lo else np.empty(0)
        elif strategy == "equal_frequency":
            inner = np.unique(np.quantile(col, np.linspace(0, 1, n_bins + 1)[1:-1]))
            inner = inner[(inner > col.min()) & (inner <= col.max())]
        else:
            raise ValueError(f"unknown binning {strategy!r} (equal_width, equal_frequency)")
        edges.append(inner)
    return edges


def discretize(x: np.ndarray, edges: Sequence[np.ndarray]) -> np.ndarray:
    """Bin index of every value of ``x`` (n, d) under ``edges`` (one array of inner edges per column).

    Bins are right-closed ``(e_i, e_(i+1)]`` except the first; values below the first edge or above
    the last fall in the end bins.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] != len(edges):
        raise ValueError(f"discretize: {x.shape[1]} columns but {len(edges)} sets of edges")
    return np.stack([np.searchsorted(e, x[:, j], side="left") for j, e in enumerate(edges)], axis=1)


def entropy(codes: np.ndarray) -> float:
    """Entropy (nats) of a discrete variable given as integer codes."""
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two discrete variables given as integer codes."""
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"mutual_information: need two equal, non-empty arrays, got {len(a)} and {len(b)}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    p = joint / joint.sum()
    pa, pb = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    nz = p > 0
    return max(0.0, float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum()))


@dataclass(frozen=True)
class Mig:
    """The MIG of one latent against one label, with what it was made of."""

    mig: float
    top_dim: int
    second_dim: int  # -1: the latent has a single dimension
    top_mi: float  # nats
    second_mi: float
    label_entropy: float
    mi: tuple[float, ...]  # per dimension


def mig_from_codes(z_codes: np.ndarray, y: np.ndarray) -> Mig:
    """MIG of discretized latents ``z_codes`` (n, d) against label codes ``y`` (n,).

    Ties between dimensions go to the lower index. Raises ValueError when ``y`` holds fewer
    than two classes (H(y) = 0: the gap is undefined).
    """
    z_codes = np.asarray(z_codes)
    y = np.asarray(y)
    if z_codes.ndim != 2 or z_codes.shape[0] != len(y) or z_codes.shape[1] == 0:
        raise ValueError(f"mig: latent codes of shape {z_codes.shape} do not match {len(y)} labels")
    h = entropy(y)
    if len(np.unique(y)) < 2:
        raise ValueError("mig: the label has fewer than two classes here (its entropy is 0)")
    mi = np.array([mutual_information(z_codes[:, j], y) for j in range(z_codes.shape[1])])
    order = np.argsort(-mi, kind="stable")
    top = int(order[0])
    second = int(order[1]) if len(order) > 1 else -1
    second_mi = float(mi[second]) if second >= 0 else 0.0
    return Mig(
        mig=float((mi[top] - second_mi) / h),
        top_dim=top,
        second_dim=second,
        top_mi=float(mi[top]),
        second_mi=second_mi,
        label_entropy=h,
        mi=tuple(float(v) for v in mi),
    )


def mig(
    z: np.ndarray,
    y: np.ndarray,
    fit: np.ndarray | None = None,
    measure: np.ndarray | None = None,
    n_bins: int = MIG_BINS,
    strategy: str = MIG_BINNING,
) -> Mig:
    """MIG of continuous latents ``z`` (n, d) against label codes ``y`` (n,).

    Bins are fit on the rows ``fit`` (boolean mask; all rows when None) and the information is
    measured on the rows ``measure`` (all when None).
    """
    z = np.asarray(z, dtype=np.float64)
    fit = np.ones(len(z), bool) if fit is None else np.asarray(fit, bool)
    measure = np.ones(len(z), bool) if measure is None else np.asarray(measure, bool)
    edges = bin_edges(z[fit], n_bins, strategy)
    return mig_from_codes(discretize(z[measure], edges), np.asarray(y)[measure])


def disentanglement_rows(
    name: str, latents: pd.DataFrame, clip_labels: Mapping[str, pd.Series]
) -> pd.DataFrame:
    """MIG of each seed's clip latents against each label (:data:`DISENTANGLEMENT_COLUMNS`).

    ``latents``: clip rows with :data:`VECTOR_META` and one column per latent dimension;
    ``clip_labels``: label -> class codes (-1 unknown) indexed by segment_id. Bins are fit on the
    seed's training clips, the information measured on its :data:`MIG_SCOPE` clips with a known
    class; a label with fewer than two classes there gets no row.
    """
    cols = [c for c in latents.columns if c not in VECTOR_META]
    rows = []
    for seed, block in latents.groupby("seed", sort=True):
        split = block["split"].astype(str).to_numpy()
        train = split == "train"
        if train.sum() < 2:
            continue
        x = block[cols].to_numpy(np.float64)
        edges = bin_edges(x[train], MIG_BINS, MIG_BINNING)
        scope = split == MIG_SCOPE
        codes = discretize(x[scope], edges)
        unit_ids = block["unit_id"].astype(str).to_numpy()[scope]
        for label, by_clip in clip_labels.items():
            y = by_clip.reindex(unit_ids).fillna(-1).to_numpy(np.int64)
            known = y >= 0
            if len(np.unique(y[known])) < 2:
                continue
            m = mig_from_codes(codes[known], y[known])
            rows.append(
                {
                    "representation": name,
                    "seed": int(seed),
                    "label": label,
                    "mig": m.mig,
                    "top_dim": cols[m.top_dim],
                    "second_dim": cols[m.second_dim] if m.second_dim >= 0 else "",
                    "top_mi": m.top_mi,
                    "second_mi": m.second_mi,
                    "label_entropy": m.label_entropy,
                    "n_units": int(known.sum()),
                    "n_bins": MIG_BINS,
                }
            )
    return pd.DataFrame(rows, columns=DISENTANGLEMENT_COLUMNS)
