"""Intervals from bootstrap values, and whether a difference interval tells two methods apart.

The values are the per-resample scores the cluster stage wrote (:mod:`musiclust.evaluation.stats`
says how the resamples are drawn: test songs with replacement, one seed per resample, the same
resamples for every representation).
"""

from __future__ import annotations

import numpy as np


def percentile_interval(values: np.ndarray, ci: float, estimate: float | None = None) -> tuple[float, float]:
    """``ci`` percentile interval of bootstrap ``values`` (NaNs ignored; NaN when none is finite).

    With ``estimate``, the interval is widened to contain it. Mutual-information scores need this:
    a resample repeats songs, and repeated songs look more clustered than distinct ones, so the
    resampled NMI sits above the estimate (an audio model's language NMI of 0.000 had the plain
    percentile interval [0.02, 0.53]). Efron's bias correction would instead collapse such an
    interval onto the boundary ([0.000, 0.000]), claiming a certainty that 8 test songs do not give.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    if estimate is not None and np.isfinite(estimate):
        lo, hi = min(lo, estimate), max(hi, estimate)
    return float(lo), float(hi)


def separable(low: float, high: float) -> bool:
    """Whether a difference interval excludes zero (the two methods can be told apart)."""
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))
