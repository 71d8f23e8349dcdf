"""The cluster stage on a small synthetic dataset laid out as docs/pipeline.md says.

``make_inputs`` is also used by the evaluate tests and, at demo scale, to time
the two stages (``python tests/test_clustering_stage.py <dir>``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stages.cluster
import yaml

from musiclust.clustering.representations import lyrics_representation, reduce_representation
from musiclust.features.store import Scaler

LANGS = ("en", "bn")
GENRES = ("pop", "rock", "folk", "electronic")


def make_inputs(
    root: Path,
    n_songs: int = 24,
    clips_per_song: int = 4,
    models: dict[str, int] | None = None,
    seeds: tuple[int, ...] = (0, 1),
    seed: int = 0,
    leaky_column: bool = False,
    lyrics_dim: int = 32,
    n_audio: int = 40,
) -> dict[str, Path]:
    """Write segments, features (+scalers), lyrics and models/<key>/ under ``root``.

    Genre is carried by the audio features and the model latents, language by the
    lyrics embedding; ``vade`` gets its own ``cluster`` column and ``cvae`` says in
    info.json that it saw ``language``. One song has no lyrics and one clip is silent.
    With ``leaky_column`` the mfcc_stats set gets a column that encodes the language
    (like a clip-length column that differs by source), which the audit must flag.
    """
    rng = np.random.default_rng(seed)
    models = {"vae": 8, "vade": 8, "cvae": 8} if models is None else models
    songs = [f"song_{i:03d}" for i in range(n_songs)]
    lang = [LANGS[i % 2] for i in range(n_songs)]
    genre = [GENRES[(i // 2) % 4] for i in range(n_songs)]
    split = ["train" if i % 10 < 6 else ("val" if i % 10 < 8 else "test") for i in range(n_songs)]
    rows = []
    for i, s in enumerate(songs):
        for c in range(clips_per_song):
            rows.append({
                "segment_id": f"{s}__{c:04d}", "song_id": s, "clip_index": c, "start_s": 3.0 * c,
                "end_s": 3.0 * c + 3, "split": split[i], "is_silent": False, "shard": 0, "row": len(rows),
                "language": lang[i], "genre": genre[i] if i != 1 else None, "has_lyrics": i != 2,
            })
    seg = pd.DataFrame(rows)
    seg.loc[len(seg) - 1, "is_silent"] = True
    (root / "segments").mkdir(parents=True)
    seg.to_parquet(root / "segments" / "segments.parquet", index=False)

    g_code = np.array([GENRES.index(genre[songs.index(s)]) if genre[songs.index(s)] else 0 for s in seg["song_id"]])
    centres = rng.normal(0, 3.0, size=(4, n_audio))
    mfcc = centres[g_code] + rng.normal(0, 1.0, size=(len(seg), n_audio))
    spec = centres[g_code][:, :10] * 0.5 + rng.normal(0, 1.0, size=(len(seg), 10))
    if leaky_column:
        mfcc[:, -1] = (seg["language"] == "bn").to_numpy() * 5.0 + rng.normal(0, 0.1, len(seg))
    fdir = root / "features"
    fdir.mkdir()
    train = (seg["split"] == "train").to_numpy()
    scalers = {}
    for name, x, prefix in (("mfcc_stats", mfcc, "mfcc_"), ("spectral", spec, "spec_")):
        cols = [f"{prefix}{j:02d}" for j in range(x.shape[1])]
        df = pd.DataFrame(x.astype(np.float32), columns=cols)
        df.insert(0, "segment_id", seg["segment_id"])
        df.to_parquet(fdir / f"{name}.parquet", index=False)
        scalers[name] = Scaler.fit(cols, x[train]).to_dict()
    (fdir / "scalers.json").write_text(json.dumps(scalers))

    lang_centre = rng.normal(0, 1.0, size=(2, lyrics_dim))
    emb = lang_centre[[LANGS.index(x) for x in lang]] + rng.normal(0, 0.3, size=(n_songs, lyrics_dim))
    ly = pd.DataFrame(emb.astype(np.float32), columns=[f"emb_{j:03d}" for j in range(lyrics_dim)])
    ly.insert(0, "encoder", "synthetic")
    ly.insert(0, "has_lyrics", [i != 2 for i in range(n_songs)])
    ly.insert(0, "song_id", songs)
    ly.loc[2, [f"emb_{j:03d}" for j in range(lyrics_dim)]] = 0.0
    ly.to_parquet(root / "lyrics.parquet", index=False)

    mdir = root / "models"
    for key, dim in models.items():
        d = mdir / key
        d.mkdir(parents=True)
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
        pd.concat(frames).to_parquet(d / "latents.parquet", index=False)
        info = {"model_key": key, "conditioned_on": ["language"] if key == "cvae" else [], "latent_dim": dim,
                "seeds": list(seeds), "inputs": {"feature_sets": ["mfcc_stats"]}}
        if key == "multimodal":
            info["inputs"]["text"] = {"encoder": "synthetic", "dim": lyrics_dim}
        (d / "info.json").write_text(json.dumps(info))
    (mdir / "broken").mkdir(parents=True)  # a folder without latents is reported, not fatal
    return {"segments": root / "segments", "features": fdir, "lyrics": root / "lyrics.parquet", "models": mdir}


def write_params(path: Path, repo_root: Path, seeds: tuple[int, ...] = (0, 1), **cluster: object) -> Path:
    """The repository's params.yaml with ``seeds`` and ``cluster`` overrides."""
    p = yaml.safe_load((repo_root / "params.yaml").read_text())
    p["seeds"] = list(seeds)
    p["train"]["features"] = ["mfcc_stats"]
    p["cluster"].update(cluster)
    path.write_text(yaml.safe_dump(p))
    return path


