"""The Mutual Information Gap on hand-worked latents, and the ``metadata`` baseline.

MIG cases have answers worked out by hand; the metadata baseline is built on a tiny segments
frame (one-hot, TF-IDF, numeric columns), refused for label columns at params load, not
applicable when no column is named, and clustered by the real ``cluster`` stage.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stages.cluster
import yaml
from tests.test_clustering_stage import make_inputs, run_cluster, write_params

from musiclust.contracts import clusters as contract
from musiclust.evaluation.disentanglement import (
    bin_edges,
    discretize,
    disentanglement_rows,
    entropy,
    mig,
    mig_from_codes,
    mutual_information,
)
from musiclust.fileio import read_json, write_parquet
from musiclust.ranking.aggregate import summarize_mig

# ---------------------------------------------------------------- MIG, hand-worked


def test_mig_hand_computed_small_case() -> None:
    """y = [0,0,1,1]; z0 = y; z1 independent of y; z2 = [0,0,0,1].

    H(y) = ln 2; I(z0; y) = ln 2; I(z1; y) = 0;
    I(z2; y) = H(y) - H(y | z2) = ln 2 - 3/4 * H(2/3, 1/3) = 3/2 ln 2 - 3/4 ln 3 (= 0.2158 nats);
    MIG = (ln 2 - I(z2; y)) / ln 2 = 3/4 log2(3) - 1/2 (= 0.6887).
    """
    y = np.array([0, 0, 1, 1])
    codes = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 1]])
    i2 = 1.5 * math.log(2) - 0.75 * math.log(3)
    assert entropy(y) == pytest.approx(math.log(2))
    assert mutual_information(codes[:, 0], y) == pytest.approx(math.log(2))
    assert mutual_information(codes[:, 1], y) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(codes[:, 2], y) == pytest.approx(i2)
    m = mig_from_codes(codes, y)
    assert m.mig == pytest.approx(0.75 * math.log2(3) - 0.5)
    assert (m.top_dim, m.second_dim) == (0, 2)
    assert m.top_mi == pytest.approx(math.log(2)) and m.second_mi == pytest.approx(i2)
    assert m.mi == pytest.approx((math.log(2), 0.0, i2))


def test_mig_one_dimension_equal_to_the_label_is_close_to_one() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 3, n)
    z = np.column_stack([y + 0.0, rng.normal(size=n), rng.normal(size=n)])
    train = np.arange(n) < n // 2
    m = mig(z, y, fit=train, measure=~train)
    assert m.top_dim == 0
    assert m.top_mi == pytest.approx(entropy(y[~train]))
    # the noise dimensions' plug-in MI is only the estimator's bias, ~ (20-1)(3-1)/(2*1500) nats
    assert 0.0 < m.second_mi < 0.03
    assert 0.97 < m.mig < 1.0


def test_mig_two_dimensions_equal_to_the_label_is_zero() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 500)
    z = np.column_stack([rng.normal(size=500), y * 2.0, y - 7.0])
    m = mig(z, y)
    assert m.mig == pytest.approx(0.0, abs=1e-12)
    assert {m.top_dim, m.second_dim} == {1, 2}


def test_mig_is_invariant_to_monotone_rescaling_of_a_dimension() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    z = np.column_stack([y + rng.normal(0, 0.3, 400), rng.normal(size=400)])
    a = mig(z, y, strategy="equal_frequency")
    z2 = z.copy()
    z2[:, 0] = np.exp(3 * z2[:, 0])
    assert mig(z2, y, strategy="equal_frequency").mig == pytest.approx(a.mig)


def test_bins_are_fit_on_the_fit_rows_and_clip_outside_values() -> None:
    edges = bin_edges(np.array([[0.0], [10.0]]), n_bins=5)
    assert edges[0] == pytest.approx([2, 4, 6, 8])
    codes = discretize(np.array([[-3.0], [0.0], [2.0], [2.1], [9.9], [50.0]]), edges)
    assert codes[:, 0].tolist() == [0, 0, 0, 1, 4, 4]
    assert bin_edges(np.array([[1.0], [1.0]]))[0].size == 0  # a constant column: one bin
    with pytest.raises(ValueError, match="bins"):
        bin_edges(np.zeros((3, 1)), n_bins=1)


def test_mig_refuses_a_single_class() -> None:
    with pytest.raises(ValueError, match="fewer than two classes"):
        mig_from_codes(np.zeros((4, 2), int), np.zeros(4, int))


def test_disentanglement_rows_and_summary() -> None:
    """Per seed: dim z_01 carries the label in seed 0, z_00 and z_01 both in seed 1."""
    n = 400
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, n)
    split = np.where(np.arange(n) % 2 == 0, "train", "test")
    frames = []
    for seed, z in ((0, np.column_stack([rng.normal(size=n), y])), (1, np.column_stack([y, y]))):
        f = pd.DataFrame(z.astype(float), columns=["z_00", "z_01"])
        f.insert(0, "split", split)
        f.insert(0, "song_id", [f"s{i}" for i in range(n)])
        f.insert(0, "unit_id", [f"c{i}" for i in range(n)])
        f.insert(0, "level", "clip")
        f.insert(0, "seed", seed)
        frames.append(f)
    latents = pd.concat(frames, ignore_index=True)
    labels = {"genre": pd.Series(y, index=[f"c{i}" for i in range(n)]), "one": pd.Series(0, index=["c0"])}
    rows = disentanglement_rows("vae", latents, labels)
    assert list(rows.columns) == contract.DISENTANGLEMENT_COLUMNS
    assert rows["label"].tolist() == ["genre", "genre"]  # "one" has a single class: no row
    r0, r1 = rows.iloc[0], rows.iloc[1]
    assert r0["top_dim"] == "z_01" and r0["mig"] > 0.9 and r0["n_units"] == n // 2
    assert r1["mig"] == pytest.approx(0.0, abs=1e-12)
    s = summarize_mig(rows, {"vae": ["genre"]})
    d = s["vae"]["genre"]
    assert d["n_seeds"] == 2 and d["conditioned"] is True
    assert d["mig"] == pytest.approx(rows["mig"].mean())
    assert (d["mig_min"], d["mig_max"]) == pytest.approx((rows["mig"].min(), rows["mig"].max()))


# ---------------------------------------------------------------- metadata baseline


def _songs_frame() -> pd.DataFrame:
    """Six songs, two clips each: four train songs, one val, one test."""
    rows = []
    spec = [
        ("s0", "train", "Ann", "Love Song", "1999", "en", "pop"),
        ("s1", "train", "Ann", "Love Again", "2001", "en", "pop"),
        ("s2", "train", "Bob", "Bhalobasha", "1980", "bn", "folk"),
        ("s3", "train", None, "Bhalo Gaan", "x", "bn", "folk"),
        ("s4", "val", "Cid", "Love", "1990", "en", "rock"),
        ("s5", "test", "Dee", "Zzz", "2010", "bn", "rock"),
    ]
    for song, split, artist, title, year, lang, genre in spec:
        for c in range(2):
            rows.append(
                {
                    "segment_id": f"{song}__{c:04d}",
                    "song_id": song,
                    "split": split,
                    "is_silent": False,
                    "artist": artist,
                    "title": title,
                    "year": year,
                    "plays": 10.0 * int(song[1]),
                    "language": lang,
                    "genre": genre,
                }
            )
    return pd.DataFrame(rows)


def test_metadata_one_hot_caps_categories_fit_on_train(monkeypatch: pytest.MonkeyPatch) -> None:
    from musiclust.clustering import metadata

    songs = metadata.song_table(_songs_frame(), ["artist"])
    train = (songs["split"] == "train").to_numpy()
    block = metadata.encode_category(songs["artist"], train, "artist")
    # train values: Ann x2, Bob, <missing>; commonest first, ties alphabetical; val/test artists -> other
    assert block.columns == ["cat:artist=Ann", "cat:artist=<missing>", "cat:artist=Bob", "cat:artist=<other>"]
    assert block.x.argmax(axis=1).tolist() == [0, 0, 2, 1, 3, 3]
    assert (block.x.sum(axis=1) == 1).all()
    monkeypatch.setattr(metadata, "MAX_CATEGORIES", 1)
    capped = metadata.encode_category(songs["artist"], train, "artist")
    assert capped.columns == ["cat:artist=Ann", "cat:artist=<other>"]
    assert capped.x[:, 1].tolist() == [0, 0, 1, 1, 1, 1]


def test_metadata_tfidf_vocabulary_from_train_titles() -> None:
    from musiclust.clustering import metadata

    songs = metadata.song_table(_songs_frame(), ["title"])
    train = (songs["split"] == "train").to_numpy()
    block = metadata.encode_text(songs["title"], train, "title")
    assert block.encoding == "text" and 0 < len(block.columns) <= metadata.MAX_TFIDF_FEATURES
    assert all(c.startswith("tfidf:title:") for c in block.columns)
    assert not any("zz" in c for c in block.columns)  # a test-only title adds no n-gram
    assert np.allclose(block.x[5], 0.0)  # "Zzz" shares no n-gram with the training titles
    assert block.x[4].sum() > 0  # "Love" does
    love = np.dot(block.x[0], block.x[1])  # two "Love ..." titles are closer than love vs bhalo
    assert love > np.dot(block.x[0], block.x[2])


def test_metadata_numeric_standardized_on_train() -> None:
    from musiclust.clustering import metadata

    songs = metadata.song_table(_songs_frame(), ["year"])
    train = (songs["split"] == "train").to_numpy()
    block = metadata.encode_numeric(songs["year"], train, "year")
    years = np.array([1999, 2001, 1980])  # "x" is not a number: it gets the train mean
    z = (np.array([1999, 2001, 1980, years.mean(), 1990, 2010]) - years.mean()) / years.std()
    assert block.columns == ["num:year"] and block.x[:, 0] == pytest.approx(z)
    assert metadata.encoding_of(songs["year"], "year", None) == "category"  # strings unless told
    plays = metadata.song_table(_songs_frame(), ["plays"])["plays"]
    assert metadata.encoding_of(plays, "plays", None) == "numeric"
    assert metadata.encoding_of(songs["year"], "title", None) == "text"


def test_metadata_vectors_weigh_every_column_equally() -> None:
    from musiclust.clustering.metadata import metadata_vectors

    songs, x, cols, desc = metadata_vectors(_songs_frame(), ["artist", "title", "year:numeric"])
    assert songs["song_id"].tolist() == [f"s{i}" for i in range(6)] and x.shape == (6, len(cols))
    train = (songs["split"] == "train").to_numpy()
    for prefix in ("cat:artist=", "tfidf:title:", "num:year"):
        block = [i for i, c in enumerate(cols) if c.startswith(prefix)]
        assert x[train][:, block].var(axis=0).sum() == pytest.approx(1.0, rel=1e-5), prefix
    assert "artist (category, 4 dims)" in desc and "year (numeric, 1 dims)" in desc


def test_metadata_missing_column_names_the_key() -> None:
    from musiclust.clustering.metadata import metadata_vectors

    with pytest.raises(ValueError, match=r"cluster.metadata_columns: column\(s\) \['album'\]"):
        metadata_vectors(_songs_frame(), ["album"])


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        (["artist", "Genre"], "'Genre' is a label column"),
        (["language:category"], "'language' is a label column"),
        (["mood"], "'mood' is a label column"),  # data.label_columns below names mood
        (["song_id"], "not song metadata"),
        (["artist", "artist:text"], "twice"),
        (["year:date"], "encoding 'date' is not one of"),
    ],
)
def test_metadata_columns_refused_at_params_load(tmp_path: Path, repo_root: Path, columns, match) -> None:
    from musiclust.params import ParamsError, load_params

    p = yaml.safe_load((repo_root / "params.yaml").read_text())
    p["data"]["label_columns"] = ["language", "genre", "mood"]
    p["cluster"]["metadata_columns"] = columns
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    with pytest.raises(ParamsError, match=match) as err:
        load_params(path)
    assert "cluster.metadata_columns" in str(err.value)


def _with_metadata(paths: dict[str, Path]) -> None:
    """Give make_inputs' songs an artist that follows the genre, a title and a year."""
    seg_path = paths["segments"] / "segments.parquet"
    seg = pd.read_parquet(seg_path)
    i = seg["song_id"].str[-3:].astype(int)
    seg["artist"] = [f"band_{(j // 2) % 4}" for j in i]  # genre changes every other song
    seg["title"] = [("love " if j % 2 == 0 else "bhalobasha ") + f"no {j}" for j in i]
    seg["year"] = 1970 + i
    write_parquet(seg, seg_path)


