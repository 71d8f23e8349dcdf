"""The ``cluster`` stage on a small synthetic dataset laid out as docs/pipeline.md says (mostly one
representation at a time, ``--rep``; the last test runs every representation with the store).

``make_inputs`` and ``cluster_argv`` are also used by the evaluate tests. Genre is planted in the
audio features and the model latents, language in the lyrics embedding, so the scores written
beside the clusterings have known answers.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stages.cluster
import yaml

from musiclust.clustering import run as run_mod
from musiclust.clustering.representations import (
    lyrics_representation,
    model_representation,
    reduce_representation,
    song_means,
    usable_clips,
)
from musiclust.contracts import clusters as contract
from musiclust.contracts.features import Scaler
from musiclust.fileio import read_json, write_json, write_parquet

LANGS = ("en", "bn")
GENRES = ("pop", "rock", "folk", "electronic")
MODEL_BASELINES = ("raw", "pca", "spectral_features")  # baselines read from the features folder


def make_inputs(
    root: Path,
    n_songs: int = 40,
    clips_per_song: int = 4,
    models: dict[str, int] | None = None,
    seeds: tuple[int, ...] = (0, 1),
    seed: int = 0,
    leaky_column: bool = False,
    lyrics_dim: int = 16,
    n_audio: int = 24,
    conditioned: dict[str, list[str]] | None = None,
    multimodal: tuple[str, ...] = (),
    with_lyrics: bool = True,
) -> dict[str, Path]:
    """Write segments, features (+scalers), lyrics and ``models/<key>/`` under ``root``.

    Songs cycle through the splits train, train, train, val, test (``n_songs / 5`` test songs),
    languages alternate and genres change every other song. Song 1 has no genre, song 2 no
    lyrics, and the last clip is silent. Each model gets ``info.json`` (as the train stage writes
    it; ``conditioned[key]`` sets ``conditioned_on``, keys in ``multimodal`` read the lyrics),
    ``metrics.json`` (``best_val_loss_mean``) and ``latents.parquet`` (a noisy projection of the
    audio, so genre is recoverable); ``vade`` also gets its own ``cluster`` column. With
    ``leaky_column`` the mfcc_stats set gets a column that encodes the language.
    """
    rng = np.random.default_rng(seed)
    models = {"vae": 6} if models is None else models
    conditioned = conditioned or {}
    songs = [f"song_{i:03d}" for i in range(n_songs)]
    lang = [LANGS[i % 2] for i in range(n_songs)]
    genre = [GENRES[(i // 2) % 4] for i in range(n_songs)]
    split = [("train", "train", "train", "val", "test")[i % 5] for i in range(n_songs)]
    rows = []
    for i, s in enumerate(songs):
        for c in range(clips_per_song):
            rows.append(
                {
                    "segment_id": f"{s}__{c:04d}",
                    "song_id": s,
                    "clip_index": c,
                    "start_s": 3.0 * c,
                    "end_s": 3.0 * c + 3,
                    "split": split[i],
                    "is_silent": False,
                    "language": lang[i],
                    "genre": genre[i] if i != 1 else None,
                    "has_lyrics": i != 2,
                }
            )
    seg = pd.DataFrame(rows)
    seg.loc[len(seg) - 1, "is_silent"] = True
    write_parquet(seg, root / "segments" / "segments.parquet")

    g_code = np.array([GENRES.index(genre[songs.index(s)]) for s in seg["song_id"]])
    centres = rng.normal(0, 3.0, size=(4, n_audio))
    mfcc = centres[g_code] + rng.normal(0, 1.0, size=(len(seg), n_audio))
    spec = centres[g_code][:, :10] * 0.5 + rng.normal(0, 1.0, size=(len(seg), 10))
    if leaky_column:
        mfcc[:, -1] = (seg["language"] == "bn").to_numpy() * 5.0 + rng.normal(0, 0.1, len(seg))
    # the featurize stage's layout, written as it writes it (features/pipeline.py): <set>.parquet
    # with segment_id + columns, scalers.json with the train-only scaler of each set
    fdir = root / "features"
    train = (seg["split"] == "train").to_numpy()
    scalers = {}
    for name, x, prefix in (("mfcc_stats", mfcc, "mfcc_"), ("spectral", spec, "spec_")):
        cols = [f"{prefix}{j:02d}" for j in range(x.shape[1])]
        df = pd.DataFrame(x.astype(np.float32), columns=cols)
        df.insert(0, "segment_id", seg["segment_id"])
        write_parquet(df, fdir / f"{name}.parquet")
        scalers[name] = Scaler.fit(cols, x[train]).to_dict()
    write_json(fdir / "scalers.json", scalers)

    lang_centre = rng.normal(0, 1.0, size=(2, lyrics_dim))
    emb = lang_centre[[LANGS.index(x) for x in lang]] + rng.normal(0, 0.3, size=(n_songs, lyrics_dim))
    emb_cols = [f"emb_{j:03d}" for j in range(lyrics_dim)]
    ly = pd.DataFrame(emb.astype(np.float32), columns=emb_cols)
    has = [with_lyrics and i != 2 for i in range(n_songs)]
    ly.insert(0, "encoder", "synthetic")
    ly.insert(0, "has_lyrics", has)
    ly.insert(0, "song_id", songs)
    ly.loc[~np.array(has), emb_cols] = 0.0
    write_parquet(ly, root / "lyrics.parquet")

    mdir = root / "models"
    for key, dim in models.items():
        d = mdir / key
        proj = rng.normal(size=(n_audio, dim)) / np.sqrt(n_audio)
        frames = []
        for s in seeds:
            z = mfcc @ proj + rng.normal(0, 0.2, size=(len(seg), dim))
            f = pd.DataFrame(z.astype(np.float32), columns=[f"z_{j:02d}" for j in range(dim)])
            f.insert(0, "seed", s)
            f.insert(0, "split", seg["split"])
            f.insert(0, "song_id", seg["song_id"])
            f.insert(0, "segment_id", seg["segment_id"])
            if key == "vade":
                f["cluster"] = (g_code + (rng.random(len(seg)) < 0.1)) % 4
            frames.append(f)
        write_parquet(pd.concat(frames, ignore_index=True), d / "latents.parquet")
        inputs: dict = {"feature_sets": ["mfcc_stats"]}
        if key in multimodal:
            inputs["text"] = {"encoder": "synthetic", "dim": lyrics_dim}
        write_json(
            d / "info.json",
            {
                "model_key": key,
                "conditioned_on": list(conditioned.get(key, [])),
                "inputs": inputs,
                "latent_dim": dim,
                "seeds": list(seeds),
            },
        )
        write_json(d / "metrics.json", {"best_val_loss_mean": 1.25 + 0.5 * len(key) / 10})
    return {
        "root": root,
        "segments": root / "segments",
        "features": fdir,
        "lyrics": root / "lyrics.parquet",
        "models": mdir,
    }


def not_applicable_model(models_dir: Path, key: str, reason: str) -> Path:
    """``models/<key>/`` as the train stage leaves it when the model's inputs are absent."""
    write_json(models_dir / key / "info.json", {"model_key": key, "applicable": False, "reason": reason})
    return models_dir / key


