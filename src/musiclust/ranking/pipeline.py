"""The evaluate step: bring every representation's scores together, rank them once, build the metrics.

Reads every ``data/clusters/<rep>/`` (:mod:`musiclust.contracts.clusters`): the per-seed scores
and bootstrap values that :mod:`musiclust.evaluation.scores` wrote beside each clustering, and the
labels of ``segments.parquet``; returns the tables of :mod:`musiclust.contracts.metrics` (the stage
writes them). Every statistic the project reports is computed here or in the cluster stage; the
report only displays them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from musiclust.contracts import clusters as cluster_contract
from musiclust.contracts import metrics as contract
from musiclust.contracts.segments import read_segments
from musiclust.evaluation import disentanglement
from musiclust.evaluation.scores import make_labels
from musiclust.evaluation.stats import resample_plan
from musiclust.params import EvaluateParams, SplitParams
from musiclust.ranking.aggregate import aggregate, boot_values, leakage_table, mig_table, score_rows
from musiclust.ranking.rank import HEADLINE_ALGORITHMS, HEADLINE_LEVEL, RANKING_RULE, headline_algorithm, rank

log = logging.getLogger(__name__)


def evaluate(
    outputs: Sequence[cluster_contract.ClusterOutput],
    segments: pd.DataFrame,
    label_columns: Sequence[str],
    params: EvaluateParams,
    algorithms: Sequence[str],
    split: SplitParams,
) -> contract.Evaluation:
    """Aggregate the representations' scores, rank them and audit; returns every table (nothing written).

    A small collection is reported, not refused: a label its test songs cannot rank
    (:func:`musiclust.ranking.rank.rankability`; ``split`` is ``segment.split``, to say how many songs
    a ranking needs) gets no winner and a reason, and with every representation not applicable the
    tables are empty and every label says so.
    """
    labels = make_labels(segments, label_columns)
    algorithm = headline_algorithm(algorithms)
    if algorithm is None:
        raise ValueError(
            f"cluster.algorithms {list(algorithms)} has none of {list(HEADLINE_ALGORITHMS)}, the algorithms "
            "the headline can use: add kmeans (the default headline) to cluster.algorithms"
        )
    scores = score_rows(outputs, params.bootstrap)
    plan = resample_plan(len(labels.test_songs), params.bootstrap, seed=0)
    means, group_boot = aggregate(scores, boot_values(outputs), plan, params.ci)
    ranking, not_ranked = rank(
        means, group_boot, labels, algorithm, params.ci, params.min_test_songs_per_class, split
    )
    mig = mig_table(outputs, list(ranking))
    summary = contract.build_summary(
        outputs=outputs,
        ranking=ranking,
        not_ranked=not_ranked,
        leak=leakage_table(outputs, params.leakage_threshold),
        labels=labels,
        params=params,
        rule=RANKING_RULE.format(algorithm=algorithm, per_class=params.min_test_songs_per_class),
        algorithm=algorithm,
        level=HEADLINE_LEVEL,
        n_test_clips=int((segments["split"].astype(str) == "test").sum()),
        disentanglement=mig,
        disentanglement_method=disentanglement.METHOD,
    )
    ranked = {label: entries for label, entries in ranking.items() if label not in not_ranked}
    headline = contract.build_headline(ranked, outputs, mig)
    return contract.Evaluation(scores=scores, means=means, summary=summary, headline=headline)


def run_evaluate_step(
    segments_path: str | Path,
    clusters_dir: str | Path,
    representations: Sequence[str],
    label_columns: Sequence[str],
    params: EvaluateParams,
    algorithms: Sequence[str],
    split: SplitParams,
) -> contract.Evaluation:
    """Read the ``representations``' scores and the labels, and evaluate (the stage writes the result)."""
    segments = read_segments(segments_path, require=())
    outputs = cluster_contract.read_all(
        clusters_dir, representations, tables=("scores", "boot", "leakage", "disentanglement")
    )
    log.info("representations: %s", ", ".join(o.name if o.applicable else f"{o.name} (n/a)" for o in outputs))
    return evaluate(outputs, segments, label_columns, params, algorithms, split)
