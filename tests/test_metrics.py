"""Clustering metrics, bootstrap intervals, paired differences and the leakage audit against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from musiclust.clustering.run import majority_vote
from musiclust.evaluation.leakage import single_column_scores
from musiclust.evaluation.metrics import (
    ami_from_contingency,
    calinski_harabasz_davies_bouldin,
    contingency,
    external_scores,
    hungarian_accuracy,
    internal_scores,
    purity,
)
from musiclust.evaluation.stats import batch_nmi, resample_plan
from musiclust.ranking.intervals import percentile_interval, separable


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


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ami_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = rng.integers(0, int(rng.integers(2, 6)), n)
    p = np.where(rng.random(n) < rng.random(), y, rng.integers(-1, int(rng.integers(2, 12)), n))
    expected = skm.adjusted_mutual_info_score(y, p)
    assert external_scores(y, p)["ami"] == pytest.approx(expected, abs=1e-10)
    assert ami_from_contingency(contingency(y, p)) == pytest.approx(expected, abs=1e-10)


def test_ami_is_chance_corrected_and_nmi_is_not():
    """Random clusterings with many clusters: NMI grows with k, AMI stays near 0."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    nmi, ami = {}, {}
    for k in (4, 40):
        s = [external_scores(y, rng.integers(0, k, 200)) for _ in range(20)]
        nmi[k], ami[k] = np.mean([x["nmi"] for x in s]), [x["ami"] for x in s]
        assert abs(np.mean(ami[k])) < 0.02 and max(abs(a) for a in ami[k]) < 0.06, k
    assert nmi[40] > 0.1 and nmi[40] > nmi[4] + 0.08  # more random clusters look more informative by NMI
    assert external_scores(y, y)["ami"] == pytest.approx(1.0)
    assert external_scores(y, np.zeros(200, int))["ami"] == pytest.approx(0.0, abs=1e-12)


def test_batch_nmi_matches_sklearn_on_random_tables():
    rng = np.random.default_rng(0)
    labelings = []
    for _ in range(30):
        n = int(rng.integers(5, 300))
        y = rng.integers(0, int(rng.integers(1, 5)), n)
        p = np.where(rng.random(n) < rng.random(), y, rng.integers(0, int(rng.integers(1, 8)), n))
        labelings.append((y, p))
    labelings += [(np.zeros(9, int), np.zeros(9, int)), (np.zeros(9, int), np.arange(9) % 3)]
    tables = np.zeros((len(labelings), 5, 8))
    for b, (y, p) in enumerate(labelings):
        np.add.at(tables[b], (y, p), 1)  # unused rows/columns stay zero, as in the bootstrap tables
    got = batch_nmi(tables)
    want = [skm.normalized_mutual_info_score(y, p) for y, p in labelings]
    assert got == pytest.approx(want, abs=1e-10)
    assert got[-2] == 1.0 and got[-1] == 0.0  # one class, one cluster / one class, three clusters


def test_bootstrap_tables_resample_whole_songs():
    """Resample b's NMI equals sklearn's on the units of the songs it drew, each as often as drawn."""
    from musiclust.evaluation.scores import _boot_tables

    rng = np.random.default_rng(1)
    n_songs, per_song = 12, 3
    song = np.repeat(np.arange(n_songs), per_song)
    y = np.repeat(rng.integers(0, 3, n_songs), per_song)  # a song's label is its clips' label
    c = np.where(rng.random(len(song)) < 0.7, y, rng.integers(0, 4, len(song)))
    plan = resample_plan(n_songs, 50, seed=3)
    w = plan.weights
    assert (w.sum(axis=1) == n_songs).all()
    got = batch_nmi(_boot_tables(y, c, song, w, n_songs))
    for b in range(plan.n):
        units = np.concatenate([np.flatnonzero(song == s) for s in plan.song_index[b]])
        assert got[b] == pytest.approx(skm.normalized_mutual_info_score(y[units], c[units]), abs=1e-10)


def test_bootstrap_resample_with_one_class_is_not_scored():
    """A resample that drew songs of one class only has no NMI (NaN, left out of the interval), as the
    point estimate has none; batch_nmi alone would call it 1 (one cluster) or 0 (several)."""
    from musiclust.evaluation.scores import _boot_ami, _boot_nmi, _boot_tables

    y = np.array([0, 0, 1, 1])  # two songs of class 0, two of class 1, one unit each
    c = np.array([0, 1, 1, 1])
    w = np.array([[2.0, 2, 0, 0], [1, 1, 0, 0], [0, 0, 3, 1], [1, 1, 1, 1]])
    tables = _boot_tables(y, c, np.arange(4), w, 4)
    assert batch_nmi(tables)[:3].tolist() == [0.0, 0.0, 1.0]
    nmi, ami = _boot_nmi(tables), _boot_ami(tables)
    assert np.isnan(nmi[:3]).all() and np.isnan(ami[:3]).all()
    assert nmi[3] == pytest.approx(skm.normalized_mutual_info_score(y, c))
    assert ami[3] == pytest.approx(skm.adjusted_mutual_info_score(y, c))


