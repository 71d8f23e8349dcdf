"""The evaluate stage on the cluster stage's output for a small synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import stages.cluster
import stages.evaluate
from tests.test_clustering_stage import make_inputs, write_params


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("eval")
    repo = Path(__file__).resolve().parents[1]
    paths = make_inputs(tmp / "in", n_songs=30, leaky_column=True,
                        models={"vae": 8, "vade": 8, "cvae": 8, "multimodal": 8})
    params = write_params(tmp / "params.yaml", repo, seeds=(0, 1), spectral_max_units=40)
    stages.cluster.main([
        "--segments", str(paths["segments"]), "--features", str(paths["features"]), "--lyrics", str(paths["lyrics"]),
        "--models", str(paths["models"]), "--out", str(tmp / "clusters"), "--params", str(params),
    ])
    out = {
        "metrics": tmp / "metrics" / "evaluate.json", "table": tmp / "metrics" / "all.csv",
        "means": tmp / "metrics" / "means.csv", "summary": tmp / "metrics" / "summary.json", "plots": tmp / "plots",
        "results": tmp / "metrics" / "results.md",
    }
    stages.evaluate.main([
        "--segments", str(paths["segments"]), "--clusters", str(tmp / "clusters"), "--metrics", str(out["metrics"]),
        "--table", str(out["table"]), "--means", str(out["means"]), "--summary", str(out["summary"]),
        "--plots", str(out["plots"]), "--results", str(out["results"]), "--params", str(params),
    ])
    return out


def test_declared_outputs_exist_with_columns(evaluated):
    table = pd.read_csv(evaluated["table"])
    for col in ("representation", "algorithm", "level", "scope", "label", "seed", "fit_on", "k", "ari", "nmi",
                "v_measure", "homogeneity", "completeness", "purity", "accuracy", "silhouette", "silhouette_n",
                "calinski_harabasz", "davies_bouldin", "noise_fraction", "unsupervised", "leakage_flag"):
        assert col in table.columns, col
    assert set(table["scope"]) == {"test", "all"}
    assert set(table["level"]) == {"clip", "song_mean", "song_vote"}
    results = evaluated["results"].read_text()
    assert "| representation | kind |" in results and "| vae | model |" in results
    assert set(table["seed"]) == {0, 1}
    # one row per representation x algorithm x level x scope x label x seed
    assert not table.duplicated(["representation", "algorithm", "level", "scope", "label", "seed"]).any()
    means = pd.read_csv(evaluated["means"])
    assert {"nmi", "nmi_low", "nmi_high", "nmi_ci", "n_seeds"} <= set(means.columns)
    assert (means["n_seeds"] == 2).all()
    bars = pd.read_csv(evaluated["plots"] / "genre_nmi.csv")
    assert {"method", "nmi", "nmi_low", "nmi_high"} <= set(bars.columns)
    assert "raw/kmeans" in set(bars["method"]) and "vade/own" in set(bars["method"])


def test_headline_metrics_keys_and_scores(evaluated):
    m = json.loads(evaluated["metrics"].read_text())
    g = m["raw"]["kmeans"]["genre"]
    assert {"nmi", "nmi_ci95", "ari", "accuracy", "silhouette", "nmi_all", "song_nmi"} <= set(g)
    assert g["nmi"] > 0.8  # genre is planted in the features
    assert m["lyrics"]["kmeans"]["language"]["nmi"] > 0.8  # language is planted in the lyrics
    assert m["raw"]["kmeans"]["language"]["nmi"] < 0.5
    assert m["cvae"]["kmeans"]["language"]["conditioned_on_label"] == 1
    assert "conditioned_on_label" not in m["cvae"]["kmeans"]["genre"]
    assert "own" in m["vade"]


def test_leakage_and_conditioning_are_flagged(evaluated):
    s = json.loads(evaluated["summary"].read_text())
    # the planted language column of mfcc_stats is found, in raw (not in pca, which mixes it away)
    assert "raw.language" in s["leakage"]["flagged"]
    assert any(c["column"] == "mfcc_39" and c["representation"] == "raw" for c in s["leakage"]["flagged_columns"])
    assert "raw.genre" not in s["leakage"]["flagged"]
    assert s["not_unsupervised"] == ["cvae.language"]
    table = pd.read_csv(evaluated["table"])
    cv = table[table.representation == "cvae"]
    assert not cv.loc[cv.label == "language", "unsupervised"].any() and cv.loc[cv.label == "genre", "unsupervised"].all()
    assert table.loc[(table.representation == "raw") & (table.label == "language"), "leakage_flag"].all()


def test_significance_and_protocol_are_stated(evaluated):
    s = json.loads(evaluated["summary"].read_text())
    assert "Student-t" in s["protocol"]["interval"] and "paired t-test" in s["protocol"]["significance"]
    comps = [c for c in s["comparisons"] if c["representation"] == "vae" and c["algorithm"] == "kmeans"
             and c["label"] == "genre" and c["level"] == "clip" and c["scope"] == "test"]
    assert len(comps) == 1 and comps[0]["n_pairs"] == 2
    assert comps[0]["baseline"].endswith("/kmeans")
    assert all(("not significant" in c["verdict"]) == (not c["significant"]) for c in s["comparisons"])
    # audio-only, lyrics-only and multimodal side by side, per label
    assert set(s["best_by_modality"]["language"]) == {"audio", "lyrics", "audio+lyrics"}
    assert s["best_by_modality"]["language"]["lyrics"]["method"].startswith("lyrics/")
    assert isinstance(s["not_significant"], list)
    assert any(sk["algorithm"] == "spectral" and sk["level"] == "clip" for sk in s["skipped_runs"])


def test_evaluate_without_cluster_output_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the cluster stage"):
        stages.evaluate.main([
            "--segments", str(tmp_path), "--clusters", str(tmp_path / "nope"), "--metrics", str(tmp_path / "m.json"),
            "--table", str(tmp_path / "t.csv"), "--plots", str(tmp_path / "p"), "--means", str(tmp_path / "m.csv"),
            "--summary", str(tmp_path / "s.json"), "--results", str(tmp_path / "r.md"),
        ])
