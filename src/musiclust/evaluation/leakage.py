"""Leakage audit: does any single input column predict a label almost on its own?

Published numbers on this task were inflated by inputs that carried the label
(a clip-length column that differed by source dataset, say). Before any score
is read, every column of every clustered representation is tested alone: the
column is cut into equal-frequency bins on the training songs, each bin
predicts the majority label of its training units, and the balanced accuracy
of that one-column classifier is measured on the held-out songs (val + test).
A column at or above the threshold is flagged. Binning (rather than a tree per
column) scores all columns of a representation in a few array operations and
also catches non-monotone relations.

A flag means "this label is readable from one number": either leakage or a
label so easy that clustering scores on it say little. Either way a reader
must know before trusting the scores.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnScore:
    column: str
    label: str
    balanced_accuracy: float
    n_eval: int
    evaluated_on: str  # "held_out" or "train" (when no held-out unit has the label)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (integer codes)."""
    present = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in present if c < n_classes]
    return float(np.mean(recalls)) if recalls else float("nan")


def single_column_scores(
    x: np.ndarray,
    columns: Sequence[str],
    y: np.ndarray,
    train_mask: np.ndarray,
    label: str,
    n_bins: int = 16,
) -> list[ColumnScore]:
    """Balanced accuracy of each column of ``x`` alone at predicting ``y``.

    ``y`` may contain ``None``/NaN (unlabelled units are left out). Units in
    ``train_mask`` set the bins and their majority labels; the others are
    scored (in-sample, and said so, when nothing is held out). Labels with
    fewer than two classes among the labelled units are not auditable (empty list).
    """
    x = np.asarray(x, dtype=np.float64)
    y = pd.Series(np.asarray(y, dtype=object)).astype(object)
    known = (y.notna() & (y.astype(str) != "")).to_numpy()
    if len(pd.unique(y[known])) < 2:
        return []
    codes = np.full(len(y), -1)
    codes[known], classes = pd.factorize(y[known].astype(str), sort=True)
    n_classes = len(classes)
    fit = known & np.asarray(train_mask, bool)
    held = known & ~np.asarray(train_mask, bool)
    where = "held_out"
    if held.sum() == 0 or len(np.unique(codes[fit])) < 2:
        # too small to hold out: an in-sample score is still an upper bound worth flagging
        fit = held = known
        where = "train"
    finite = np.isfinite(x).all(axis=0)
    for j in np.flatnonzero(~finite):
        log.warning("leakage audit: column %s has non-finite values; not audited for %s", columns[j], label)
    out = []
    xf, xh = x[fit], x[held]
    yf, yh = codes[fit], codes[held]
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    for j in np.flatnonzero(finite):
        edges = np.unique(np.quantile(xf[:, j], qs))
        bf = np.searchsorted(edges, xf[:, j], side="right")
        bh = np.searchsorted(edges, xh[:, j], side="right")
        counts = np.zeros((len(edges) + 1, n_classes))
        np.add.at(counts, (bf, yf), 1)
        # each bin predicts its majority training label (the overall majority for empty bins)
        majority = counts.argmax(axis=1)
        majority[counts.sum(axis=1) == 0] = np.bincount(yf, minlength=n_classes).argmax()
        score = balanced_accuracy(yh, majority[bh], n_classes)
        out.append(ColumnScore(columns[j], label, score, int(held.sum()), where))
    return out