def _run(tmp_path: Path, repo_root: Path, **cluster: object) -> Path:
    paths = make_inputs(tmp_path / "in")
    params = write_params(tmp_path / "params.yaml", repo_root, **cluster)
    out = tmp_path / "clusters"
    stages.cluster.main([
        "--segments", str(paths["segments"]), "--features", str(paths["features"]), "--lyrics", str(paths["lyrics"]),
        "--models", str(paths["models"]), "--out", str(out), "--params", str(params),
    ])
    return out


def test_cluster_stage_outputs_and_protocol(tmp_path: Path, repo_root: Path) -> None:
    out = _run(tmp_path, repo_root, spectral_max_units=30)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["representations"]) == {"vae", "vade", "cvae", "raw", "pca", "spectral_features", "lyrics"}
    assert manifest["representations"]["cvae"]["conditioned_on"] == ["language"]
    assert manifest["representations"]["pca"]["dim"] == 8  # the models' latent dimension
    assert manifest["clips"] == {"clips_in": 96, "dropped_silent": 1, "dropped_bad_split": 0, "clips_used": 95}
    assert manifest["representations"]["lyrics"]["counts"]["songs_without_lyrics"] == 1

    runs = pd.read_parquet(out / "runs.parquet")
    a = pd.read_parquet(out / "assignments.parquet")
    for col in ("run_id", "representation", "algorithm", "seed", "level", "fit_on", "k", "for_labels",
                "unit_id", "song_id", "split", "cluster"):
        assert col in a.columns
    assert set(a["run_id"].astype(str)) == set(runs["run_id"])
    # per_label k: language has 2 classes, genre 4 (the null genre is not a class)
    assert set(runs.loc[runs.k_mode == "per_label", "k"]) == {2, 4}
    assert set(runs.loc[(runs.k == 2) & (runs.k_mode == "per_label"), "for_labels"]) == {"language"}
    # predictive algorithms fit on train, the others on all units
    assert set(runs.loc[runs.algorithm.isin(["kmeans", "gmm"]), "fit_on"]) == {"train"}
    assert set(runs.loc[runs.algorithm.isin(["agglomerative", "hdbscan", "spectral"]), "fit_on"]) == {"all"}
    # spectral: 95 clips > 30 -> skipped at clip level, run on the 24 songs
    assert set(runs.loc[runs.algorithm == "spectral", "level"]) == {"song_mean"}
    assert any(s["algorithm"] == "spectral" and s["level"] == "clip" for s in manifest["skipped_runs"])
    # VaDE's own assignments are a method of their own
    own = runs[runs.algorithm == "own"]
    assert set(own.representation) == {"vade"} and set(own.level) == {"clip", "song_vote"}
    # baselines get every seed; every clip-level run covers every usable clip
    assert set(runs.loc[runs.representation == "raw", "seed"]) == {0, 1}
    clip_runs = runs[(runs.level == "clip") & (runs.representation == "raw")]
    assert (clip_runs.n_units == 95).all()
    assert (runs.loc[(runs.level == "clip") & (runs.representation == "lyrics"), "n_units"] == 91).all()
    # song levels have one unit per song
    assert (runs.loc[(runs.level != "clip") & (runs.representation == "raw"), "n_units"] == 24).all()
    vec = pd.read_parquet(out / "vectors" / "raw.parquet")
    assert {"seed", "level", "unit_id", "song_id", "split", "mfcc_00"} <= set(vec.columns)
    assert set(vec.level) == {"clip", "song_mean"}


def test_cluster_stage_finds_the_planted_genres(tmp_path: Path, repo_root: Path) -> None:
    """Genre is planted in the features: K-Means on raw at k=4 must recover it well."""
    out = _run(tmp_path, repo_root, algorithms=["kmeans"], baselines=["raw"])
    a = pd.read_parquet(out / "assignments.parquet")
    seg = pd.read_parquet(tmp_path / "in" / "segments" / "segments.parquet").set_index("segment_id")
    run = a[(a.representation == "raw") & (a.level == "clip") & (a.k == 4) & (a.seed == 0)]
    g = seg.loc[run.unit_id, "genre"].to_numpy()
    from sklearn.metrics import adjusted_rand_score

    ok = pd.notna(g)
    assert adjusted_rand_score(g[ok], run.cluster.to_numpy()[ok]) > 0.9


