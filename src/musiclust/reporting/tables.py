"""Shape the evaluation's per-seed table for the report: tidy rows, means with intervals, marks.

The evaluation stage writes one row per representation x algorithm x label x level x seed (wide:
one column per metric, or long: ``metric``/``value``). The report shows the mean over seeds with
a t interval over seeds, and a significance mark from the evaluation's own paired test when it
wrote one; otherwise it runs the same paired t-test over seeds against the best baseline and says
so in the table caption.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from musiclust.reporting.inputs import METRIC_ID_COLUMNS

#: Baseline representations (the rest are trained models).
BASELINES = ("raw", "pca", "spectral_features", "lyrics")
#: Metrics in the order a reader expects them; anything else follows alphabetically.
METRIC_ORDER = (
    "nmi", "ari", "v_measure", "homogeneity", "completeness", "purity", "accuracy",
    "silhouette", "calinski_harabasz", "davies_bouldin", "noise_fraction",
)
#: Metrics where smaller is better.
LOWER_IS_BETTER = ("davies_bouldin",)
#: Metrics that do not depend on a label column.
LABEL_FREE = ("silhouette", "calinski_harabasz", "davies_bouldin", "noise_fraction")
GROUP_KEYS = ("representation", "algorithm", "label", "level", "subset")


def tidy_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """Long form: the id columns of :data:`GROUP_KEYS` plus ``seed``, ``metric``, ``value``.

    Accepts a wide table (one numeric column per metric) or an already long one. Missing id
    columns are filled (``label`` "-" for label-free metrics, ``level``/``subset`` "all"),
    so later grouping never drops rows on NaN keys.
    """
    df = table.copy()
    if "split" in df.columns and "subset" not in df.columns:
        df = df.rename(columns={"split": "subset"})
    for alt in ("eval_on", "scope"):
        if alt in df.columns and "subset" not in df.columns:
            df = df.rename(columns={alt: "subset"})
    if not {"metric", "value"} <= set(df.columns):
        ids = [c for c in df.columns if c in METRIC_ID_COLUMNS]
        metric_cols = [c for c in df.columns if c not in ids and pd.api.types.is_numeric_dtype(df[c])]
        df = df.melt(id_vars=ids, value_vars=metric_cols, var_name="metric", value_name="value")
    for col, default in (("representation", "?"), ("algorithm", "kmeans"), ("label", "-"),
                         ("level", "all"), ("subset", "all"), ("seed", 0)):
        if col not in df.columns:
            df[col] = default
        df[col] = df[col].fillna(default)
    df["metric"] = df["metric"].astype(str).str.lower()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df = df.dropna(subset=["value"])
    keep = [*GROUP_KEYS, "seed", "metric", "value"]
    return df[keep].reset_index(drop=True)


def t_interval(values: Iterable[float], ci: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t interval over seeds; the interval is NaN with fewer than two values."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + ci / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half


def summarize(tidy: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Mean over seeds with a t interval: one row per group and metric."""
    rows = []
    for key, g in tidy.groupby([*GROUP_KEYS, "metric"], sort=False):
        m, lo, hi = t_interval(g["value"], ci)
        rows.append({**dict(zip([*GROUP_KEYS, "metric"], key)), "mean": m, "lo": lo, "hi": hi,
                     "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)


def paired_marks(tidy: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Paired t-test over seeds of every model against the best baseline, per group and metric.

    Returns rows ``(*GROUP_KEYS minus representation, metric, representation, baseline,
    p_value, better)``; ``better`` is True/False when significant at ``alpha`` and None when not
    (or when there are fewer than two shared seeds).
    """
    out = []
    inner = [k for k in GROUP_KEYS if k != "representation"]
    for key, g in tidy.groupby([*inner, "metric"], sort=False):
        metric = key[-1]
        base = g[g["representation"].isin(BASELINES)]
        if base.empty:
            continue
        means = base.groupby("representation")["value"].mean()
        best = means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax()
        bvals = base[base["representation"] == best].groupby("seed")["value"].mean()
        for rep, rg in g[~g["representation"].isin(BASELINES)].groupby("representation"):
            mvals = rg.groupby("seed")["value"].mean()
            shared = mvals.index.intersection(bvals.index)
            p, better = math.nan, None
            if len(shared) >= 2:
                d = mvals[shared].to_numpy() - bvals[shared].to_numpy()
                if np.allclose(d, d[0]):
                    p = 0.0 if abs(d[0]) > 1e-12 else 1.0  # no spread: the test is degenerate
                else:
                    p = float(stats.ttest_rel(mvals[shared], bvals[shared]).pvalue)
                if p < alpha:
                    diff = float(d.mean())
                    better = diff < 0 if metric in LOWER_IS_BETTER else diff > 0
            out.append({**dict(zip([*inner, "metric"], key)), "representation": rep, "baseline": best,
                        "p_value": p, "better": better})
    return pd.DataFrame(out)


def order_metrics(metrics: Iterable[str]) -> list[str]:
    """Sort metric names in the reader's order (:data:`METRIC_ORDER` first)."""
    ms = list(dict.fromkeys(metrics))
    known = [m for m in METRIC_ORDER if m in ms]
    return known + sorted(m for m in ms if m not in METRIC_ORDER)


def order_representations(reps: Iterable[str], baselines: Iterable[str] = BASELINES) -> list[str]:
    """Baselines first (known ones in :data:`BASELINES` order), then models alphabetically."""
    rs = list(dict.fromkeys(reps))
    base = set(baselines)
    first = [b for b in BASELINES if b in rs and b in base] + sorted(r for r in rs if r in base and r not in BASELINES)
    return first + sorted(r for r in rs if r not in base)


def fmt_interval(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.512 [0.481, 0.543]``, or just the mean when there is no interval."""
    if not np.isfinite(mean):
        return "-"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{mean:.{digits}f}"


def summary_from_means(means: pd.DataFrame) -> pd.DataFrame:
    """The evaluation's ``means.csv`` (``<metric>``, ``<metric>_low``, ``<metric>_high`` columns)
    in the long form of :func:`summarize`, so its own intervals are shown, not recomputed."""
    df = means.rename(columns={"scope": "subset"}) if "scope" in means.columns else means.copy()
    for col, default in (("algorithm", "kmeans"), ("label", "-"), ("level", "all"), ("subset", "all")):
        if col not in df.columns:
            df[col] = default
    metrics = [c for c in df.columns if f"{c}_low" in df.columns and f"{c}_high" in df.columns]
    rows = []
    for m in metrics:
        part = df[[*GROUP_KEYS, m, f"{m}_low", f"{m}_high"]].copy()
        part.columns = [*GROUP_KEYS, "mean", "lo", "hi"]
        part["metric"] = m.lower()
        part["n_seeds"] = df["n_seeds"] if "n_seeds" in df.columns else np.nan
        rows.append(part)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.dropna(subset=["mean"]).reset_index(drop=True) if len(out) else out


def marks_from_comparisons(comparisons: list[dict]) -> pd.DataFrame:
    """The evaluation's paired tests (``summary.json`` ``comparisons``) in the form of :func:`paired_marks`."""
    rows = []
    for c in comparisons:
        verdict = c.get("verdict")
        rows.append({"algorithm": c.get("algorithm"), "label": c.get("label"), "level": c.get("level"),
                     "subset": c.get("scope", c.get("subset")), "metric": str(c.get("metric", "nmi")).lower(),
                     "representation": c.get("representation"), "baseline": c.get("baseline"),
                     "p_value": float(c["p_value"]) if c.get("p_value") is not None else math.nan,
                     "better": True if verdict == "better" else False if verdict == "worse" else None})
    return pd.DataFrame(rows)
