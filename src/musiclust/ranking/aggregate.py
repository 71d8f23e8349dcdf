"""Every representation's per-run scores brought together: means over seeds, intervals, MIG.

Reads what the cluster stage wrote beside each clustering (:mod:`musiclust.contracts.clusters`:
``scores``, ``boot``, ``leakage``, ``disentanglement``) and aggregates it:

- point estimates: mean over seeds of each score, per representation x algorithm x level x k x
  label x scope;
- intervals: percentile bootstrap over the test songs with the seed drawn per resample
  (:mod:`musiclust.evaluation.stats`, :mod:`musiclust.ranking.intervals`), for NMI everywhere and
  for AMI on the headline protocol;
- the leakage audit in one table, flagged at ``evaluate.leakage_threshold``;
- disentanglement: each model's MIG per label, mean and min/max over seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import clusters as cluster_contract
from musiclust.contracts.metrics import MEANS_COLUMNS
from musiclust.evaluation.metrics import EXTERNAL
from musiclust.evaluation.scores import GROUP, RepScores
from musiclust.evaluation.stats import ResamplePlan
from musiclust.ranking.intervals import percentile_interval

log = logging.getLogger(__name__)

POINT_METRICS = (
    *EXTERNAL,
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "noise_fraction",
    "n_clusters",
)


def _seed_draw(per_seed: list[np.ndarray | None], plan: ResamplePlan) -> np.ndarray | None:
    """(B,) values: resample b takes the value of the seed it drew (None if a seed lacks values)."""
    if not per_seed or any(v is None for v in per_seed):
        return None
    return np.stack(per_seed)[plan.seed_pick(len(per_seed)), np.arange(plan.n)]


def aggregate(
    scores: pd.DataFrame, boot: RepScores, plan: ResamplePlan, ci: float
) -> tuple[pd.DataFrame, dict[tuple, dict[str, np.ndarray]]]:
    """Means over seeds per group and scope; NMI (and headline AMI) intervals from the seed-drawing bootstrap.

    Returns the table and, per group (test scope), the (B,) values the intervals were taken from,
    so that differences between groups can be judged on the same resamples.
    """
    rows, group_boot = [], {}
    # per group, numpy slices of columns converted once: the same sums in the same row order as
    # pandas' per-group mean (NaN left out), at a fraction of the cost of ~1,000 group frames
    keys = [*GROUP, "scope"]
    values = {m: scores[m].to_numpy(dtype=np.float64, na_value=np.nan) for m in POINT_METRICS}
    seed_col = scores["seed"].to_numpy()
    songs, units = scores["n_songs"].to_numpy(np.float64), scores["n_units"].to_numpy(np.float64)
    kind, modality, cond = (scores[c].to_numpy() for c in ("kind", "modality", "conditioned"))
    # the groups in groupby's sorted order (ngroup numbers them so), each one's rows in table order
    codes = scores.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    sorter = np.argsort(codes, kind="stable")
    key_of = list(scores[keys].itertuples(index=False, name=None))
    for idx in np.split(sorter, np.flatnonzero(np.diff(codes[sorter])) + 1) if len(codes) else []:
        key = key_of[idx[0]]
        row = dict(zip(keys, key))
        first = idx[0]
        row.update(
            kind=kind[first],
            modality=modality[first],
            conditioned=bool(cond[first]),
            n_seeds=len(pd.unique(seed_col[idx])),
            n_songs=int(np.median(songs[idx])),
            n_units=int(np.median(units[idx])),
        )
        for m in POINT_METRICS:
            v = values[m][idx]
            ok = ~np.isnan(v)
            row[m] = float(np.where(ok, v, 0.0).sum() / ok.sum()) if ok.any() else float("nan")
        for m in ("nmi", "ami"):
            row[f"{m}_low"] = row[f"{m}_high"] = float("nan")
        if key[-1] == "test":
            seeds = sorted(int(s) for s in pd.unique(seed_col[idx]))
            draws = {
                m: _seed_draw([src.get((*key[:-1], s)) for s in seeds], plan)
                for m, src in (("nmi", boot.boot), ("ami", boot.boot_ami))
            }
            group_boot[tuple(key[:-1])] = draws
            for m, draw in draws.items():
                if draw is not None:
                    row[f"{m}_low"], row[f"{m}_high"] = percentile_interval(draw, ci, estimate=row[m])
        rows.append(row)
    if not rows:  # every representation not applicable
        return pd.DataFrame(columns=MEANS_COLUMNS), group_boot
    return pd.DataFrame(rows), group_boot


def boot_values(outputs: Sequence[cluster_contract.ClusterOutput]) -> RepScores:
    """The per-run bootstrap values of every representation, keyed as :func:`aggregate` expects."""
    merged = RepScores()
    for o in outputs:
        if o.boot is None or o.boot.empty:
            continue
        for r in o.boot.itertuples(index=False):
            key = (r.representation, r.algorithm, r.level, r.k_mode, int(r.k), r.label, int(r.seed))
            (merged.boot if r.metric == "nmi" else merged.boot_ami)[key] = np.asarray(
                r.values, dtype=np.float64
            )
    return merged


def score_rows(outputs: Sequence[cluster_contract.ClusterOutput], n_boot: int) -> pd.DataFrame:
    """Every representation's per-seed score rows (none when every one is not applicable), their
    bootstrap values checked to come from ``n_boot`` resamples."""
    frames = [o.scores for o in outputs if o.scores is not None and not o.scores.empty]
    if not frames:
        log.warning("no clustering run was scored: every representation is not applicable; nothing to rank")
        return pd.DataFrame(columns=cluster_contract.SCORE_COLUMNS)
    stale = {
        o.name: sorted({len(v) for v in o.boot["values"]} - {n_boot})
        for o in outputs
        if o.boot is not None and not o.boot.empty
    }
    stale = {name: found for name, found in stale.items() if found}
    if stale:
        raise ValueError(
            f"evaluate.bootstrap is {n_boot}, but "
            + ", ".join(
                f"data/clusters/{name} holds {found} resamples" for name, found in sorted(stale.items())
            )
            + ": they were scored under another evaluate.bootstrap. Run `dvc repro` (it re-runs the "
            "cluster stage, which scores with evaluate.bootstrap) rather than this stage alone"
        )
    return pd.concat(frames, ignore_index=True)


def leakage_table(outputs: Sequence[cluster_contract.ClusterOutput], threshold: float) -> pd.DataFrame:
    """The representations' audits in one table, flagged at ``threshold`` (and said in the log)."""
    frames = [o.leakage for o in outputs if o.leakage is not None and not o.leakage.empty]
    if not frames:
        return pd.DataFrame(columns=[*cluster_contract.LEAKAGE_COLUMNS, "flagged"]).astype({"flagged": bool})
    leak = pd.concat(frames, ignore_index=True)
    leak["flagged"] = leak["balanced_accuracy"].astype(float) >= threshold
    for (rep, label), g in leak[leak["flagged"]].groupby(["representation", "label"]):
        log.warning(
            "LEAKAGE AUDIT: %s: %d column(s) alone predict %r with balanced accuracy >= %.2f: its %s "
            "scores may reflect leakage or a trivially readable label",
            rep,
            g["column"].nunique(),
            label,
            threshold,
            label,
        )
    return leak


