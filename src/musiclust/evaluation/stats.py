"""Uncertainty over seeds: Student-t intervals and paired t-tests.

Every reported number is a mean over training/clustering seeds. The interval is
``mean +/- t_{(1+ci)/2, n-1} * sd / sqrt(n)`` (t over seeds, not a bootstrap);
with a single seed it is undefined (NaN) and says so rather than pretending to
be zero-width.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """Mean over seeds with a two-sided Student-t confidence interval."""

    mean: float
    low: float
    high: float
    half_width: float
    n: int


@functools.lru_cache(maxsize=256)
def t_quantile(n: int, ci: float = 0.95) -> float:
    """Two-sided Student-t quantile for ``n`` values (``n - 1`` df); NaN below two values."""
    return float(stats.t.ppf((1.0 + ci) / 2.0, n - 1)) if n >= 2 else float("nan")


def t_interval(values: np.ndarray, ci: float = 0.95) -> Interval:
    """Mean of ``values`` (NaNs ignored) with its ``ci`` Student-t interval."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, nan, 0)
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, float("nan"), float("nan"), float("nan"), 1)
    half = float(t_quantile(n, ci) * v.std(ddof=1) / np.sqrt(n))
    return Interval(mean, mean - half, mean + half, half, n)


@dataclass(frozen=True)
class PairedTest:
    """Paired t-test of ``a - b`` over matched seeds."""

    mean_diff: float
    t: float
    p_value: float
    n: int


def paired_t_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Two-sided paired t-test of ``a`` against ``b`` (same seeds, same order).

    Pairs with a NaN on either side are dropped. Fewer than two pairs give
    p = NaN. When every difference is identical (zero spread, e.g. two
    deterministic methods) the test is degenerate: p = 0 if the difference is
    non-zero, 1 if it is zero.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have equal length, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = len(d)
    if n == 0:
        return PairedTest(float("nan"), float("nan"), float("nan"), 0)
    mean = float(d.mean())
    if n < 2:
        return PairedTest(mean, float("nan"), float("nan"), n)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        if abs(mean) <= 1e-12:
            return PairedTest(mean, 0.0, 1.0, n)
        return PairedTest(mean, float(np.copysign(np.inf, mean)), 0.0, n)
    t = mean / (sd / np.sqrt(n))
    p = float(2.0 * stats.t.sf(abs(t), n - 1))
    return PairedTest(mean, float(t), p, n)
