"""The evaluate step: score every representation's clusterings, rank them once, write the metrics.

Reads every ``data/clusters/<rep>/`` (:mod:`musiclust.contracts.clusters`): the per-seed scores
and bootstrap values that :mod:`musiclust.evaluation.scores` wrote beside each clustering, and the
labels of ``segments.parquet``; writes the files of :mod:`musiclust.contracts.metrics`. Every
statistic the project reports is computed in this package (the report only displays them):

- point estimates: mean over seeds of each score, per representation x algorithm x level x k x
  label x scope;
- intervals: percentile bootstrap over the test songs with the seed drawn per resample
  (:mod:`musiclust.evaluation.stats`), for NMI everywhere and for AMI on the headline protocol;
- the ranking (:data:`RANKING_RULE`): one rule, stated once, that names the winner everywhere;
- disentanglement: each model's MIG per label, mean and min/max over seeds
  (:func:`musiclust.evaluation.disentanglement.summarize`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import clusters as cluster_contract
from musiclust.contracts import metrics as contract
from musiclust.contracts.segments import read_segments
from musiclust.evaluation import disentanglement
from musiclust.evaluation.metrics import EXTERNAL
from musiclust.evaluation.scores import GROUP, Labels, RepScores, make_labels
from musiclust.evaluation.stats import ResamplePlan, percentile_interval, resample_plan, separable
from musiclust.params import EvaluateParams

log = logging.getLogger(__name__)

#: the headline clustering: the first of these that the run has (all take a fixed k)
HEADLINE_ALGORITHMS = ("kmeans", "gmm", "agglomerative", "spectral")
HEADLINE_LEVEL = "song_mean"
RANKING_RULE = (
    "Representations are ranked per label by headline NMI: {algorithm} with k = the label's number of "
    "classes, fit on training songs, each song the mean of its clip vectors, scored on the test songs, mean "
    "over seeds. One algorithm and one k for all, so NMI is comparable (AMI, chance-corrected, is shown "
    "beside it). A model that saw the label (a conditional model's condition) and a representation that is "
    "not applicable are listed but never ranked. A method whose paired bootstrap difference from the winner "
    "has an interval containing 0 cannot be separated from it."
)
POINT_METRICS = (
    *EXTERNAL,
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "noise_fraction",
    "n_clusters",
)


def headline_algorithm(algorithms: Sequence[str]) -> str | None:
    """The algorithm the headline uses among those that were run."""
    return next((a for a in HEADLINE_ALGORITHMS if a in set(algorithms)), None)


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
    for key, g in scores.groupby([*GROUP, "scope"], sort=True, dropna=False):
        row = dict(zip([*GROUP, "scope"], key))
        first = g.iloc[0]
        row.update(
            kind=first["kind"],
            modality=first["modality"],
            conditioned=bool(first["conditioned"]),
            n_seeds=int(g["seed"].nunique()),
            n_songs=int(g["n_songs"].median()),
            n_units=int(g["n_units"].median()),
        )
        for m in POINT_METRICS:
            row[m] = float(g[m].mean()) if g[m].notna().any() else float("nan")
        for m in ("nmi", "ami"):
            row[f"{m}_low"] = row[f"{m}_high"] = float("nan")
        if key[-1] == "test":
            seeds = sorted(int(s) for s in g["seed"].unique())
            draws = {
                m: _seed_draw([src.get((*key[:-1], s)) for s in seeds], plan)
                for m, src in (("nmi", boot.boot), ("ami", boot.boot_ami))
            }
            group_boot[tuple(key[:-1])] = draws
            for m, draw in draws.items():
                if draw is not None:
                    row[f"{m}_low"], row[f"{m}_high"] = percentile_interval(draw, ci, estimate=row[m])
        rows.append(row)
    return pd.DataFrame(rows), group_boot


#: what a ranking entry copies from means.csv: the ranking's own keys less those the ranking adds
ENTRY_KEYS = tuple(
    k
    for k in contract.RANK_KEYS
    if k not in ("rank", "conditioned", "diff_low", "diff_high", "separable_from_winner")
)


def _headline_entries(
    means: pd.DataFrame, group_boot: dict[tuple, dict[str, np.ndarray]], algorithm: str, label: str, k: int
) -> list[dict[str, Any]]:
    """The headline rows of ``label`` (one per representation), with their bootstrap NMI under ``_boot``."""
    head = means[
        (means["algorithm"] == algorithm)
        & (means["level"] == HEADLINE_LEVEL)
        & (means["k_mode"] == "per_label")
        & (means["k"] == k)
        & (means["label"] == label)
        & (means["scope"] == "test")
        & np.isfinite(means["nmi"])
    ]
    entries = []
    for r in head.to_dict("records"):
        key = (r["representation"], algorithm, HEADLINE_LEVEL, "per_label", k, label)
        entries.append(
            {
                **{k_: r[k_] for k_ in ENTRY_KEYS},
                "conditioned": bool(r["conditioned"]),
                "_boot": group_boot.get(key, {}).get("nmi"),
            }
        )
    return entries


def _compare_to_winner(ranked: list[dict[str, Any]], ci: float) -> None:
    """Rank, and the paired bootstrap difference of each ranked entry from the winner (in place)."""
    winner = ranked[0] if ranked else None
    for i, e in enumerate(ranked, start=1):
        e["rank"] = i
        e["diff_low"] = e["diff_high"] = float("nan")
        e["separable_from_winner"] = False
        if e is not winner and e["_boot"] is not None and winner["_boot"] is not None:
            e["diff_low"], e["diff_high"] = percentile_interval(
                e["_boot"] - winner["_boot"], ci, estimate=e["nmi"] - winner["nmi"]
            )
            e["separable_from_winner"] = separable(e["diff_low"], e["diff_high"])


def rank(
    means: pd.DataFrame,
    group_boot: dict[tuple, dict[str, np.ndarray]],
    labels: Labels,
    algorithm: str,
    ci: float,
) -> dict[str, list[dict[str, Any]]]:
    """The ranking per label under :data:`RANKING_RULE`, with paired differences from the winner."""
    ranking: dict[str, list[dict[str, Any]]] = {}
    for label, classes in labels.classes.items():
        if len(classes) < 2:
            continue
        entries = _headline_entries(means, group_boot, algorithm, label, len(classes))
        ranked = sorted(
            (e for e in entries if not e["conditioned"]), key=lambda e: (-e["nmi"], e["representation"])
        )
        _compare_to_winner(ranked, ci)
        seen = sorted((e for e in entries if e["conditioned"]), key=lambda e: e["representation"])
        for e in seen:  # a model that saw the label: listed, never ranked
            e.update(rank=None, diff_low=float("nan"), diff_high=float("nan"), separable_from_winner=False)
        for e in entries:
            e.pop("_boot")
        ranking[label] = [*ranked, *seen]
    return ranking


def _boot_dicts(outputs: Sequence[cluster_contract.ClusterOutput]) -> RepScores:
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


def _scores(outputs: Sequence[cluster_contract.ClusterOutput], n_boot: int) -> pd.DataFrame:
    """Every representation's per-seed score rows, checked to come from ``n_boot`` resamples."""
    frames = [o.scores for o in outputs if o.scores is not None and not o.scores.empty]
    if not frames:
        raise RuntimeError("no clustering run was scored: every representation is not applicable")
    found = {len(v) for o in outputs if o.boot is not None for v in o.boot["values"]}
    if found != {n_boot}:
        raise ValueError(
            f"cluster outputs hold {sorted(found)} bootstrap resamples, evaluate.bootstrap is "
            f"{n_boot}: re-run the cluster stages (`dvc repro`)"
        )
    return pd.concat(frames, ignore_index=True)