def write_params(
    path: Path,
    repo_root: Path,
    seeds: tuple[int, ...] = (0, 1),
    evaluate: dict | None = None,
    models: tuple[str, ...] | None = None,
    **cluster: object,
) -> Path:
    """The repository's params.yaml with ``seeds``, ``models`` (keys kept), ``evaluate`` and ``cluster``
    overrides (small bootstrap and tsne-free maps by default, to keep the tests quick)."""
    p = yaml.safe_load((repo_root / "params.yaml").read_text())
    p["seeds"] = list(seeds)
    p["train"]["features"] = ["mfcc_stats"]
    p["cluster"].update({"maps": ["pca"], **cluster})
    p["evaluate"].update({"bootstrap": 200, **(evaluate or {})})
    if models is not None:
        have = p["models"]
        p["models"] = {k: have.get(k, have["vae"]) for k in models}
        p["train"]["models"] = list(models)
    path.write_text(yaml.safe_dump(p))
    return path


def cluster_argv(paths: dict[str, Path], rep: str, out: Path, params: Path) -> list[str]:
    """The command line of the cluster stage for ``rep`` alone (models/<rep> unless a baseline)."""
    argv = ["--rep", rep, "--segments", str(paths["segments"]), "--out", str(out), "--params", str(params)]
    if rep in MODEL_BASELINES:
        return [*argv, "--features", str(paths["features"])]
    if rep == "lyrics":
        return [*argv, "--lyrics", str(paths["lyrics"])]
    if rep == "raw_lyrics":
        return [*argv, "--features", str(paths["features"]), "--lyrics", str(paths["lyrics"])]
    return [*argv, "--model", str(paths["models"] / rep)]


def run_cluster(paths: dict[str, Path], rep: str, params: Path, clusters: Path) -> Path:
    stages.cluster.main(cluster_argv(paths, rep, clusters / rep, params))
    return clusters / rep


