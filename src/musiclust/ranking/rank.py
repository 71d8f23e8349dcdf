"""The ranking: one rule, stated once (:data:`RANKING_RULE`), that names the winner everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import metrics as contract
from musiclust.evaluation.scores import Labels
from musiclust.ranking.intervals import percentile_interval, separable

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

#: what a ranking entry copies from means.csv: the ranking's own keys less those the ranking adds
ENTRY_KEYS = tuple(
    k
    for k in contract.RANK_KEYS
    if k not in ("rank", "conditioned", "diff_low", "diff_high", "separable_from_winner")
)


def headline_algorithm(algorithms: Sequence[str]) -> str | None:
    """The algorithm the headline uses among those that were run."""
    return next((a for a in HEADLINE_ALGORITHMS if a in set(algorithms)), None)


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
