"""Pure functions from experiments to the comparison's table and figure data (no DVC, no files).

An :class:`Experiment` is a name, a revision, its params (``params.yaml`` as a nested mapping)
and its ``metrics/headline.json`` (``{rep: {label: {nmi, nmi_low, nmi_high, ami}, silhouette,
best_val_loss}}``, see the evaluate contract). Everything below takes and returns frames, so it
is tested on synthetic experiments without a repository.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# per-label metrics of one representation in headline.json; the rest are per-representation numbers
LABEL_METRICS = ("nmi", "nmi_low", "nmi_high", "ami", "mig")
REP_METRICS = ("silhouette", "best_val_loss")
HEADLINE_COLUMNS = ["experiment", "representation", "label", *LABEL_METRICS, *REP_METRICS]


@dataclass(frozen=True)
class Experiment:
    """One revision to compare: ``name`` as shown (experiment name or branch), ``rev`` as DVC resolves it."""

    name: str
    rev: str
    params: Mapping[str, Any]
    headline: Mapping[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"models": {"vae": {"latent_dim": 8}}}`` -> ``{"models.vae.latent_dim": 8}``.

    Lists become their JSON text so that they compare and print as one value.
    """
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value))
        else:
            out[name] = value
    return out


def params_frame(experiments: Sequence[Experiment]) -> pd.DataFrame:
    """One row per experiment (index ``experiment``), one column per flattened param key."""
    rows = {e.name: flatten(e.params) for e in experiments}
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment names must be unique, got {names}")
    return pd.DataFrame.from_dict(rows, orient="index").reindex(names).rename_axis("experiment")


def is_number(value: Any) -> bool:
    """A real number that is not a bool (numpy scalars included: ``pandas`` hands out ``numpy.int64``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _same(a: Any, b: Any) -> bool:
    """Equal params: 4 and 4.0 are the same value (``-S beta=4`` writes an int over ``beta: 4.0``)."""
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    return a == b


def changed_params(params: pd.DataFrame) -> list[str]:
    """Param keys whose value is not the same in every experiment, in the frame's column order."""
    changed = []
    for col in params.columns:
        values = list(params[col])
        if any(not _same(values[0], v) for v in values[1:]):
            changed.append(col)
    return changed


def order_by_params(experiments: Sequence[Experiment]) -> list[Experiment]:
    """The first experiment (the baseline, as ``dvc exp show`` lists it) first, then the others by
    their changed params (numerically where numeric), then by name: a sweep reads in order."""
    if len(experiments) < 3:
        return list(experiments)
    params = params_frame(experiments)
    changed = changed_params(params)
    rest = sorted(
        experiments[1:], key=lambda e: (*(_sort_key(params.at[e.name, c]) for c in changed), e.name)
    )
    return [experiments[0], *rest]


def headline_frame(experiments: Sequence[Experiment]) -> pd.DataFrame:
    """Long table: one row per experiment x representation x label (columns ``HEADLINE_COLUMNS``).

    ``silhouette`` and ``best_val_loss`` belong to the representation and repeat on its label rows;
    ``best_val_loss`` is NaN for baselines. A value that is not a number is an error naming it.
    """
    rows = []
    for e in experiments:
        for rep, entry in sorted(e.headline.items()):
            if not isinstance(entry, Mapping):
                raise ValueError(
                    f"{e.name}: headline.json[{rep!r}] is {type(entry).__name__}, expected an object"
                )
            rep_values = {m: _number(entry.get(m), e.name, f"{rep}.{m}") for m in REP_METRICS}
            for label, scores in sorted(entry.items()):
                if label in REP_METRICS:
                    continue
                if not isinstance(scores, Mapping):
                    raise ValueError(
                        f"{e.name}: headline.json[{rep!r}][{label!r}] is not an object of scores"
                    )
                row = {"experiment": e.name, "representation": rep, "label": label}
                row.update({m: _number(scores.get(m), e.name, f"{rep}.{label}.{m}") for m in LABEL_METRICS})
                row.update(rep_values)
                rows.append(row)
    return pd.DataFrame(rows, columns=HEADLINE_COLUMNS).astype(
        {m: float for m in (*LABEL_METRICS, *REP_METRICS)}
    )


def _number(value: Any, experiment: str, key: str) -> float:
    if value is None:
        return math.nan
    if not is_number(value):
        raise ValueError(f"{experiment}: headline.json {key} = {value!r} is not a number")
    return float(value)


def labels_of(headline: pd.DataFrame) -> list[str]:
    """Label columns present in the headline table, sorted."""
    return sorted(headline["label"].unique())


