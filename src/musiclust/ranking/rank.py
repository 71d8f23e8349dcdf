"""The ranking: one rule, stated once (:data:`RANKING_RULE`), that names the winner everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import metrics as contract
from musiclust.evaluation.scores import Labels
from musiclust.params import SplitParams
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
    "has an interval containing 0 cannot be separated from it. A label is ranked only when its test songs "
    "hold two or more of its k classes and number at least {per_class} x k (evaluate.min_test_songs_per_class); "
    "otherwise its scores are listed unranked, no winner is named, and the reason says how many test songs "
    "a ranking needs."
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
    if means.empty:
        return []
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


def rankability(labels: Labels, label: str, per_class: int, split: SplitParams) -> dict[str, Any]:
    """Whether ``label`` can be ranked on these test songs, and what a ranking needs.

    A ranking needs two or more of the label's k classes among the test songs with a known value,
    and at least ``per_class`` x k such songs (``evaluate.min_test_songs_per_class``): with fewer,
    a clustering blind to the label scores a high NMI by chance (with one test song of each class
    every clustering that separates them scores 1.000) and the bootstrap over a handful of songs
    gives intervals like [1.000, 1.000]. Returns ``reason`` (None when the label can be ranked;
    else one sentence saying why not and how many songs would do), ``n_test_songs``, ``n_classes``,
    ``n_test_classes``, ``min_test_songs`` and ``min_songs``: the collection size that holds
    ``min_test_songs`` test songs at ``segment.split.test`` (None when that is 0).
    """
    classes = labels.classes[label]
    k = len(classes)
    codes = labels.song[label].reindex(labels.test_songs).fillna(-1).to_numpy(np.int64)
    known = codes[codes >= 0]
    n_test, test_classes = int(len(known)), sorted({classes[c] for c in known})
    need = per_class * max(k, 2)
    # rounded first: 3 / 0.3 is 10.000000000000002 in floating point, and needs 10 songs, not 11
    min_songs = math.ceil(round(need / split.test, 6)) if split.test > 0 else None
    out = {
        "reason": None,
        "n_test_songs": n_test,
        "n_classes": k,
        "n_test_classes": len(test_classes),
        "min_test_songs": need,
        "min_songs": min_songs,
    }
    if k < 2:
        why = f"every song with a {label} value is {classes[0]}: NMI needs two classes"
    elif len(test_classes) < 2:
        held = f" ({test_classes[0]})" if test_classes else ""
        why = f"its {n_test} test song(s) hold {len(test_classes)} of its {k} classes{held}: NMI needs two"
    elif n_test < need:
        why = f"only {n_test} test songs have a {label} value"
    else:
        return out
    out["reason"] = f"{why}. {needs_text(label, out, per_class, split)}"
    return out


def needs_text(label: str, status: dict[str, Any], per_class: int, split: SplitParams) -> str:
    """How many test songs (and songs in the collection) a ranking of ``label`` needs, in words."""
    where = (
        f"about {status['min_songs']} songs in the collection at segment.split.test = {split.test:g}"
        if status["min_songs"] is not None
        else "segment.split.test is 0: raise it to hold songs out for testing"
    )
    return (
        f"A ranking of {label} needs at least {status['min_test_songs']} test songs of two or more classes "
        f"({per_class} per class, evaluate.min_test_songs_per_class): {where}"
    )


def _unranked(e: dict[str, Any]) -> None:
    """An entry listed without a rank (no winner to be compared with)."""
    e.update(rank=None, diff_low=float("nan"), diff_high=float("nan"), separable_from_winner=False)


def rank(
    means: pd.DataFrame,
    group_boot: dict[tuple, dict[str, np.ndarray]],
    labels: Labels,
    algorithm: str,
    ci: float,
    per_class: int,
    split: SplitParams,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The ranking per label under :data:`RANKING_RULE`, with paired differences from the winner, and
    the labels not ranked (:func:`rankability`, or no representation scored) with their reasons.

    Every label with a known value is listed; an unranked label's entries keep their scores and
    intervals, in NMI order, with no rank.
    """
    ranking: dict[str, list[dict[str, Any]]] = {}
    not_ranked: dict[str, dict[str, Any]] = {}
    for label, classes in labels.classes.items():
        if not classes:
            continue  # no song has a value (label_notes says so)
        entries = (
            _headline_entries(means, group_boot, algorithm, label, len(classes)) if len(classes) > 1 else []
        )
        free = sorted(
            (e for e in entries if not e["conditioned"]), key=lambda e: (-e["nmi"], e["representation"])
        )
        status = rankability(labels, label, per_class, split)
        if status["reason"] is None and not free:
            status["reason"] = (
                "only models that saw it (conditioned on it) were scored against it"
                if entries
                else "no representation could be clustered and scored against it "
                "(each one's reason is under not applicable)"
            )
        if status["reason"] is None:
            _compare_to_winner(free, ci)
        else:
            for e in free:
                _unranked(e)
            not_ranked[label] = status
        seen = sorted((e for e in entries if e["conditioned"]), key=lambda e: e["representation"])
        for e in seen:  # a model that saw the label: listed, never ranked
            _unranked(e)
        for e in entries:
            e.pop("_boot")
        ranking[label] = [*free, *seen]
    return ranking, not_ranked