def _metadata_argv(paths: dict[str, Path], out: Path, params: Path) -> list[str]:
    """The cluster stage for the metadata baseline alone (it reads segments only)."""
    return [
        "--rep",
        "metadata",
        "--segments",
        str(paths["segments"]),
        "--out",
        str(out),
        "--params",
        str(params),
    ]


def test_cluster_stage_with_metadata_and_mig(tmp_path: Path, repo_root: Path) -> None:
    """The cluster stage for metadata and vae on the synthetic set; then evaluate aggregates MIG."""
    import stages.evaluate
    from tests.test_evaluate_stage import evaluate_argv

    paths = make_inputs(tmp_path / "in", models={"vae": 4})
    _with_metadata(paths)
    params = write_params(
        tmp_path / "params.yaml",
        repo_root,
        models=("vae",),
        algorithms=["kmeans"],
        baselines=["raw", "metadata"],
        metadata_columns=["artist", "title", "year"],
        evaluate={"min_test_songs_per_class": 2},  # 8 test songs rank genre's 4 classes
    )
    clusters = tmp_path / "clusters"
    stages.cluster.main(_metadata_argv(paths, clusters / "metadata", params))
    run_cluster(paths, "vae", params, clusters)
    run_cluster(paths, "raw", params, clusters)

    d = clusters / "metadata"
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["info.json", *(f"{t}.parquet" for t in contract.TABLES)]
    )
    info = read_json(d / "info.json")
    assert info["applicable"] is True and info["kind"] == "baseline" and info["seeds"] == "all"
    assert info["modality"] == "metadata" and info["dim"] == 5 + 64 + 1  # 4 artists + other, tfidf, year
    assert info["description"].startswith("song metadata: artist (category, 5 dims), title (text, 64 dims)")
    scores = pd.read_parquet(d / "scores.parquet")
    assert set(scores["label"]) == {"genre", "language"} and scores["nmi"].notna().any()
    leak = pd.read_parquet(d / "leakage.parquet")
    assert len(leak) and set(leak["seed"]) == {contract.SEED_INDEPENDENT}
    assert pd.read_parquet(d / "disentanglement.parquet").empty  # a baseline has no latent axes

    mig_rows = pd.read_parquet(clusters / "vae" / "disentanglement.parquet")
    assert list(mig_rows.columns) == contract.DISENTANGLEMENT_COLUMNS
    assert sorted(zip(mig_rows["seed"], mig_rows["label"])) == [
        (0, "genre"),
        (0, "language"),
        (1, "genre"),
        (1, "language"),
    ]
    assert mig_rows["mig"].between(0, 1).all() and mig_rows["top_dim"].str.startswith("z_").all()
    assert (mig_rows["n_units"] > 0).all() and (mig_rows["n_bins"] == 20).all()

    out = tmp_path / "metrics"
    stages.evaluate.main(evaluate_argv(clusters, paths["segments"], out, params))
    summary = read_json(out / "summary.json")
    assert set(summary["disentanglement"]) == {"vae"}
    g = summary["disentanglement"]["vae"]["genre"]
    assert g["n_seeds"] == 2 and g["mig_min"] <= g["mig"] <= g["mig_max"] and g["conditioned"] is False
    assert g["mig"] == pytest.approx(mig_rows[mig_rows.label == "genre"]["mig"].mean(), abs=1e-4)
    headline = read_json(out / "headline.json")
    assert headline["vae"]["genre"]["mig"] == g["mig"]
    assert "mig" not in headline["raw"]["genre"] and "mig" not in headline["metadata"]["genre"]
    assert "metadata" in headline and "metadata" not in summary["not_applicable"]
    results = (out / "results.md").read_text()
    assert "| MIG |" in results and f"| {g['mig']:.3f} ({g['mig_min']:.3f}–{g['mig_max']:.3f}) |" in results


