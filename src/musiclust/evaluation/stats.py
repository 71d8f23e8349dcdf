"""Uncertainty: a percentile bootstrap over test songs, paired across representations, seeds drawn with it.

Every headline number is a mean over training seeds on the test songs. How sure it is depends
first on *which* songs happen to be in the test split (18 songs on the demo) and then on the
seed, so each bootstrap resample ``b`` draws the test songs with replacement *and* one of the
seeds; the interval is the percentile interval of the metric over resamples. The same resamples
(:class:`ResamplePlan`) serve every representation, so a difference between two methods is judged
on the same songs (paired), and its own interval says whether the two can be told apart.

Clip-level scores resample songs too (a song's clips go in or out together): clips of one song
are not independent draws. The cluster stage computes the per-resample values here; the intervals
and paired differences taken from them are the ``evaluate`` stage's
(:mod:`musiclust.ranking.intervals`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ResamplePlan:
    """``n`` bootstrap resamples of ``n_songs`` test songs, and a uniform draw that picks a seed."""

    song_index: np.ndarray  # (B, n_songs) int: the songs of each resample (with replacement)
    seed_draw: np.ndarray  # (B,) float in [0, 1): resample b uses seed floor(draw * n_seeds)

    @property
    def n(self) -> int:
        return int(self.song_index.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """(B, n_songs) multiplicity of each song in each resample."""
        b, n = self.song_index.shape
        w = np.zeros((b, n), dtype=np.float64)
        np.add.at(w, (np.repeat(np.arange(b), n), self.song_index.ravel()), 1.0)
        return w

    def seed_pick(self, n_seeds: int) -> np.ndarray:
        """(B,) index of the seed each resample uses, for a method with ``n_seeds`` seeds."""
        return np.minimum((self.seed_draw * n_seeds).astype(np.int64), max(n_seeds - 1, 0))


def resample_plan(n_songs: int, n_boot: int, seed: int = 0) -> ResamplePlan:
    """The resamples shared by every method (deterministic for a given ``seed``)."""
    rng = np.random.default_rng(seed)
    idx = (
        rng.integers(0, max(n_songs, 1), size=(n_boot, n_songs))
        if n_songs
        else np.zeros((n_boot, 0), np.int64)
    )
    return ResamplePlan(idx, rng.random(n_boot))


def batch_nmi(tables: np.ndarray) -> np.ndarray:
    """NMI (arithmetic mean, scikit-learn's definition) of each contingency table in ``tables`` (B, C, K).

    Vectorised over resamples because the bootstrap needs thousands of them per method; a test
    checks it against ``sklearn.metrics.normalized_mutual_info_score``.
    """
    t = np.asarray(tables, dtype=np.float64)
    n = t.sum(axis=(1, 2))
    safe_n = np.where(n > 0, n, 1.0)
    p = t / safe_n[:, None, None]
    pr, pc = p.sum(axis=2), p.sum(axis=1)

    def entropy(q: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(q > 0, q * np.log(q), 0.0).sum(axis=1)

    hr, hc = entropy(pr), entropy(pc)
    outer = pr[:, :, None] * pc[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.where(p > 0, p * np.log(p / np.where(outer > 0, outer, 1.0)), 0.0).sum(axis=(1, 2))
    mi = np.maximum(mi, 0.0)
    k_r, k_c = (pr > 0).sum(axis=1), (pc > 0).sum(axis=1)
    denom = (hr + hc) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = np.where(denom > 0, mi / denom, 0.0)
    # sklearn: one class and one cluster (or no points) is a perfect match
    nmi = np.where((k_r <= 1) & (k_c <= 1), 1.0, nmi)
    return np.clip(nmi, 0.0, 1.0)
