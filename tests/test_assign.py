"""``musiclust assign``: settings checks (fast) and placing held-back songs (slow, real mini pipeline)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musiclust.assign import AssignError, ClusterSpace, check_compatibility, load_cluster_space, run
from musiclust.features.extract import FeatureConfig, feature_columns
from musiclust.params import load_params


@pytest.fixture
def params(repo_root: Path):
    return load_params(repo_root / "params.yaml")


def _ckpt(params, sets=("mfcc_stats",), shape=None) -> dict:
    cfg = FeatureConfig.from_params(params.audio.sample_rate, dataclasses.replace(params.features, sets=sets))
    cols = [c for s in sets for c in feature_columns(cfg).get(s, [])]
    inputs = {"x_kind": "vector", "feature_sets": list(sets), "columns": cols}
    if shape is not None:
        inputs = {"x_kind": "logmel", "feature_sets": ["logmel"], "shape": shape}
    return {"model_key": "vae", "inputs": inputs}


def _seg_report(params) -> dict:
    return {
        "audio": {
            "sample_rate": params.audio.sample_rate,
            "loudness_normalize": params.audio.loudness_normalize,
        },
        "params": {
            "window_s": params.segment.window_s,
            "hop_s": params.segment.hop_s,
            "silence_db": params.segment.silence_db,
        },
    }


def _scalers(params, sets=("mfcc_stats",)) -> dict:
    cfg = FeatureConfig.from_params(params.audio.sample_rate, dataclasses.replace(params.features, sets=sets))
    return {
        s: {"columns": c, "mean": [0.0] * len(c), "scale": [1.0] * len(c)}
        for s, c in feature_columns(cfg).items()
    }


def test_matching_settings_pass(params) -> None:
    assert check_compatibility(_ckpt(params), params, _seg_report(params), _scalers(params)) == []
    assert (
        check_compatibility(
            _ckpt(params, shape=[params.features.n_mels, params.features.logmel_frames]),
            params,
            _seg_report(params),
            None,
        )
        == []
    )


def test_changed_n_mfcc_is_refused(params) -> None:
    ckpt = _ckpt(params)
    changed = dataclasses.replace(params, features=dataclasses.replace(params.features, n_mfcc=13))
    problems = check_compatibility(ckpt, changed, _seg_report(params), _scalers(params))
    assert any("feature columns differ" in p and "n_mfcc=13" in p for p in problems)
    assert any("scalers.json columns" in p for p in problems)


def test_changed_sample_rate_and_window_are_refused(params) -> None:
    rep = _seg_report(params)
    rep["audio"]["sample_rate"] = 16000
    rep["params"]["window_s"] = 5.0
    problems = check_compatibility(_ckpt(params), params, rep, _scalers(params))
    assert any("16000 Hz" in p for p in problems) and any("segment.window_s=5.0" in p for p in problems)


def test_changed_logmel_shape_is_refused(params) -> None:
    problems = check_compatibility(_ckpt(params, shape=[32, 64]), params, _seg_report(params), None)
    assert any("logmel patches of [32, 64]" in p for p in problems)


def test_cluster_space_nearest_centroid() -> None:
    space = ClusterSpace(
        ["z_00", "z_01"],
        np.array(["a", "b", "c"]),
        np.array([[0.0, 0], [0, 1], [5, 5]]),
        np.array([0, 0, 1]),
        np.array([0, 1]),
        np.array([[0.0, 0.5], [5, 5]]),
        "r",
    )
    assert space.nearest_centroid(np.array([4.0, 4.0]))[0] == 1
    assert space.nearest_centroid(np.array([0.2, 0.1]))[0] == 0
    assert [s for s, _ in space.neighbours(np.array([0.0, 0.9]), 2)] == ["b", "a"]


def test_missing_pipeline_is_refused(tmp_path: Path, params) -> None:
    with pytest.raises(AssignError, match="run the pipeline"):
        load_cluster_space(tmp_path, "vae", 0, "kmeans", "genre")


def test_cli_refuses_missing_checkpoint(tmp_path: Path, repo_root: Path, caplog) -> None:
    import argparse

    from musiclust.assign import add_arguments

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    wav = tmp_path / "x.wav"
    args = ap.parse_args(
        [
            str(wav),
            "--model",
            "vae",
            "--pipeline-root",
            str(tmp_path),
            "--params",
            str(repo_root / "params.yaml"),
        ]
    )
    assert run(args) == 2
    assert "no such checkpoint" in caplog.text


# ----------------------------------------------------------------------------- real mini pipeline

TINY = {
    "seeds": [0],
    "data": {"demo": {"n_songs": 12, "min_duration_s": 8.0, "max_duration_s": 9.0}},
    "segment": {"window_s": 2.0, "hop_s": 2.0, "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
    "features": {"sets": ["mfcc_stats", "spectral"], "workers": 1},
    "lyrics": {"encoder": "tfidf-char", "dim": 8},
    "train": {
        "models": ["vae"],
        "max_steps": 6,
        "eval_every": 2,
        "patience": 2,
        "kl_warmup_steps": 2,
        "batch_size": 16,
    },
    "cluster": {"algorithms": ["kmeans"], "baselines": ["raw"]},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def mini_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """download -> segment -> featurize -> embed_lyrics -> train@vae -> cluster, by the stages' own mains."""
    import stages.cluster
    import stages.configure
    import stages.download
    import stages.embed_lyrics
    import stages.featurize
    import stages.segment
    import stages.train
    import yaml
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("pipe")
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")), TINY)
    pp = root / "params.yaml"
    pp.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    d = root / "data"
    stages.download.main(["--out", str(d / "raw"), "--params", str(pp)])
    stages.segment.main(["--raw", str(d / "raw"), "--out", str(d / "segments"), "--params", str(pp)])
    stages.featurize.main(
        ["--segments", str(d / "segments"), "--out", str(d / "features"), "--params", str(pp)]
    )
    stages.embed_lyrics.main(
        [
            "--raw",
            str(d / "raw"),
            "--segments",
            str(d / "segments"),
            "--out",
            str(d / "lyrics.parquet"),
            "--params",
            str(pp),
        ]
    )
    stages.configure.main(
        ["--lyrics", str(d / "lyrics.parquet"), "--out", str(d / "configs"), "--params", str(pp)]
    )
    stages.train.main(
        [
            "--model",
            "vae",
            "--config",
            str(d / "configs" / "vae"),
            "--segments",
            str(d / "segments"),
            "--features",
            str(d / "features"),
            "--out",
            str(root / "models" / "vae"),
            "--timings",
            str(root / "logs" / "train" / "vae.json"),
        ]
    )
    stages.cluster.main(
        [
            "--rep",
            "vae",
            "--segments",
            str(d / "segments"),
            "--model",
            str(root / "models" / "vae"),
            "--out",
            str(d / "clusters" / "vae"),
            "--params",
            str(pp),
        ]
    )
    return root