def test_cluster_stage_metadata_not_applicable_when_no_column_named(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", n_songs=10, models={})
    params = write_params(tmp_path / "params.yaml", repo_root, algorithms=["kmeans"])
    out = stages.cluster.main(_metadata_argv(paths, tmp_path / "metadata", params))
    info = read_json(tmp_path / "metadata" / "info.json")
    assert info["applicable"] is False and info["reason"] == "cluster.metadata_columns is empty"
    assert not out.applicable
    for name, cols in contract.COLUMNS.items():
        frame = pd.read_parquet(tmp_path / "metadata" / f"{name}.parquet")
        assert frame.empty and list(frame.columns) == cols


@pytest.mark.parametrize(
    ("column", "finds", "misses"), [("artist", "genre", "language"), ("title", "language", "genre")]
)
def test_metadata_baseline_finds_what_its_column_carries(
    tmp_path: Path, repo_root: Path, column: str, finds: str, misses: str
) -> None:
    """The artist follows the genre, the title the language (test songs, headline protocol)."""
    paths = make_inputs(tmp_path / "in", models={})
    _with_metadata(paths)
    params = write_params(
        tmp_path / "params.yaml", repo_root, algorithms=["kmeans"], metadata_columns=[column]
    )
    out = stages.cluster.main(_metadata_argv(paths, tmp_path / "metadata", params))
    s = out.scores
    head = s[(s.level == "song_mean") & (s.scope == "test") & (s.k_mode == "per_label")].groupby("label")[
        "nmi"
    ]
    assert head.mean()[finds] > 0.99 and head.mean()[misses] < 0.3