def summarize_mig(rows: pd.DataFrame, conditioned: Mapping[str, Sequence[str]] | None = None) -> dict:
    """Per representation and label: the mean MIG over seeds and its min/max over seeds.

    ``{rep: {label: {mig, mig_min, mig_max, n_seeds, conditioned}}}``, sorted; ``conditioned``
    (rep -> labels the model saw) marks a model's own condition, whose MIG says how little of the
    label its latents kept rather than how well they isolate it. No interval: the seeds are few,
    and the spread over them is reported as it is.
    """
    conditioned = conditioned or {}
    out: dict = {}
    if rows is None or rows.empty:
        return out
    for (rep, label), g in rows.groupby(["representation", "label"], sort=True):
        vals = g["mig"].astype(float)
        out.setdefault(str(rep), {})[str(label)] = {
            "mig": float(vals.mean()),
            "mig_min": float(vals.min()),
            "mig_max": float(vals.max()),
            "n_seeds": int(g["seed"].nunique()),
            "conditioned": str(label) in set(conditioned.get(str(rep), ())),
        }
    return out


def mig_table(
    outputs: Sequence[cluster_contract.ClusterOutput], labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """MIG per model and one of ``labels`` (mean, min and max over seeds)."""
    rows = [
        o.disentanglement
        for o in outputs
        if o.applicable and o.disentanglement is not None and not o.disentanglement.empty
    ]
    mig = summarize_mig(
        pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
        {o.name: list(o.info.get("conditioned_on") or []) for o in outputs},
    )
    return {rep: {lab: d for lab, d in by.items() if lab in set(labels)} for rep, by in mig.items()}
