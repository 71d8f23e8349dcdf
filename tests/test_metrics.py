"""Clustering metrics, intervals, paired tests and the leakage audit against hand-worked answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from musiclust.clustering.run import majority_vote
from musiclust.evaluation.leakage import single_column_scores
from musiclust.evaluation.metrics import (
    calinski_harabasz_davies_bouldin,
    external_scores,
    hungarian_accuracy,
    internal_scores,
    purity,
)
from musiclust.evaluation.stats import paired_t_test, t_interval


def test_single_cluster_is_degenerate_not_good():
    """All points in one cluster: purity = majority share, ARI = NMI = 0 (the published bug)."""
    y = np.array(["en", "en", "en", "bn"])
    s = external_scores(y, np.zeros(4, int))
    assert s["purity"] == pytest.approx(0.75)
    assert s["accuracy"] == pytest.approx(0.75)
    assert s["ari"] == 0.0
    assert s["nmi"] == 0.0
    assert s["homogeneity"] == 0.0 and s["v_measure"] == 0.0
    assert s["completeness"] == 1.0  # each class sits in one cluster
    # purity of a degenerate clustering differs between labels with different majority shares
    assert purity(np.array([0, 1, 1, 1, 1]), np.zeros(5, int)) == pytest.approx(0.8)


def test_hand_worked_three_clusters_two_classes():
    # classes 000111, clusters 0 0 1 | 1 2 2 -> contingency [[2,1,0],[0,1,2]]
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0, 0, 1, 1, 2, 2])
    s = external_scores(y, p)
    assert s["purity"] == pytest.approx(5 / 6)  # clusters vote 2 + 1 + 2
    assert s["accuracy"] == pytest.approx(4 / 6)  # class0->c0, class1->c2; c1 unmatched
    # ARI: cells 1+1=2, rows 3+3=6, cols 1+1+1=3, pairs 15: (2-6*3/15)/(4.5-1.2)
    assert s["ari"] == pytest.approx(0.8 / 3.3)
    # MI = (2/3) ln 2; H(C) = ln 2; H(K) = ln 3
    assert s["homogeneity"] == pytest.approx(2 / 3)
    assert s["completeness"] == pytest.approx((2 / 3) * math.log(2) / math.log(3))
    assert s["nmi"] == pytest.approx((4 / 3) * math.log(2) / math.log(6))
    assert s["v_measure"] == pytest.approx(s["nmi"])


def test_perfect_up_to_renaming_and_noise_is_its_own_group():
    y = np.array(["a", "a", "b", "b", "c"])
    s = external_scores(y, np.array([7, 7, -1, -1, 3]))  # noise (-1) is a group like any other
    assert all(s[m] == pytest.approx(1.0) for m in ("ari", "nmi", "purity", "accuracy", "homogeneity"))
    # two clusters can be matched to only two of the three classes, one point each: 2/5
    assert hungarian_accuracy(y, np.array([0, 1, 0, 1, 0])) == pytest.approx(2 / 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_external_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(-1, 5, 300))
    s = external_scores(y, p)
    assert s["ari"] == pytest.approx(skm.adjusted_rand_score(y, p))
    assert s["nmi"] == pytest.approx(skm.normalized_mutual_info_score(y, p))
    h, c, v = skm.homogeneity_completeness_v_measure(y, p)
    assert (s["homogeneity"], s["completeness"], s["v_measure"]) == pytest.approx((h, c, v))
    cm = skm.cluster.contingency_matrix(y, p)
    assert s["purity"] == pytest.approx(cm.max(axis=0).sum() / 300)


def test_internal_scores_match_sklearn_and_nan_when_undefined():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(6, 1, (40, 3))])
    lab = np.repeat([0, 1], 40)
    s = internal_scores(x, lab)
    assert s["silhouette"] == pytest.approx(skm.silhouette_score(x, lab))
    assert s["silhouette_n"] == 80
    assert s["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(x, lab))
    assert s["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(x, lab))
    assert s["silhouette"] > 0.7  # two far-apart blobs
    sampled = internal_scores(x, lab, sample_idx=np.arange(0, 80, 2))
    assert sampled["silhouette_n"] == 40
    assert sampled["silhouette"] == pytest.approx(skm.silhouette_score(x[::2], lab[::2]))
    one = internal_scores(x, np.zeros(80, int))
    assert math.isnan(one["silhouette"]) and math.isnan(one["calinski_harabasz"])
    # hand-worked 1-D: points 0, 1 | 10, mean 11/3: between = 2*(19/6)^2 + (19/3)^2 = 1083/18, within = 0.5
    ch, db = calinski_harabasz_davies_bouldin(np.array([[0.0], [1.0], [10.0]]), np.array([0, 0, 1]))
    assert ch == pytest.approx((1083 / 18) / 0.5)
    assert db == pytest.approx(0.5 / 9.5)  # spreads 0.5 and 0, centroid distance 9.5


def test_t_interval_and_paired_test_by_hand():
    iv = t_interval(np.array([1.0, 2.0, 3.0]), 0.95)
    # t_{0.975, 2} = 4.302653; sd = 1
    assert iv.mean == 2.0 and iv.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(t_interval(np.array([0.4]), 0.95).half_width)  # one seed: no interval, not zero
    t = paired_t_test(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert t.t == pytest.approx(2 / (1 / math.sqrt(3)))
    assert t.p_value == pytest.approx(0.0742, abs=1e-3)
    assert paired_t_test(np.ones(3), np.ones(3)).p_value == 1.0
    assert paired_t_test(np.array([0.5, 0.6, 0.7]), np.array([0.4, 0.5, 0.6])).p_value == 0.0
    assert paired_t_test(np.array([0.5, np.nan]), np.array([0.4, 0.3])).n == 1


def test_majority_vote_ties_and_noise():
    songs = np.array(["a", "a", "a", "b", "b", "c", "c", "c"])
    clusters = np.array([1, 1, 2, 2, 1, -1, -1, 0])
    assert majority_vote(songs, clusters, np.array(["c", "b", "a"])).tolist() == [-1, 1, 1]


def test_leakage_audit_flags_a_label_column_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.array(["en", "bn"] * 100, dtype=object)
    y[5] = None  # unlabelled units are left out, not an error
    leaky = (y == "en").astype(float) * 3 + rng.normal(0, 0.1, 200)
    x = np.column_stack([leaky, rng.normal(size=200)])
    train = np.arange(200) < 140
    scores = {s.column: s for s in single_column_scores(x, ["clip_len", "noise"], y, train, "language")}
    assert scores["clip_len"].balanced_accuracy >= 0.99
    assert scores["clip_len"].n_eval == 60 and scores["clip_len"].evaluated_on == "held_out"
    assert scores["noise"].balanced_accuracy < 0.7
    assert single_column_scores(x, ["a", "b"], np.array(["en"] * 200, dtype=object), train, "language") == []


def test_interval_bounds_stay_inside_the_metric_range():
    """Three seeds at NMI 1.0, 1.0, 0.9: the t interval's upper bound would exceed 1; it is clipped."""
    import pandas as pd

    from musiclust.evaluation.pipeline import SUMMARY_METRICS, aggregate

    rows = []
    for seed, nmi in zip((0, 1, 2), (1.0, 1.0, 0.9)):
        row = dict(representation="vae", kind="model", algorithm="kmeans", label="genre", level="clip",
                   scope="test", seed=seed, n_units=10, k=4)
        row.update({m: 0.5 for m in SUMMARY_METRICS})
        row["nmi"] = nmi
        rows.append(row)
    agg = aggregate(pd.DataFrame(rows), 0.95).iloc[0]
    assert agg["nmi"] == pytest.approx(0.966667, abs=1e-5)
    assert agg["nmi_high"] == 1.0  # unclipped: 0.9667 + 4.303 * 0.0577 / sqrt(3) = 1.110
    assert agg["nmi_low"] == pytest.approx(agg["nmi"] - agg["nmi_ci"], abs=1e-9)
    assert agg["nmi_ci"] == pytest.approx(4.302653 * 0.057735 / 3 ** 0.5, rel=1e-4)