def _leakage(outputs: Sequence[cluster_contract.ClusterOutput], threshold: float) -> pd.DataFrame:
    """The representations' audits in one table, flagged at ``threshold`` (and said in the log)."""
    leak = pd.concat([o.leakage for o in outputs if o.leakage is not None], ignore_index=True)
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


def _mig(outputs: Sequence[cluster_contract.ClusterOutput], labels: Labels) -> dict[str, dict[str, Any]]:
    """MIG per model and scored label (mean, min and max over seeds)."""
    rows = [
        o.disentanglement
        for o in outputs
        if o.applicable and o.disentanglement is not None and not o.disentanglement.empty
    ]
    mig = disentanglement.summarize(
        pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
        {o.name: list(o.info.get("conditioned_on") or []) for o in outputs},
    )
    return {rep: {lab: d for lab, d in by.items() if lab in labels.classes} for rep, by in mig.items()}


def evaluate(
    outputs: Sequence[cluster_contract.ClusterOutput],
    segments: pd.DataFrame,
    label_columns: Sequence[str],
    params: EvaluateParams,
    algorithms: Sequence[str],
) -> contract.Evaluation:
    """Aggregate the representations' scores, rank them and audit; returns every table (nothing written)."""
    labels = make_labels(segments, label_columns)
    labels.classes = {k: v for k, v in labels.classes.items() if len(v) >= 2}
    if not labels.classes:
        raise ValueError(f"no label column of {list(label_columns)} has two or more classes to score against")
    algorithm = headline_algorithm(algorithms)
    if algorithm is None:
        raise ValueError(f"cluster.algorithms has none of {HEADLINE_ALGORITHMS}: no headline clustering")
    scores = _scores(outputs, params.bootstrap)
    plan = resample_plan(len(labels.test_songs), params.bootstrap, seed=0)
    means, group_boot = aggregate(scores, _boot_dicts(outputs), plan, params.ci)
    ranking = rank(means, group_boot, labels, algorithm, params.ci)
    mig = _mig(outputs, labels)
    summary = contract.build_summary(
        outputs=outputs,
        ranking=ranking,
        leak=_leakage(outputs, params.leakage_threshold),
        labels=labels,
        params=params,
        rule=RANKING_RULE.format(algorithm=algorithm),
        algorithm=algorithm,
        level=HEADLINE_LEVEL,
        n_test_clips=int((segments["split"].astype(str) == "test").sum()),
        disentanglement=mig,
        disentanglement_method=disentanglement.METHOD,
    )
    headline = contract.build_headline(ranking, outputs, mig)
    return contract.Evaluation(scores=scores, means=means, summary=summary, headline=headline)


def run_evaluate_step(
    segments_path: str | Path,
    clusters_dir: str | Path,
    representations: Sequence[str],
    label_columns: Sequence[str],
    params: EvaluateParams,
    algorithms: Sequence[str],
) -> contract.Evaluation:
    """Read the ``representations``' scores and the labels, and evaluate (the stage writes the result)."""
    segments = read_segments(segments_path, require=())
    outputs = cluster_contract.read_all(
        clusters_dir, representations, tables=("scores", "boot", "leakage", "disentanglement")
    )
    log.info("representations: %s", ", ".join(o.name if o.applicable else f"{o.name} (n/a)" for o in outputs))
    return evaluate(outputs, segments, label_columns, params, algorithms)