@pytest.mark.slow
def test_assign_reproduces_the_pipeline_for_a_corpus_song(mini_pipeline: Path) -> None:
    """A corpus song fed back through assign lands on its own latent and its own cluster."""
    from musiclust.assign import place_songs

    root = mini_pipeline
    params = load_params(root / "params.yaml")
    seg = pd.read_parquet(root / "data" / "segments" / "segments.parquet").drop_duplicates("song_id")
    songs = pd.read_parquet(root / "data" / "raw" / "songs.parquet").set_index("song_id")
    test_song = seg.loc[seg["split"] == "test", "song_id"].iloc[0]
    audio = root / "data" / "raw" / songs.loc[test_song, "audio_path"]
    junk = root / "notes.txt"
    junk.write_text("not audio", encoding="utf-8")
    placed = place_songs(root, [audio, junk], "vae", 0, params, "kmeans", "genre")
    ok, bad = placed
    assert bad.status == "skipped" and "unsupported format" in bad.reason
    assert ok.status == "ok" and ok.n_clips == int(
        (pd.read_parquet(root / "data" / "segments" / "segments.parquet")["song_id"] == test_song).sum()
    )
    # the nearest known song is the song itself, at (numerically) zero distance
    assert ok.neighbours[0]["song_id"] == test_song and ok.neighbours[0]["distance"] < 1e-3
    # and it joins the cluster the pipeline gave it (K-Means predicts the nearest centroid)
    space = load_cluster_space(root / "data" / "clusters", "vae", 0, "kmeans", "genre")
    assert ok.cluster == int(space.clusters[list(space.song_ids).index(test_song)])
    assert abs(sum(ok.makeup["genre"].values()) - 1.0) < 1e-6


@pytest.mark.slow
def test_assign_refuses_changed_feature_params(mini_pipeline: Path, caplog) -> None:
    import argparse

    import yaml

    from musiclust.assign import add_arguments

    root = mini_pipeline
    changed = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    changed["features"]["n_mfcc"] = 13
    pp = root / "changed.yaml"
    pp.write_text(yaml.safe_dump(changed), encoding="utf-8")
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    wav = next((root / "data" / "raw" / "audio").iterdir())
    args = ap.parse_args([str(wav), "--model", "vae", "--pipeline-root", str(root), "--params", str(pp)])
    assert run(args) == 2
    assert "does not match the current settings" in caplog.text and "n_mfcc=13" in caplog.text