def _nmi(scores: pd.DataFrame, **where: object) -> pd.Series:
    sel = scores
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel), f"no score row for {where}"
    return sel["nmi"]


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of representation clustered once with every algorithm."""
    tmp = tmp_path_factory.mktemp("cluster")
    repo = Path(__file__).resolve().parents[1]
    paths = make_inputs(tmp / "in", models={"vae": 6, "vade": 6})
    params = write_params(tmp / "params.yaml", repo, fit_sample=60, maps=["pca", "tsne"])
    for rep in ("vae", "vade", "raw", "pca", "spectral_features", "lyrics", "raw_lyrics"):
        run_cluster(paths, rep, params, tmp / "clusters")
    return {**paths, "clusters": tmp / "clusters", "params": params}


def test_every_contract_file_is_written_with_its_columns(clustered: dict[str, Path]) -> None:
    for rep in ("vae", "vade", "raw", "pca", "spectral_features", "lyrics", "raw_lyrics"):
        d = clustered["clusters"] / rep
        assert sorted(p.name for p in d.iterdir()) == sorted(
            ["info.json", *(f"{t}.parquet" for t in contract.TABLES)]
        ), rep
        info = read_json(d / "info.json")
        assert set(contract.INFO_KEYS) <= set(info), rep
        assert info["representation"] == rep and info["applicable"] is True and info["reason"] is None
        for name, cols in contract.COLUMNS.items():
            frame = pd.read_parquet(d / f"{name}.parquet")
            assert list(frame.columns) == cols, (rep, name)
            # disentanglement (MIG) is scored on model latents only
            assert (len(frame) > 0) == (name != "disentanglement" or info["kind"] == "model"), (rep, name)
        vec = pd.read_parquet(d / "vectors.parquet")
        assert list(vec.columns[:5]) == contract.VECTOR_META
        assert list(vec.columns[5:]) == info["columns"] and len(info["columns"]) == info["dim"]
        assert set(vec["level"]) == {"clip", "song_mean"}
        # the other tables agree with each other: every assignment belongs to a run, every
        # score row to a run, every test-scope score row with an NMI has bootstrap values
        runs = pd.read_parquet(d / "runs.parquet")
        a = pd.read_parquet(d / "assignments.parquet")
        s = pd.read_parquet(d / "scores.parquet")
        assert set(a["run_id"]) == set(runs["run_id"]) and set(s["run_id"]) <= set(runs["run_id"])
        assert runs["run_id"].is_unique
        boot = pd.read_parquet(d / "boot.parquet")
        scored = s[(s.scope == "test") & s.nmi.notna()]
        assert len(boot[boot.metric == "nmi"]) == len(scored), rep
        assert {len(v) for v in boot["values"]} == {200}


def test_info_describes_the_representation(clustered: dict[str, Path]) -> None:
    info = {
        r: read_json(clustered["clusters"] / r / "info.json") for r in ("vae", "vade", "pca", "raw", "lyrics")
    }
    assert info["vae"]["kind"] == "model" and info["vae"]["seeds"] == [0, 1] and info["vae"]["dim"] == 6
    assert info["vae"]["training"] == {"best_val_loss_mean": pytest.approx(1.4)}
    assert info["vade"]["has_own_clusters"] is True and info["vae"]["has_own_clusters"] is False
    assert info["raw"]["kind"] == "baseline" and info["raw"]["seeds"] == "all" and info["raw"]["dim"] == 24
    assert info["pca"]["dim"] == 8  # cluster.pca_dim
    assert info["lyrics"]["modality"] == "lyrics" and info["raw"]["modality"] == "audio"
    c = info["raw"]["counts"]
    assert (c["clips_in"], c["dropped_silent"], c["dropped_bad_split"], c["clips_used"]) == (160, 1, 0, 159)
    assert info["lyrics"]["counts"]["songs_without_lyrics"] == 1
    assert info["raw"]["label_classes"] == {"language": ["bn", "en"], "genre": sorted(GENRES)}
    # per_label k: language has 2 classes, genre 4 (the null genre is not a class)
    assert info["raw"]["k_plan"] == [
        {"k": 2, "k_mode": "per_label", "for_labels": "language"},
        {"k": 4, "k_mode": "per_label", "for_labels": "genre"},
    ]
    # 159 clips > fit_sample = 60: Ward, HDBSCAN, spectral fit a sample at clip level, all 40 songs at song level
    assert not info["raw"]["skipped_runs"]
    runs = pd.read_parquet(clustered["clusters"] / "raw" / "runs.parquet")
    clip = runs[runs["level"] == "clip"].set_index("algorithm")["fit_on"].groupby(level=0).first()
    assert clip.to_dict() == {
        "agglomerative": "sample",
        "hdbscan": "sample",
        "spectral": "sample",
        "kmeans": "train",
        "gmm": "train",
    }
    song = runs[runs["level"] == "song_mean"]
    assert set(song.loc[song["algorithm"].isin(["agglomerative", "hdbscan", "spectral"]), "fit_on"]) == {
        "all"
    }
    assert set(info["raw"]["protocol"]) >= {"fit", "levels", "k", "seeds", "maps"}


def test_runs_cover_algorithms_levels_and_seeds(clustered: dict[str, Path]) -> None:
    runs = {
        r: pd.read_parquet(clustered["clusters"] / r / "runs.parquet")
        for r in ("vae", "vade", "raw", "lyrics")
    }
    raw = runs["raw"]
    assert set(raw["algorithm"]) == {"kmeans", "agglomerative", "gmm", "hdbscan", "spectral"}
    assert set(raw["level"]) == {"clip", "song_mean", "song_vote"}
    for algo in ("kmeans", "gmm", "agglomerative", "spectral"):
        assert set(raw.loc[raw.algorithm == algo, "level"]) == {"clip", "song_mean", "song_vote"}, algo
    # predictive algorithms fit on train, the others on all units
    assert set(raw.loc[raw.algorithm.isin(["kmeans", "gmm"]), "fit_on"]) == {"train"}
    # the others on all units, or (clip level, 159 clips > fit_sample = 60) on a seeded sample
    assert set(raw.loc[raw.algorithm.isin(["agglomerative", "hdbscan", "spectral"]), "fit_on"]) == {
        "all",
        "sample",
    }
    pl = raw[raw.k_mode == "per_label"]
    assert set(pl["k"]) == {2, 4}
    assert set(pl.loc[pl.k == 2, "for_labels"]) == {"language"} and set(pl.loc[pl.k == 4, "for_labels"]) == {
        "genre"
    }
    # baselines are clustered once per seed; clip runs cover every usable clip, song runs every song
    assert set(raw["seed"]) == {0, 1} and set(runs["vae"]["seed"]) == {0, 1}
    assert (raw.loc[raw.level == "clip", "n_units"] == 159).all()
    assert (raw.loc[raw.level != "clip", "n_units"] == 40).all()
    # song vectors (the lyrics baseline: each clip carries its song's embedding) are clustered once,
    # at song level, over the songs with lyrics (song 2 has none); the other levels say why not
    lyr = runs["lyrics"]
    assert set(lyr["level"]) == {"song_mean"} and (lyr["n_units"] == 39).all()
    skipped = read_json(clustered["clusters"] / "lyrics" / "info.json")["skipped_runs"]
    assert sorted((sk["algorithm"], sk["level"], sk["seed"]) for sk in skipped) == [
        ("all", lv, s) for lv in ("clip", "song_vote") for s in (0, 1)
    ]
    assert {sk["reason"] for sk in skipped} == {run_mod.SONG_VECTORS_REASON}
    # VaDE's own assignments are a method of their own
    own = runs["vade"][runs["vade"].algorithm == contract.OWN]
    assert set(own["level"]) == {"clip", "song_vote"} and set(own["seed"]) == {0, 1}
    assert contract.OWN not in set(runs["vae"]["algorithm"])
    a = pd.read_parquet(clustered["clusters"] / "raw" / "assignments.parquet")
    one = a[a.run_id == raw.loc[(raw.algorithm == "kmeans") & (raw.level == "clip"), "run_id"].iloc[0]]
    assert len(one) == 159 and one["unit_id"].is_unique


def test_scores_cover_scopes_and_find_the_planted_labels(clustered: dict[str, Path]) -> None:
    s = {
        r: pd.read_parquet(clustered["clusters"] / r / "scores.parquet")
        for r in ("vae", "vade", "raw", "lyrics")
    }
    raw = s["raw"]
    assert set(raw["scope"]) == {"test", "all"} and set(raw["label"]) == {"language", "genre"}
    # a run serves only the labels of its k
    assert set(raw.loc[(raw.k_mode == "per_label") & (raw.k == 2), "label"]) == {"language"}
    head = dict(algorithm="kmeans", level="song_mean", k=4, label="genre", scope="test")
    assert (_nmi(raw, **head) > 0.9).all()  # genre is planted in the features
    assert (_nmi(s["vae"], **head) > 0.9).all()  # and in the latents
    assert (_nmi(raw, algorithm="kmeans", level="clip", k=4, label="genre", scope="all") > 0.9).all()
    assert (
        _nmi(s["lyrics"], algorithm="kmeans", level="song_mean", k=2, label="language", scope="test") > 0.9
    ).all()
    assert (_nmi(raw, algorithm="kmeans", level="song_mean", k=2, label="language", scope="all") < 0.3).all()
    own = s["vade"][
        (s["vade"].algorithm == "own") & (s["vade"].label == "genre") & (s["vade"].scope == "all")
    ]
    assert len(own) and (own["nmi"] > 0.6).all()
    # 8 test songs, 7 of them with a genre (song 1 has none and is no test song); 40 songs in scope all
    t = raw[(raw.level == "song_mean") & (raw.scope == "test") & (raw.label == "genre")]
    assert set(t["n_songs"]) == {8}
    assert set(
        raw.loc[(raw.level == "song_mean") & (raw.scope == "all") & (raw.label == "genre"), "n_songs"]
    ) == {39}
    assert raw["ami"].notna().any() and (raw["ami"] <= raw["nmi"] + 1e-9).all()
    assert raw.loc[(raw.algorithm == "kmeans") & (raw.k == 4), "silhouette"].gt(0.3).all()
    assert not raw.duplicated(["algorithm", "level", "scope", "k_mode", "k", "label", "seed"]).any()
    assert (raw["kind"] == "baseline").all() and (s["vae"]["kind"] == "model").all()


def test_raw_lyrics_keeps_both_modalities_at_equal_weight(clustered: dict[str, Path]) -> None:
    """The early-fusion baseline: raw audio beside the lyrics' principal components, each block with
    unit total variance over the training songs' means, so language (in the lyrics only) is found at
    k = 2 where raw alone cannot find it, and songs without lyrics are left out and counted."""
    d = clustered["clusters"] / "raw_lyrics"
    info = read_json(d / "info.json")
    assert info["kind"] == "baseline" and info["modality"] == "audio+lyrics"
    raw_cols = read_json(clustered["clusters"] / "raw" / "info.json")["columns"]
    assert info["columns"][: len(raw_cols)] == raw_cols
    assert info["columns"][len(raw_cols) :] == [f"lyrics_pc_{i:02d}" for i in range(8)]  # cluster.pca_dim
    assert info["counts"]["clips_of_songs_without_lyrics"] == 4  # song 2, its 4 clips
    vec = pd.read_parquet(d / "vectors.parquet")
    songs = vec[vec.level == "song_mean"]
    assert len(songs) == 39 and "song_002" not in set(songs["song_id"])
    train = songs[songs.split == "train"]
    for block in (raw_cols, info["columns"][len(raw_cols) :]):
        x = train[block].to_numpy(np.float64)
        assert ((x - x.mean(axis=0)) ** 2).sum(axis=1).mean() == pytest.approx(1.0, rel=1e-4)
    s = pd.read_parquet(d / "scores.parquet")
    lang = dict(algorithm="kmeans", level="song_mean", k=2, label="language", scope="test")
    assert (_nmi(s, **lang) > 0.9).all()


def test_bootstrap_values_are_per_run_and_spread(clustered: dict[str, Path]) -> None:
    boot = pd.read_parquet(clustered["clusters"] / "raw" / "boot.parquet")
    # AMI only for the headline kind of run (song_mean, k per label); NMI for every test-scope run
    assert set(boot.loc[boot.metric == "ami", "level"]) == {"song_mean"}
    assert set(boot.loc[boot.metric == "ami", "k_mode"]) == {"per_label"}
    assert set(boot.loc[boot.metric == "nmi", "level"]) == {"clip", "song_mean", "song_vote"}
    vals = np.stack(boot.loc[(boot.metric == "nmi") & (boot.label == "language"), "values"].to_list())
    # 8 test songs, 4 per language: a resample of one language only (p = 2 / 2**8) has no NMI
    finite = np.isfinite(vals)
    assert finite.mean() > 0.95 and ((vals[finite] >= 0) & (vals[finite] <= 1)).all()
    assert (np.nanstd(vals, axis=1) > 0).all()  # resampling 8 test songs moves a weak score


def test_maps_have_the_configured_methods(clustered: dict[str, Path]) -> None:
    for rep, seed in (("vae", 0), ("raw", contract.SEED_INDEPENDENT), ("lyrics", contract.SEED_INDEPENDENT)):
        m = pd.read_parquet(clustered["clusters"] / rep / "maps.parquet")
        assert set(m["method"]) == {"pca", "tsne"}, rep
        assert set(m["seed"]) == {seed}, rep  # one map per representation: the first training seed
        n_songs = 39 if rep == "lyrics" else 40
        for _, g in m.groupby("method"):
            assert len(g) == n_songs and g["song_id"].is_unique and (g["unit_id"] == g["song_id"]).all()
            assert np.isfinite(g[["x", "y"]].to_numpy()).all() and g[["x", "y"]].std().gt(0).all()
        assert set(m["split"]) == {"train", "val", "test"}
        assert (m["representation"] == rep).all()


def test_not_applicable_model_and_lyrics_give_empty_tables(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", models={}, with_lyrics=False)
    not_applicable_model(paths["models"], "multimodal", "no song has lyrics: a text model cannot train")
    params = write_params(tmp_path / "params.yaml", repo_root, algorithms=["kmeans"])
    for rep, reason in (
        ("multimodal", "no song has lyrics: a text model cannot train"),
        ("lyrics", "no song has lyrics"),
        ("raw_lyrics", "no song has lyrics"),
    ):
        out = stages.cluster.main(cluster_argv(paths, rep, tmp_path / "clusters" / rep, params))
        assert not out.applicable
        info = read_json(tmp_path / "clusters" / rep / "info.json")
        assert info["applicable"] is False and info["reason"] == reason
        assert info["kind"] == ("model" if rep == "multimodal" else "baseline")
        for name in contract.TABLES:
            frame = pd.read_parquet(tmp_path / "clusters" / rep / f"{name}.parquet")
            assert frame.empty, (rep, name)
            if name in contract.COLUMNS:
                assert list(frame.columns) == contract.COLUMNS[name]


def test_raw_lyrics_without_training_songs_with_lyrics_is_not_applicable(
    tmp_path: Path, repo_root: Path
) -> None:
    """Lyrics only for val/test songs: no PCA can be fit on training songs, so the fused baseline
    is reported as not applicable (the run goes on), not a failed stage."""
    paths = make_inputs(tmp_path / "in", models={})
    seg = pd.read_parquet(paths["segments"] / "segments.parquet")
    ly = pd.read_parquet(paths["lyrics"])
    train_songs = set(seg.loc[seg.split == "train", "song_id"])
    ly.loc[ly.song_id.isin(train_songs), "has_lyrics"] = False
    write_parquet(ly, paths["lyrics"])
    params = write_params(tmp_path / "params.yaml", repo_root, algorithms=["kmeans"])
    out = stages.cluster.main(cluster_argv(paths, "raw_lyrics", tmp_path / "clusters" / "raw_lyrics", params))
    assert not out.applicable
    info = read_json(tmp_path / "clusters" / "raw_lyrics" / "info.json")
    assert info["reason"] == "fewer than two training songs have lyrics: no lyrics PCA to fit"


def test_missing_model_info_names_the_train_stage(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", models={"vae": 4})
    (paths["models"] / "vae" / "info.json").unlink()
    params = write_params(tmp_path / "params.yaml", repo_root, algorithms=["kmeans"])
    with pytest.raises(FileNotFoundError, match=r"dvc repro train@vae"):
        stages.cluster.main(cluster_argv(paths, "vae", tmp_path / "out", params))


def test_song_mean_leaves_out_silent_clips() -> None:
    """The one per-song mean (every representation's ``song_mean`` level) never averages in a
    silent clip: a quiet intro does not pull a song toward silence, and a song whose every clip
    is silent has no song vector at all."""
    segments = pd.DataFrame(
        {
            "segment_id": list("abcde"),
            "song_id": ["s", "s", "s", "t", "u"],
            "split": "train",
            "is_silent": [False, False, True, True, False],
        }
    )
    clips, counts = usable_clips(segments)
    assert counts["dropped_silent"] == 2 and list(clips["segment_id"]) == ["a", "b", "e"]
    latents = pd.DataFrame({"segment_id": list("abcde"), "seed": 0, "z_00": [1.0, 3.0, 100.0, 7.0, 5.0]})
    songs = song_means(model_representation("m", clips, latents).units(0))
    assert dict(zip(songs.unit_id, songs.x[:, 0].tolist())) == {"s": 2.0, "u": 5.0}


def test_two_runs_write_byte_identical_files(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", models={"vade": 4})
    params = write_params(
        tmp_path / "params.yaml", repo_root, algorithms=["kmeans", "gmm", "hdbscan"], maps=["pca", "tsne"]
    )
    for rep in ("vade", "pca"):
        a = tmp_path / "a" / rep
        b = tmp_path / "b" / rep
        stages.cluster.main(cluster_argv(paths, rep, a, params))
        (b / "stale.parquet").parent.mkdir(parents=True)
        (b / "stale.parquet").write_bytes(b"left over from an earlier run")
        stages.cluster.main(cluster_argv(paths, rep, b, params))
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())  # the stale file is gone
        for name in names:
            assert (a / name).read_bytes() == (b / name).read_bytes(), (rep, name)
        assert str(tmp_path) not in (a / "info.json").read_text()  # no absolute paths in the output


def test_auto_k(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", models={})
    params = write_params(
        tmp_path / "params.yaml", repo_root, algorithms=["kmeans", "gmm"], k="auto", k_range=[2, 6]
    )
    d = run_cluster(paths, "raw", params, tmp_path / "clusters")
    runs = pd.read_parquet(d / "runs.parquet")
    # four well-separated genre blobs: silhouette (kmeans) and BIC (gmm) should both pick 4
    assert set(runs.loc[runs.level == "clip", "k"]) == {4}, runs[["algorithm", "k", "info"]]
    assert set(runs["for_labels"]) == {"*"} and set(runs["k_mode"]) == {"auto"}
    s = pd.read_parquet(d / "scores.parquet")
    assert set(s["label"]) == {"language", "genre"}  # an auto-k run serves every label


def test_umap_without_the_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    rep = lyrics_representation(
        pd.DataFrame(
            {"segment_id": ["a__0000", "b__0000"], "song_id": ["a", "b"], "split": ["train", "test"]}
        ),
        pd.DataFrame(
            {"song_id": ["a", "b"], "has_lyrics": [True, True], "emb_000": [0.0, 1.0], "emb_001": [1.0, 0.0]}
        ),
    )
    with pytest.raises(ValueError, match="pip install umap-learn"):
        reduce_representation(rep, "umap", 1)


def test_reduce_pca_feeds_reduced_vectors(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", models={})
    params = write_params(
        tmp_path / "params.yaml", repo_root, algorithms=["kmeans"], reduce="pca", reduce_dim=4
    )
    for rep, dim in (("raw", 4), ("lyrics", 4), ("spectral_features", 4)):
        d = run_cluster(paths, rep, params, tmp_path / "clusters")
        info = read_json(d / "info.json")
        assert info["dim"] == dim and info["columns"] == [f"pca_{i:02d}" for i in range(4)], rep
        assert "pca to 4 dims" in info["description"]
        vec = pd.read_parquet(d / "vectors.parquet")
        assert [c for c in vec.columns if c not in contract.VECTOR_META] == info["columns"]
    # pca to 4 dims keeps the four planted genre blobs apart
    s = pd.read_parquet(tmp_path / "clusters" / "raw" / "scores.parquet")
    assert (_nmi(s, algorithm="kmeans", level="song_mean", k=4, label="genre", scope="test") > 0.9).all()


@pytest.mark.slow
def test_reduce_umap(tmp_path: Path, repo_root: Path) -> None:
    pytest.importorskip("umap")
    paths = make_inputs(tmp_path / "in", models={})
    params = write_params(
        tmp_path / "params.yaml", repo_root, algorithms=["kmeans"], reduce="umap", reduce_dim=3
    )
    d = run_cluster(paths, "raw", params, tmp_path / "clusters")
    assert read_json(d / "info.json")["columns"] == ["umap_00", "umap_01", "umap_02"]
    # UMAP keeps the four planted genre blobs apart: K-Means at k=4 still recovers them
    s = pd.read_parquet(d / "scores.parquet")
    assert (_nmi(s, algorithm="kmeans", level="clip", k=4, label="genre", scope="all") > 0.8).all()


def test_fit_sample_plan_bounds_the_quadratic_algorithms() -> None:
    """Above cluster.fit_sample units, Ward/HDBSCAN/spectral fit a seeded sample; the rest join the nearest
    centroid, so planted blobs are still recovered and the result does not depend on anything but the seed."""
    from sklearn.metrics import normalized_mutual_info_score

    from musiclust.clustering.algorithms import WardTree, fit_sample_index, run_algorithm

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 400)
    x = rng.normal(size=(1200, 4)) * 0.3 + np.eye(4)[truth] * 4
    train = np.ones(len(x), bool)
    assert fit_sample_index(1200, 5000, seed=0) is None
    sample = fit_sample_index(1200, 150, seed=0)
    assert len(sample) == 150 and np.array_equal(sample, fit_sample_index(1200, 150, seed=0))
    for algorithm in ("agglomerative", "hdbscan", "spectral"):
        ward = WardTree(x[sample]) if algorithm == "agglomerative" else None
        c = run_algorithm(algorithm, x, train, 3, 0, min_samples=5, ward=ward, sample=sample)
        assert c.fit_on == "sample" and len(c.labels) == 1200 and c.info["fit_sample"] == 150
        assert normalized_mutual_info_score(truth, c.labels) > 0.95, algorithm
        again = run_algorithm(algorithm, x, train, 3, 0, min_samples=5, ward=ward, sample=sample)
        assert np.array_equal(c.labels, again.labels)


def test_nearest_centroid_in_bounded_chunks_matches_the_full_computation(monkeypatch) -> None:
    """Units outside a fit sample join the nearest centroid; many clusters (HDBSCAN finds hundreds)
    are handled in row chunks sized to the centroid count, with the same answer as all at once."""
    from musiclust.clustering import algorithms

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6))
    labels = rng.integers(-1, 40, size=200)  # noise (-1) is no centroid
    full = ((x[:, None, :] - _centroids(x[:200], labels)[None]) ** 2).sum(axis=2).argmin(axis=1)
    ids = np.array(sorted(set(labels.tolist()) - {-1}))
    monkeypatch.setattr(algorithms, "NEAREST_CHUNK_ELEMENTS", 40 * 6 * 7)  # 7 rows at a time
    got = algorithms.nearest_centroid(x, x[:200], labels)
    assert np.array_equal(got, ids[full])
    assert (algorithms.nearest_centroid(x, x[:200], np.full(200, -1)) == -1).all()


def _centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([x[labels == c].mean(axis=0) for c in sorted(set(labels.tolist()) - {-1})])


def _all_argv(paths: dict[str, Path], out: Path, params: Path, cache: Path | None) -> list[str]:
    """The command line dvc.yaml gives the ``cluster`` stage (every representation of params.yaml)."""
    argv = [
        "--segments", str(paths["segments"]), "--models", str(paths["models"]),
        "--features", str(paths["features"]), "--lyrics", str(paths["lyrics"]),
        "--out", str(out), "--params", str(params),
    ]  # fmt: skip
    return [*argv, "--cache", str(cache)] if cache is not None else argv


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_cluster_stage_reuses_unchanged_representations_byte_for_byte(
    tmp_path: Path, repo_root: Path
) -> None:
    """The stage clusters every representation of params.yaml (two at a time); a second run after one
    model's latents changed computes that model alone and copies the others from the store, and the
    folder equals, byte for byte, what a run without the store, one representation at a time, writes."""
    paths = make_inputs(tmp_path / "in", models={"vae": 4, "beta_vae": 4})
    params = write_params(
        tmp_path / "params.yaml", repo_root, models=("vae", "beta_vae"), baselines=["raw", "lyrics"]
    )
    cache, out = tmp_path / "store", tmp_path / "clusters"
    (out / "dropped_rep").mkdir(parents=True)  # a folder of a representation no longer selected
    first = stages.cluster.main(_all_argv(paths, out, params, cache))
    assert first == {"vae": "clustered", "beta_vae": "clustered", "raw": "clustered", "lyrics": "clustered"}
    assert sorted(p.name for p in out.iterdir()) == ["beta_vae", "lyrics", "raw", "vae"]

    # beta_vae re-trained: new latents (another draw of the same planted structure)
    make_inputs(tmp_path / "other", models={"beta_vae": 4}, seed=7)
    shutil.copyfile(
        tmp_path / "other" / "models" / "beta_vae" / "latents.parquet",
        paths["models"] / "beta_vae" / "latents.parquet",
    )
    second = stages.cluster.main(_all_argv(paths, out, params, cache))
    assert second == {"vae": "reused", "beta_vae": "clustered", "raw": "reused", "lyrics": "reused"}
    fresh = tmp_path / "fresh"  # no store, one representation at a time: the same bytes
    one_worker = write_params(
        tmp_path / "params_1.yaml",
        repo_root,
        models=("vae", "beta_vae"),
        baselines=["raw", "lyrics"],
        workers=1,
    )
    assert stages.cluster.main(_all_argv(paths, fresh, one_worker, None)) == {
        k: "clustered" for k in ("vae", "beta_vae", "raw", "lyrics")
    }
    assert _files(out) == _files(fresh)

    # a param the stage reads misses every entry; dropping a baseline misses none
    params_k = write_params(
        tmp_path / "params_k.yaml", repo_root, models=("vae", "beta_vae"), baselines=["raw"], pca_dim=4
    )
    assert stages.cluster.main(_all_argv(paths, out, params_k, cache)) == {
        "vae": "clustered", "beta_vae": "clustered", "raw": "clustered"
    }  # fmt: skip
    params_drop = write_params(
        tmp_path / "params_drop.yaml", repo_root, models=("vae", "beta_vae"), baselines=["raw"]
    )
    assert set(stages.cluster.main(_all_argv(paths, out, params_drop, cache)).values()) == {"reused"}
    assert sorted(p.name for p in out.iterdir()) == ["beta_vae", "raw", "vae"]