def summary_table(
    params: pd.DataFrame, headline: pd.DataFrame, representations: Sequence[str] = ()
) -> pd.DataFrame:
    """The comparison table: one row per experiment, in ``params`` order.

    Columns: ``experiment``, each changed param, then per label ``<label> best`` (the
    representation with the highest headline NMI in that experiment; ties go to the name that
    sorts first) with its ``nmi``, ``nmi_low``, ``nmi_high``, then ``<rep> <label> nmi`` (and its
    interval) for each of ``representations``.
    """
    changed = changed_params(params)
    out = params[changed].copy()
    out.insert(0, "experiment", params.index)
    for label in labels_of(headline):
        sub = headline[headline["label"] == label].sort_values(
            ["experiment", "nmi", "representation"], ascending=[True, False, True]
        )
        best = sub.dropna(subset=["nmi"]).groupby("experiment", sort=False).head(1).set_index("experiment")
        out[f"{label} best"] = best["representation"].reindex(params.index)
        for m in ("nmi", "nmi_low", "nmi_high"):
            out[f"{label} {m}"] = best[m].reindex(params.index)
        for rep in representations:
            one = sub[sub["representation"] == rep].set_index("experiment")
            for m in ("nmi", "nmi_low", "nmi_high"):
                out[f"{rep} {label} {m}"] = one[m].reindex(params.index)
    return out.reset_index(drop=True)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Printable copy of :func:`summary_table`: each ``X nmi`` with its interval as ``0.412 [0.351, 0.470]``."""
    out = table.copy()
    for col in [c for c in table.columns if c.endswith(" nmi")]:
        low, high = table[f"{col}_low"], table[f"{col}_high"]
        out[col] = [
            "-"
            if pd.isna(v)
            else f"{v:.3f}" + ("" if pd.isna(lo) or pd.isna(hi) else f" [{lo:.3f}, {hi:.3f}]")
            for v, lo, hi in zip(table[col], low, high)
        ]
        out = out.drop(columns=[f"{col}_low", f"{col}_high"])
    return out.fillna("-").astype(str)


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order before anything else (in text order)."""
    if is_number(value) and not math.isnan(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def metric_vs_param(
    params: pd.DataFrame,
    headline: pd.DataFrame,
    param: str,
    representation: str,
    label: str,
    metric: str = "nmi",
) -> pd.DataFrame:
    """Data of one curve family: ``metric`` of ``representation`` on ``label`` against ``param``.

    Columns: ``series`` (the values of the other changed params, e.g. ``models.vae.latent_dim=16``;
    ``""`` when only ``param`` changed), ``value`` (the param), ``experiment``, ``metric``, ``low``,
    ``high`` (``<metric>_low/_high`` when headline.json has them, else NaN). Sorted by series, then
    value (numerically when numeric). Experiments without the representation are left out.
    """
    if param not in params.columns:
        raise KeyError(f"param {param!r} is not in any experiment's params")
    others = [c for c in changed_params(params) if c != param]
    sub = headline[(headline["representation"] == representation) & (headline["label"] == label)]
    sub = sub.set_index("experiment")
    rows = []
    for exp in params.index:
        if exp not in sub.index:
            continue
        rec = sub.loc[exp]
        rows.append(
            {
                "series": ", ".join(f"{o}={params.at[exp, o]}" for o in others),
                "value": params.at[exp, param],
                "experiment": exp,
                "metric": rec[metric],
                "low": rec.get(f"{metric}_low", math.nan),
                "high": rec.get(f"{metric}_high", math.nan),
            }
        )
    frame = pd.DataFrame(rows, columns=["series", "value", "experiment", "metric", "low", "high"])
    if frame.empty:
        return frame
    order = sorted(
        range(len(frame)), key=lambda i: (frame["series"].iat[i], _sort_key(frame["value"].iat[i]))
    )
    return frame.iloc[order].reset_index(drop=True)


def varying_representations(headline: pd.DataFrame, metrics: Sequence[str] | None = None) -> list[str]:
    """Representations the sweep moved: any headline number (NMI, its interval, AMI, MIG, silhouette, best
    val loss) differs between experiments on some label. A model whose NMI stays put while its loss or
    MIG moves is still the one the sweep is about (beta on the demo: genre NMI 1.0 at every beta)."""
    cols = [m for m in (metrics or (*LABEL_METRICS, *REP_METRICS)) if m in headline.columns]
    spread = headline.groupby(["representation", "label"])[cols].agg(lambda s: s.max() - s.min())
    moved = spread[(spread.fillna(0) > 0).any(axis=1)].reset_index()["representation"]
    return sorted(moved.unique())


def ranking_frame(headline: pd.DataFrame, label: str, experiments: Sequence[str]) -> pd.DataFrame:
    """Model ranking across experiments: rows representations, columns experiments (headline NMI).

    Sorted by the mean NMI over experiments, best first; a representation missing from an
    experiment (not applicable there) is NaN. Columns ``mean`` and ``rank_<experiment>`` (1 = best
    in that experiment) are appended.
    """
    sub = headline[headline["label"] == label]
    wide = sub.pivot(index="representation", columns="experiment", values="nmi")
    wide = wide.reindex(columns=[e for e in experiments if e in wide.columns])
    wide["mean"] = wide.mean(axis=1)
    wide = wide.sort_values(["mean"], ascending=False, kind="stable")
    for exp in [c for c in wide.columns if c != "mean"]:
        wide[f"rank_{exp}"] = wide[exp].rank(ascending=False, method="min")
    wide.columns.name = None
    return wide


def loss_vs_nmi(headline: pd.DataFrame, label: str) -> pd.DataFrame:
    """Best validation loss against headline NMI, one row per trained model and experiment.

    Baselines (no ``best_val_loss``) are left out. Columns: ``representation``, ``experiment``,
    ``best_val_loss``, ``nmi``, ``nmi_low``, ``nmi_high``.
    """
    sub = headline[(headline["label"] == label) & headline["best_val_loss"].notna()]
    cols = ["representation", "experiment", "best_val_loss", "nmi", "nmi_low", "nmi_high"]
    return sub[cols].sort_values(["representation", "experiment"]).reset_index(drop=True)


def map_grid(
    maps: Mapping[str, pd.DataFrame | None], representation: str, method: str
) -> dict[str, pd.DataFrame]:
    """The 2-D map of ``representation`` by ``method`` per experiment (lowest seed; song level).

    ``maps`` is experiment -> that experiment's ``maps.parquet`` of the representation (None when
    unavailable); experiments without a map for ``method`` are left out of the result.
    """
    out = {}
    for exp, frame in maps.items():
        if frame is None or frame.empty:
            continue
        sub = frame[frame["method"] == method]
        if sub.empty:
            continue
        seed = sub["seed"].min()
        out[exp] = sub[sub["seed"] == seed].sort_values("song_id").reset_index(drop=True)
    return out