def test_bootstrap_interval_of_a_mean_matches_the_binomial_standard_error():
    """n songs each scoring 0 or 1 (share p): the bootstrap mean has sd sqrt(p(1-p)/n)."""
    n, p = 200, 0.3
    score = (np.arange(n) < p * n).astype(float)
    plan = resample_plan(n, 4000, seed=0)
    means = plan.weights @ score / n
    se = math.sqrt(p * (1 - p) / n)
    assert means.mean() == pytest.approx(p, abs=0.1 * se)
    assert means.std() == pytest.approx(se, rel=0.05)
    lo, hi = percentile_interval(means, 0.95)
    assert lo == pytest.approx(p - 1.96 * se, abs=0.15 * se)
    assert hi == pytest.approx(p + 1.96 * se, abs=0.15 * se)
    lo90, hi90 = percentile_interval(means, 0.90)
    assert lo < lo90 < p < hi90 < hi


def test_paired_differences_on_shared_resamples():
    rng = np.random.default_rng(0)
    n = 40
    a = rng.random(n)  # per-song scores of method A: songs differ a lot
    plan = resample_plan(n, 2000, seed=0)
    w = plan.weights
    # identical methods: every resample gives the same value to both, the difference is exactly 0
    d_lo, d_hi = percentile_interval(w @ a / n - w @ a / n, 0.95)
    assert d_lo == d_hi == 0.0 and not separable(d_lo, d_hi)
    # B is A minus 0.03 on every song, give or take a little: paired, the difference is clear ...
    b = a - 0.03 + rng.normal(0, 0.01, n)
    d_lo, d_hi = percentile_interval(w @ b / n - w @ a / n, 0.95)
    assert d_hi < 0 and separable(d_lo, d_hi)
    assert d_lo < -0.03 < d_hi
    # ... while two unpaired resamplings drown it in the song-to-song spread
    other = resample_plan(n, 2000, seed=1).weights
    u_lo, u_hi = percentile_interval(other @ b / n - w @ a / n, 0.95)
    assert u_lo < 0 < u_hi and not separable(u_lo, u_hi)
    assert not separable(float("nan"), 0.5) and separable(-0.2, -0.1)


def test_percentile_interval_ignores_nan():
    lo, hi = percentile_interval(np.array([np.nan, *np.linspace(0, 1, 101)]), 0.9)
    assert (lo, hi) == pytest.approx((0.05, 0.95))
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan, np.nan]), 0.95))


def test_resample_plan_is_deterministic_and_seed_pick_draws_every_seed():
    plan = resample_plan(18, 600, seed=0)
    again = resample_plan(18, 600, seed=0)
    assert np.array_equal(plan.song_index, again.song_index) and np.array_equal(
        plan.seed_draw, again.seed_draw
    )
    assert not np.array_equal(plan.song_index, resample_plan(18, 600, seed=1).song_index)
    assert plan.song_index.shape == (600, 18) and plan.song_index.min() >= 0 and plan.song_index.max() < 18
    for n_seeds in (1, 2, 3, 5):
        pick = plan.seed_pick(n_seeds)
        counts = np.bincount(pick, minlength=n_seeds)
        assert len(counts) == n_seeds and (counts > 0).all()
        assert counts.min() > 0.7 * 600 / n_seeds  # about uniform
    # methods with the same number of seeds draw the same seed in each resample (paired)
    assert np.array_equal(plan.seed_pick(3), again.seed_pick(3))


def test_interval_covers_seed_variation():
    """Two seeds whose bootstrap values never overlap: the interval spans both, the mean sits between."""
    import pandas as pd

    from musiclust.evaluation.scores import RepScores
    from musiclust.ranking.aggregate import aggregate

    plan = resample_plan(10, 400, seed=0)
    rows, boot = [], RepScores()
    for seed, nmi in ((0, 0.2), (1, 0.8)):
        row = dict(
            representation="vae",
            kind="model",
            modality="audio",
            conditioned=False,
            algorithm="kmeans",
            level="song_mean",
            scope="test",
            k_mode="per_label",
            k=4,
            label="genre",
            seed=seed,
            n_songs=10,
            n_units=10,
        )
        row.update(
            {
                m: 0.5
                for m in (
                    "ami",
                    "ari",
                    "v_measure",
                    "homogeneity",
                    "completeness",
                    "purity",
                    "accuracy",
                    "silhouette",
                    "calinski_harabasz",
                    "davies_bouldin",
                    "noise_fraction",
                    "n_clusters",
                )
            },
            nmi=nmi,
        )
        rows.append(row)
        boot.boot[("vae", "kmeans", "song_mean", "per_label", 4, "genre", seed)] = np.full(400, nmi)
    means, group_boot = aggregate(pd.DataFrame(rows), boot, plan, 0.95)
    r = means.iloc[0]
    assert r["nmi"] == pytest.approx(0.5) and r["n_seeds"] == 2
    assert (r["nmi_low"], r["nmi_high"]) == (0.2, 0.8)
    draws = group_boot[("vae", "kmeans", "song_mean", "per_label", 4, "genre")]["nmi"]
    assert set(np.unique(draws)) == {0.2, 0.8}
    assert np.array_equal(draws == 0.8, plan.seed_pick(2) == 1)
    assert math.isnan(r["ami_low"])  # no AMI bootstrap values given: no interval, not a zero-width one