def test_cluster_auto_k(tmp_path: Path, repo_root: Path) -> None:
    out = _run(tmp_path, repo_root, algorithms=["kmeans", "gmm"], baselines=["raw"], k="auto", k_range=[2, 6])
    runs = pd.read_parquet(out / "runs.parquet")
    raw = runs[(runs.representation == "raw") & (runs.level == "clip")]
    # four well-separated genre blobs: silhouette (kmeans) and BIC (gmm) should both pick 4
    assert set(raw.k) == {4}, raw[["algorithm", "k", "info"]]
    assert set(runs.for_labels) == {"*"}


def test_umap_without_the_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    rep = lyrics_representation(
        pd.DataFrame({"segment_id": ["a__0000", "b__0000"], "song_id": ["a", "b"], "split": ["train", "test"]}),
        pd.DataFrame({"song_id": ["a", "b"], "has_lyrics": [True, True], "emb_000": [0.0, 1.0], "emb_001": [1.0, 0.0]}),
    )
    with pytest.raises(ValueError, match="pip install umap-learn"):
        reduce_representation(rep, "umap", 1)


@pytest.mark.slow
def test_cluster_reduce_umap(tmp_path: Path, repo_root: Path) -> None:
    pytest.importorskip("umap")
    out = _run(tmp_path, repo_root, algorithms=["kmeans"], baselines=["raw"], reduce="umap", reduce_dim=3)
    fed = pd.read_parquet(out / "fed" / "raw.parquet")
    assert [c for c in fed.columns if c.startswith("umap_")] == ["umap_00", "umap_01", "umap_02"]
    # UMAP keeps the four planted genre blobs apart: K-Means at k=4 still recovers them
    a = pd.read_parquet(out / "assignments.parquet")
    seg = pd.read_parquet(tmp_path / "in" / "segments" / "segments.parquet").set_index("segment_id")
    run = a[(a.representation == "raw") & (a.level == "clip") & (a.k == 4) & (a.seed == 0)]
    g = seg.loc[run.unit_id, "genre"].to_numpy()
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(g[pd.notna(g)], run.cluster.to_numpy()[pd.notna(g)]) > 0.8


def test_cluster_reduce_pca_writes_fed_vectors(tmp_path: Path, repo_root: Path) -> None:
    out = _run(tmp_path, repo_root, algorithms=["kmeans"], baselines=["raw", "lyrics"], reduce="pca", reduce_dim=4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["representations"]["raw"]["fed_dim"] == 4
    assert (out / "fed" / "raw.parquet").is_file() and (out / "vectors" / "raw.parquet").is_file()
    fed = pd.read_parquet(out / "fed" / "raw.parquet")
    assert [c for c in fed.columns if c.startswith("pca_")] == [f"pca_{i:02d}" for i in range(4)]


def test_bad_model_inputs_are_counted_not_fatal(tmp_path: Path, repo_root: Path) -> None:
    paths = make_inputs(tmp_path / "in", models={"vae": 8, "ae": 8, "nolabel": 8})
    lat = pd.read_parquet(paths["models"] / "vae" / "latents.parquet")
    lat.loc[lat.index[:3], "z_00"] = np.nan  # 3 rows of seed 0 unusable
    lat = lat.drop(lat.index[10:12])  # 2 rows of seed 0 missing
    lat.to_parquet(paths["models"] / "vae" / "latents.parquet", index=False)
    pd.read_parquet(paths["models"] / "nolabel" / "latents.parquet").drop(columns="seed").to_parquet(
        paths["models"] / "nolabel" / "latents.parquet", index=False)
    (paths["models"] / "ae" / "info.json").unlink()
    params = write_params(tmp_path / "params.yaml", repo_root, algorithms=["kmeans"], baselines=["raw"])
    out = tmp_path / "clusters"
    stages.cluster.main([
        "--segments", str(paths["segments"]), "--features", str(paths["features"]),
        "--models", str(paths["models"]), "--out", str(out), "--params", str(params),
    ])
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["representations"]["vae"]["counts"]
    # 95 usable clips in; seed 0: 2 without a vector + 3 non-finite -> 90; seed 1 untouched
    assert (counts["seed_0_dropped_missing_vector"], counts["seed_0_dropped_non_finite"], counts["seed_0_clips"]) == (2, 3, 90)
    assert counts["seed_1_clips"] == 95
    assert "ae" in manifest["representations"]  # no info.json: clustered, with a warning
    assert [s["representation"] for s in manifest["skipped_representations"]] == ["nolabel"]
    assert "seed" in manifest["skipped_representations"][0]["reason"]


if __name__ == "__main__":  # build a demo-scale synthetic input set for timing
    root = Path(sys.argv[1])
    keys = {k: (16 if k == "conv_vae" else 8) for k in
            ("autoencoder", "vae", "beta_vae", "conv_vae", "cvae", "vade", "multimodal", "hybrid")}
    make_inputs(root, n_songs=120, clips_per_song=15, models=keys, seeds=(0, 1, 2), lyrics_dim=384, n_audio=160)
    print(root)
