"""The evaluate stage on the ``cluster`` stage's outputs of a small synthetic dataset.

Genre is planted in the audio (features and latents), language in the lyrics; ``cvae`` saw genre
(info.json ``conditioned_on``), ``hybrid`` is not applicable, ``multimodal`` read the lyrics.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import stages.evaluate
from tests.test_clustering_stage import make_inputs, not_applicable_model, run_cluster, write_params

from musiclust.contracts import metrics as contract
from musiclust.fileio import read_json

MODELS = ("vae", "cvae", "vade", "multimodal", "hybrid")
BASELINES = ("raw", "pca", "lyrics")
NA_REASON = "no feature set the model reads was computed"


def evaluate_argv(clusters: Path, segments: Path, out: Path, params: Path) -> list[str]:
    """The command line ``dvc.yaml`` gives ``evaluate``, with outputs under ``out``."""
    return [
        "--segments", str(segments), "--clusters", str(clusters), "--headline", str(out / "headline.json"),
        "--means", str(out / "means.csv"), "--table", str(out / "all.csv"), "--summary", str(out / "summary.json"),
        "--results", str(out / "results.md"), "--plots", str(out / "plots"), "--params", str(params),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("eval")
    repo = Path(__file__).resolve().parents[1]
    paths = make_inputs(
        tmp / "in",
        models={"vae": 6, "cvae": 6, "vade": 6, "multimodal": 6},
        conditioned={"cvae": ["genre"]},
        multimodal=("multimodal",),
        leaky_column=True,
    )
    not_applicable_model(paths["models"], "hybrid", NA_REASON)
    params = write_params(
        tmp / "params.yaml",
        repo,
        models=MODELS,
        algorithms=["kmeans", "agglomerative"],
        baselines=list(BASELINES),
        # 8 test songs: enough for genre's 4 classes at 2 per class (the minimum is tested on its own)
        evaluate={"min_test_songs_per_class": 2},
    )
    clusters = tmp / "clusters"
    for rep in (*MODELS, *BASELINES):
        run_cluster(paths, rep, params, clusters)
    # a folder of a representation no longer in the pipeline (DVC leaves it behind): ignored
    shutil.copytree(clusters / "vae", clusters / "old_model")
    stages.evaluate.main(evaluate_argv(clusters, paths["segments"], tmp / "metrics", params))
    return {**paths, "clusters": clusters, "params": params, "out": tmp / "metrics", "tmp": tmp}


def _summary(evaluated: dict[str, Path]) -> dict:
    return read_json(evaluated["out"] / "summary.json")


def _leaves(d: object) -> list[object]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in _leaves(v)]
    return [d]


def test_every_output_is_written_with_its_columns(evaluated: dict[str, Path]) -> None:
    out = evaluated["out"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["headline.json", "means.csv", "all.csv", "summary.json", "results.md", "plots"]
    )
    means = pd.read_csv(out / "means.csv")
    table = pd.read_csv(out / "all.csv")
    assert list(means.columns) == contract.MEANS_COLUMNS and list(table.columns) == contract.SCORE_COLUMNS
    assert set(table["scope"]) == {"test", "all"} and set(table["seed"]) == {0, 1}
    assert set(table["representation"]) == {"vae", "cvae", "vade", "multimodal", "raw", "pca", "lyrics"}
    assert not table.duplicated(
        ["representation", "algorithm", "level", "scope", "k_mode", "k", "label", "seed"]
    ).any()
    assert (means["n_seeds"] == 2).all()  # models have two training seeds, baselines two clustering seeds
    assert not means.duplicated(contract.MEANS_COLUMNS[:10]).any()
    assert set(means.loc[means.representation == "vade", "algorithm"]) == {"kmeans", "agglomerative", "own"}
    # intervals only on the test scope, where the bootstrap resamples test songs
    assert means.loc[means.scope == "all", "nmi_low"].isna().all()
    assert means.loc[means.scope == "test", "nmi_low"].notna().any()
    for label in ("genre", "language"):
        bars = pd.read_csv(out / "plots" / f"{label}_nmi.csv")
        assert list(bars.columns) == ["representation", "nmi", "nmi_low", "nmi_high", "ami"]
        ranked = [e["representation"] for e in _summary(evaluated)["ranking"][label] if e["rank"] is not None]
        assert list(bars["representation"]) == ranked
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["genre_nmi.csv", "language_nmi.csv"]


def test_headline_is_numbers_only_per_representation_and_label(evaluated: dict[str, Path]) -> None:
    h = json.loads((evaluated["out"] / "headline.json").read_text())
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in _leaves(h)), h
    assert set(h) == {"vae", "cvae", "vade", "multimodal", "raw", "pca", "lyrics"}  # hybrid: not applicable
    for rep, d in h.items():
        labels = {"language"} if rep == "cvae" else {"language", "genre"}  # cvae saw genre
        assert set(d) - {"silhouette", "best_val_loss"} == labels, rep
        for label in labels:
            mig = {"mig"} if rep in MODELS else set()  # MIG of the latents: models only
            assert set(d[label]) == {"nmi", "nmi_low", "nmi_high", "ami", *mig}, (rep, label)
        assert ("best_val_loss" in d) == (rep in MODELS), rep
    for rep in ("vae", "cvae", "vade", "multimodal"):
        loss = read_json(evaluated["models"] / rep / "metrics.json")["best_val_loss_mean"]
        assert h[rep]["best_val_loss"] == pytest.approx(loss, abs=1e-4)
    assert h["raw"]["genre"]["nmi"] > 0.9 and h["vae"]["genre"]["nmi"] > 0.9  # planted in the audio
    assert h["lyrics"]["language"]["nmi"] > 0.9 and h["raw"]["language"]["nmi"] < 0.4  # in the lyrics only
    assert h["raw"]["genre"]["ami"] <= h["raw"]["genre"]["nmi"] + 1e-9


def test_summary_ranks_once_with_the_winner_on_top(evaluated: dict[str, Path]) -> None:
    s = _summary(evaluated)
    assert set(s) == set(contract.SUMMARY_KEYS)
    assert s["labels"] == ["language", "genre"]
    assert (s["n_test_songs"], s["n_test_clips"]) == (8, 32)
    assert s["interval"]["bootstrap"] == 200 and s["interval"]["ci"] == 0.95
    assert s["headline_protocol"]["algorithm"] == "kmeans" and s["headline_protocol"]["level"] == "song_mean"
    assert "kmeans" in s["ranking_rule"]
    for label, entries in s["ranking"].items():
        assert set(entries[0]) == set(contract.RANK_KEYS)
        ranked = [e for e in entries if e["rank"] is not None]
        assert [e["rank"] for e in ranked] == list(range(1, len(ranked) + 1))
        assert [e["nmi"] for e in ranked] == sorted((e["nmi"] for e in ranked), reverse=True)
        assert s["winner"][label]["representation"] == ranked[0]["representation"]
        assert s["winner"][label]["nmi"] == ranked[0]["nmi"]
        assert "hybrid" not in {e["representation"] for e in entries} and "old_model" not in {
            e["representation"] for e in entries
        }
        # paired differences: the winner has none; the others say whether they can be told apart
        others = [e for e in ranked[1:] if not e["separable_from_winner"]]
        assert s["winner"][label]["not_separable_from"] == [e["representation"] for e in others]
        for e in ranked[1:]:
            assert e["diff_low"] <= e["diff_high"] and e["separable_from_winner"] == (e["diff_high"] < 0)
    lang = {e["representation"]: e for e in s["ranking"]["language"]}
    assert s["winner"]["language"]["representation"] in {"lyrics", "multimodal"}
    assert lang["raw"]["separable_from_winner"] is True  # NMI ~0 against ~1 on the same songs
    assert s["best_per_modality"]["language"]["lyrics"] == "lyrics"
    assert s["best_per_modality"]["language"]["audio+lyrics"] == "multimodal"
    assert lang["multimodal"]["modality"] == "audio+lyrics"


def test_conditioned_model_is_listed_not_ranked(evaluated: dict[str, Path]) -> None:
    s = _summary(evaluated)
    assert s["conditioned"] == {"cvae": ["genre"]}
    genre = {e["representation"]: e for e in s["ranking"]["genre"]}
    assert genre["cvae"]["conditioned"] is True and genre["cvae"]["rank"] is None
    assert genre["cvae"]["separable_from_winner"] is False
    assert s["ranking"]["genre"][-1]["representation"] == "cvae"  # listed after the ranked ones
    lang = {e["representation"]: e for e in s["ranking"]["language"]}
    assert lang["cvae"]["conditioned"] is False and lang["cvae"]["rank"] is not None
    assert s["winner"]["genre"]["representation"] != "cvae"


def test_not_applicable_model_is_reported_and_never_ranked(evaluated: dict[str, Path]) -> None:
    s = _summary(evaluated)
    assert s["not_applicable"] == {"hybrid": NA_REASON}
    assert "hybrid" not in s["training"] and set(s["training"]) == {"vae", "cvae", "vade", "multimodal"}
    table = pd.read_csv(evaluated["out"] / "all.csv")
    assert "hybrid" not in set(table["representation"])
    assert f"hybrid: {NA_REASON}" in (evaluated["out"] / "results.md").read_text()


def test_intervals_bracket_the_estimate_and_move_with_the_songs(evaluated: dict[str, Path]) -> None:
    s = _summary(evaluated)
    entries = [e for label in s["ranking"] for e in s["ranking"][label]]
    assert all(e["nmi_low"] <= e["nmi_high"] for e in entries)
    inside = [e["nmi_low"] - 1e-3 <= e["nmi"] <= e["nmi_high"] + 1e-3 for e in entries]
    assert sum(inside) >= 0.8 * len(inside), [
        (e["representation"], e["nmi"], e["nmi_low"], e["nmi_high"]) for e in entries
    ]
    # audio representations barely know the language: which 8 songs are drawn moves their NMI
    weak = [e for e in s["ranking"]["language"] if e["modality"] == "audio"]
    assert weak and all(e["nmi_high"] - e["nmi_low"] > 0.05 for e in weak)
    assert all(e["ami_low"] is not None and e["ami_low"] <= e["ami_high"] for e in weak)
    means = pd.read_csv(evaluated["out"] / "means.csv")
    test = means[(means.scope == "test") & means.nmi_low.notna()]
    assert ((test.nmi_low >= 0) & (test.nmi_high <= 1)).all()


def test_leakage_audit_flags_the_planted_column(evaluated: dict[str, Path]) -> None:
    flagged = _summary(evaluated)["leakage"]["flagged"]
    assert {"representation": "raw", "label": "language", "column": "mfcc_23"} in [
        {k: f[k] for k in ("representation", "label", "column")} for f in flagged
    ]
    assert not any(f["label"] == "genre" and f["representation"] == "lyrics" for f in flagged)


def test_results_markdown_lists_the_ranking(evaluated: dict[str, Path]) -> None:
    s = _summary(evaluated)
    text = (evaluated["out"] / "results.md").read_text()
    for label, entries in s["ranking"].items():
        assert f"**{label}** (winner: {s['winner'][label]['representation']}" in text
        for e in entries:
            if e["rank"] is not None:
                assert f"| {e['rank']} | {e['representation']}" in text, (label, e["representation"])
    assert "| — | cvae (saw this label: not ranked) |" in text
    assert "old_model" not in text


def test_evaluate_is_deterministic(evaluated: dict[str, Path]) -> None:
    again = evaluated["tmp"] / "again"
    stages.evaluate.main(
        evaluate_argv(evaluated["clusters"], evaluated["segments"], again, evaluated["params"])
    )
    for p in sorted(evaluated["out"].rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (again / p.relative_to(evaluated["out"])).read_bytes(), p.name


def test_missing_representation_folder_names_its_stage(evaluated: dict[str, Path], tmp_path: Path) -> None:
    clusters = tmp_path / "clusters"
    shutil.copytree(evaluated["clusters"], clusters)
    shutil.rmtree(clusters / "pca")
    with pytest.raises(FileNotFoundError, match=r"pca.*dvc repro cluster`"):
        stages.evaluate.main(
            evaluate_argv(clusters, evaluated["segments"], tmp_path / "m", evaluated["params"])
        )
    with pytest.raises(FileNotFoundError, match=r"cluster stage"):
        stages.evaluate.main(
            evaluate_argv(tmp_path / "nope", evaluated["segments"], tmp_path / "m", evaluated["params"])
        )


def test_bootstrap_count_mismatch_says_to_recluster(
    evaluated: dict[str, Path], tmp_path: Path, repo_root: Path
) -> None:
    params = write_params(
        tmp_path / "params.yaml",
        repo_root,
        models=MODELS,
        evaluate={"bootstrap": 300},
        algorithms=["kmeans", "agglomerative"],
        baselines=list(BASELINES),
    )
    # the one case where re-running the cluster stage helps: it scored under another evaluate.bootstrap
    with pytest.raises(ValueError, match=r"data/clusters/lyrics holds \[200\] resamples.*Run `dvc repro`"):
        stages.evaluate.main(
            evaluate_argv(evaluated["clusters"], evaluated["segments"], tmp_path / "m", params)
        )


def test_every_flagged_pair_is_listed_with_its_count() -> None:
    """A representation with many flagged columns does not crowd the others out of the list."""
    from musiclust.contracts.metrics import MAX_FLAGGED_PER_PAIR, _flagged

    rows = [("lyrics", "language", f"emb_{i:03d}", 0.99 - i / 1000) for i in range(60)]
    rows += [("multimodal", "language", "z_00", 0.97), ("shared_private", "language", "z_03", 0.96)]
    leak = pd.DataFrame(rows, columns=["representation", "label", "column", "balanced_accuracy"])
    leak["flagged"] = True
    out = _flagged(leak)
    assert {(f["representation"], f["label"]) for f in out} == {
        ("lyrics", "language"),
        ("multimodal", "language"),
        ("shared_private", "language"),
    }
    lyrics = [f for f in out if f["representation"] == "lyrics"]
    assert len(lyrics) == MAX_FLAGGED_PER_PAIR and lyrics[0]["column"] == "emb_000"
    assert all(f["columns_flagged"] == 60 for f in lyrics)