@pytest.mark.slow
def test_assign_refuses_a_checkpoint_with_nan_weights_and_json_is_strict(
    mini_pipeline: Path, tmp_path: Path, caplog, capsys
) -> None:
    """NaN weights used to give exit 0, distance nan, arbitrary neighbours and bare NaN in --json."""
    import argparse
    import json
    import shutil

    import torch

    from musiclust.assign import add_arguments
    from musiclust.contracts.models import checkpoint_path
    from musiclust.models import save_checkpoint

    root = mini_pipeline
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    wav = sorted((root / "data" / "raw" / "audio").iterdir())[0]
    args = [str(wav), "--model", "vae", "--pipeline-root", str(root), "--json"]
    assert run(ap.parse_args(args)) == 0
    placed = json.loads(capsys.readouterr().out)  # strict JSON: no bare NaN or Infinity
    assert placed[0]["status"] == "ok" and placed[0]["distance"] is not None

    ckpt_file = checkpoint_path(root / "models" / "vae", 0)
    backup = tmp_path / "seed0.pt"
    shutil.copyfile(ckpt_file, backup)
    try:
        ckpt = torch.load(ckpt_file, weights_only=True)
        name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
        ckpt["state_dict"][name] = torch.full_like(ckpt["state_dict"][name], float("nan"))
        save_checkpoint(ckpt_file, ckpt)
        assert run(ap.parse_args(args)) == 2
        assert "non-finite weights" in caplog.text and name in caplog.text
        assert capsys.readouterr().out == ""
    finally:
        shutil.copyfile(backup, ckpt_file)


def _evaluate(root: Path) -> None:
    """The evaluate stage over the mini pipeline's one clustered representation (the explorer reads it)."""
    import stages.evaluate
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["models"] = {"vae": params["models"]["vae"]}
    params["train"]["models"] = ["vae"]
    params["cluster"]["baselines"] = []
    pp = root / "evaluate.yaml"
    pp.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    m = root / "metrics"
    stages.evaluate.main(
        [
            "--segments",
            str(root / "data" / "segments"),
            "--clusters",
            str(root / "data" / "clusters"),
            "--headline",
            str(m / "headline.json"),
            "--means",
            str(m / "means.csv"),
            "--table",
            str(m / "all.csv"),
            "--summary",
            str(m / "summary.json"),
            "--results",
            str(m / "results.md"),
            "--plots",
            str(root / "plots" / "metrics"),
            "--params",
            str(pp),
        ]
    )


@pytest.mark.slow
def test_assign_explore_draws_a_corpus_song_where_the_pipeline_drew_it(
    mini_pipeline: Path, tmp_path: Path
) -> None:
    """``--explore``: a corpus song fed back lands on its own PCA point (exact projection), near its
    own t-SNE point (mean of its nearest songs, labelled approximate), in its own clusters."""
    import argparse
    import json
    import re
    import shutil

    from tests.conftest import REPO

    from musiclust.assign import add_arguments

    root = mini_pipeline
    _evaluate(root)
    (root / ".dvc" / "plots").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / ".dvc" / "plots" / "offline.html", root / ".dvc" / "plots" / "offline.html")
    seg = pd.read_parquet(root / "data" / "segments" / "segments.parquet").drop_duplicates("song_id")
    songs = pd.read_parquet(root / "data" / "raw" / "songs.parquet").set_index("song_id")
    test_song = seg.loc[seg["split"] == "test", "song_id"].iloc[0]
    audio = root / "data" / "raw" / songs.loc[test_song, "audio_path"]
    out = tmp_path / "where.html"
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    args = ap.parse_args([str(audio), "--model", "vae", "--pipeline-root", str(root), "--explore", str(out)])
    assert run(args) == 0
    page = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="explore-data">(.*?)</script>', page, re.S).group(1))
    (new,) = data["new"]["songs"]
    assert data["new"]["representation"] == "vae" and new["title"] == audio.name
    vae = next(r for r in data["reps"] if r["name"] == "vae")
    i = data["songs"]["id"].index(test_song)
    pca = new["maps"]["pca"]
    assert pca["how"].startswith("exact")
    assert (
        abs(pca["x"] - vae["maps"]["pca"]["x"][i]) < 1e-3
        and abs(pca["y"] - vae["maps"]["pca"]["y"][i]) < 1e-3
    )
    # t-SNE: the mean map position of its 3 nearest songs in the latent space (itself among them)
    vec = pd.read_parquet(root / "data" / "clusters" / "vae" / "vectors.parquet")
    known = vec[(vec["level"] == "song_mean") & (vec["seed"] == 0)]
    cols = [c for c in known.columns if c.startswith("z_")]
    z = known.set_index("song_id").loc[test_song, cols].to_numpy(float)
    d = np.linalg.norm(known[cols].to_numpy(float) - z, axis=1)
    near = known["song_id"].to_numpy()[np.argsort(d, kind="stable")[:3]]
    assert test_song in near
    tsne = data["songs"]["id"]
    mean_x = np.mean([vae["maps"]["tsne"]["x"][tsne.index(s)] for s in near])
    assert (
        new["maps"]["tsne"]["how"].startswith("approximate") and abs(new["maps"]["tsne"]["x"] - mean_x) < 1e-2
    )
    for lab, cl in vae["clusters"].items():
        assert new["clusters"][lab]["cluster"] == cl["cluster"][i], lab
    assert new["audio"].startswith("data:audio/ogg;base64,")
    assert "1 new song(s) placed on vae" in page
