"""The report stage on a small but realistic set of the files cluster, evaluate and train write.

Answers are known by construction: 12 songs (2 genres x 2 languages x 3), 4 representations of
which ``lyrics`` is not applicable, ``vae`` wins genre and ``pca`` wins language, int16 audio
shards holding one tone per song, and a ``raw`` t-SNE map whose points all coincide.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musiclust.contracts.clusters import ASSIGNMENT_COLUMNS
from musiclust.contracts.metrics import MEANS_COLUMNS
from musiclust.contracts.shards import ShardWriter, to_pcm16
from musiclust.fileio import write_json, write_parquet
from musiclust.reporting.build import ReportError
from musiclust.reporting.excerpts import central_songs, encode_ogg, song_excerpt
from musiclust.reporting.inputs import ReportInputError
from musiclust.reporting.pdf import find_chromium, fixed_stamps

REPO = Path(__file__).resolve().parents[1]
#: the offline dvc plots template: the explorer's vega libraries
VEGA = REPO / ".dvc" / "plots" / "offline.html"
SR = 8000
CLIP_S = 1.0
CLIPS_PER_SONG = 4
GENRES = ("pop", "folk")
LANGS = ("en", "bn")
LABELS = ("language", "genre")
REPS = {  # name -> (kind, modality, applicable)
    "vae": ("model", "audio", True),
    "pca": ("baseline", "audio", True),
    "raw": ("baseline", "audio", True),
    "lyrics": ("baseline", "lyrics", False),
}
NOT_APPLICABLE_REASON = "no song has lyrics"
RULE = "Ranked by mean NMI on test songs; the winner is rank 1 (ties broken by AMI)."
WINNER = {"genre": "vae", "language": "pca"}
N_TEST = 4


def tone_freq(k: int) -> float:
    return 200.0 + 50.0 * k


def _songs() -> pd.DataFrame:
    rows = []
    for g in GENRES:
        for lang in LANGS:
            for j in range(3):
                k = len(rows)
                rows.append(
                    {
                        "song_id": f"s{k:02d}",
                        "title": f"Song {k} {g}/{lang}",
                        "artist": f"Artist <{j}> & co",
                        "language": lang,
                        "genre": g,
                        "duration_s": CLIPS_PER_SONG * CLIP_S,
                        "has_lyrics": False,
                        "source": "demo",
                    }
                )
    return pd.DataFrame(rows)


def _split(k: int) -> str:
    return ("train", "train", "test")[k % 3] if k % 6 else "val"


def _ranking_row(rank: int, rep: str, nmi: float, separable: bool, winner: bool) -> dict:
    kind, modality, _ = REPS[rep]
    return {
        "rank": rank,
        "representation": rep,
        "kind": kind,
        "modality": modality,
        "conditioned": False,
        "nmi": nmi,
        "nmi_low": round(nmi - 0.1, 4),
        "nmi_high": round(nmi + 0.1, 4),
        "ami": nmi - 0.05,
        "ami_low": nmi - 0.15,
        "ami_high": nmi + 0.05,
        "silhouette": 0.3,
        "diff_low": None if winner else -0.3,
        "diff_high": None if winner else (0.05 if not separable else -0.01),
        "separable_from_winner": separable,
    }


def summary_json() -> dict:
    ranking = {
        "genre": [
            _ranking_row(1, "vae", 0.8123, False, True),
            _ranking_row(2, "pca", 0.7012, False, False),
            _ranking_row(3, "raw", 0.2, True, False),
        ],
        "language": [
            _ranking_row(1, "pca", 0.5012, False, True),
            _ranking_row(2, "raw", 0.4, True, False),
            _ranking_row(3, "vae", 0.3, True, False),
        ],
    }
    winner = {
        lab: {
            k: rows[0][k]
            for k in ("representation", "nmi", "nmi_low", "nmi_high", "ami", "ami_low", "ami_high")
        }
        | {"not_separable_from": [r["representation"] for r in rows[1:] if not r["separable_from_winner"]]}
        for lab, rows in ranking.items()
    }
    return {
        "labels": list(LABELS),
        "n_test_songs": N_TEST,
        "n_test_clips": N_TEST * CLIPS_PER_SONG,
        "interval": {"ci": 0.9, "bootstrap": 500, "method": "percentile bootstrap over test songs and seeds"},
        "headline_protocol": {
            "algorithm": "K-Means, k = number of classes",
            "level": "song_mean",
            "scored_on": "test songs",
        },
        "ranking_rule": RULE,
        "winner": winner,
        "not_ranked": {},
        "ranking": ranking,
        "best_per_modality": {lab: {"audio": WINNER[lab]} for lab in LABELS},
        "not_applicable": {"lyrics": NOT_APPLICABLE_REASON},
        "conditioned": {},
        "leakage": {
            "threshold": 0.95,
            "flagged": [
                {
                    "representation": "raw",
                    "label": "genre",
                    "column": "spectral_centroid",
                    "balanced_accuracy": 0.97,
                    "columns_flagged": 1,
                }
            ],
        },
        "training": {"vae": {"best_val_loss": 1.2345}},
        "disentanglement": {
            "vae": {
                "language": {
                    "mig": 0.4321,
                    "mig_min": 0.4,
                    "mig_max": 0.46,
                    "n_seeds": 2,
                    "conditioned": False,
                },
                "genre": {
                    "mig": 0.0123,
                    "mig_min": 0.01,
                    "mig_max": 0.015,
                    "n_seeds": 2,
                    "conditioned": False,
                },
            }
        },
        "disentanglement_method": "MIG (Chen et al., 2018) of each model's latents, test clips.",
        "label_notes": ["language: 2 classes"],
        "notes": [],
    }


def means_csv() -> pd.DataFrame:
    rows = []
    for lab in LABELS:
        for rep, (kind, modality, ok) in REPS.items():
            if not ok:
                continue
            for scope, n in (("test", N_TEST), ("all", 12)):
                row = {
                    "representation": rep,
                    "kind": kind,
                    "modality": modality,
                    "conditioned": False,
                    "algorithm": "kmeans",
                    "level": "song_mean",
                    "scope": scope,
                    "k_mode": "per_label",
                    "k": 2,
                    "label": lab,
                    "n_seeds": 2 if kind == "model" else 1,
                    "n_songs": n,
                    "n_units": n,
                }
                for m in ("nmi", "ami"):
                    row |= {m: 0.5, f"{m}_low": 0.4, f"{m}_high": 0.6}
                for m in ("ari", "v_measure", "homogeneity", "completeness", "purity", "accuracy"):
                    row[m] = 0.5
                row |= {"silhouette": 0.1, "calinski_harabasz": 20.0, "davies_bouldin": 1.5}
                rows.append(row | {"noise_fraction": 0.0, "n_clusters": 2})
    return pd.DataFrame(rows, columns=MEANS_COLUMNS)


#: the one song the fixture's clustering puts with the other language: raw's language cluster of s03
MISPLACED = ("raw", "language", "s03")


def _cluster(rep: str, label: str, k: int, song: pd.Series) -> int:
    """Headline clusters follow the labels, except for :data:`MISPLACED`."""
    c = GENRES.index(song.genre) if label == "genre" else LANGS.index(song.language)
    return 1 - c if (rep, label, f"s{k:02d}") == MISPLACED else c


def make_inputs(root: Path) -> dict[str, Path]:
    """Write every file the report reads under ``root``; returns the stage's path arguments."""
    rng = np.random.default_rng(0)
    songs = _songs()
    raw = root / "data" / "raw"
    write_parquet(songs, raw / "songs.parquet")
    write_json(
        raw / "report.json",
        {
            "source": "demo",
            "input": "/abs/path/not/shown",
            "rows_in": 13,
            "ok": 12,
            "skipped": 1,
            "reasons": {"corrupt": 1},
            "rows": [],
            "label_notes": ["language: spellings merged into 'en': 'EN', 'en'"],
        },
    )
    seg_dir = root / "data" / "segments"
    t = np.arange(int(SR * CLIP_S)) / SR
    seg_rows = []
    with ShardWriter(seg_dir, "audio", (len(t),), np.int16, rows_per_shard=10) as w:
        for k, song in songs.iterrows():
            for c in range(CLIPS_PER_SONG):
                y = 0.5 * np.sin(2 * np.pi * tone_freq(k) * (t + c * CLIP_S))
                ((shard, row),) = w.add(to_pcm16(y)[None, :])
                seg_rows.append(
                    {
                        "segment_id": f"{song.song_id}__{c:04d}",
                        "song_id": song.song_id,
                        "clip_index": c,
                        "start_s": c * CLIP_S,
                        "end_s": (c + 1) * CLIP_S,
                        "split": _split(k),
                        "is_silent": False,
                        "shard": shard,
                        "row": row,
                    }
                )
    write_parquet(pd.DataFrame(seg_rows), seg_dir / "segments.parquet")
    clusters, models = root / "data" / "clusters", root / "models"
    for rep, (kind, modality, ok) in REPS.items():
        folder = clusters / rep
        cols = ["z_00", "z_01"]
        seeds = [0, 1] if kind == "model" else [-1]
        write_json(
            folder / "info.json",
            {
                "representation": rep,
                "kind": kind,
                "modality": modality,
                "vector_level": "song" if rep == "vae" else "clip",  # as a song-level model would
                "applicable": ok,
                "reason": None if ok else NOT_APPLICABLE_REASON,
                "description": f"{rep} representation",
                "columns": cols if ok else [],
                "dim": 2,
                "seeds": seeds if kind == "model" else "all",
                "conditioned_on": [],
                "has_own_clusters": False,
                "counts": {},
                "label_classes": {},
                "k_plan": [{"for_labels": lab, "k": 2, "k_mode": "per_label"} for lab in LABELS],
                "skipped_runs": [],
                "protocol": {},
                "training": {},
            },
        )
        map_rows, vec_rows, asg_rows = [], [], []
        if ok:
            for seed in seeds:
                for k, song in songs.iterrows():
                    g = GENRES.index(song.genre)
                    centre = np.array([3.0 if g == 0 else -3.0, 0.0])
                    # offsets sum to 0 per genre: s00 (and s05) sit exactly on their centroid
                    z = centre + np.array([0.0, (0, 1, -1, 2, -2, 0)[k % 6]])
                    vec_rows.append(
                        {
                            "seed": seed,
                            "level": "song_mean",
                            "unit_id": song.song_id,
                            "song_id": song.song_id,
                            "split": _split(k),
                            "z_00": z[0],
                            "z_01": z[1],
                        }
                    )
                    for method in ("pca", "tsne"):
                        same = rep == "raw" and method == "tsne"
                        map_rows.append(
                            {
                                "representation": rep,
                                "seed": seed,
                                "method": method,
                                "unit_id": song.song_id,
                                "song_id": song.song_id,
                                "split": _split(k),
                                "x": 0.0 if same else float(z[0] + rng.normal(scale=0.1)),
                                "y": 0.0 if same else float(z[1]),
                                "note": "all points identical" if same else None,
                            }
                        )
                    # baselines: one (seed-independent) vector per song, clustered with seeds 0 and 1
                    for aseed in [seed] if kind == "model" else [0, 1]:
                        for lab in LABELS:
                            asg_rows.append(
                                {
                                    "run_id": f"{rep}|kmeans|{lab}|{aseed}",
                                    "representation": rep,
                                    "algorithm": "kmeans",
                                    "seed": aseed,
                                    "level": "song_mean",
                                    "fit_on": "train",
                                    "k_mode": "per_label",
                                    "k": 2,
                                    "for_labels": lab,
                                    "unit_id": song.song_id,
                                    "song_id": song.song_id,
                                    "split": _split(k),
                                    "cluster": _cluster(rep, lab, k, song),
                                }
                            )
        write_parquet(
            pd.DataFrame(
                map_rows,
                columns=["representation", "seed", "method", "unit_id", "song_id", "split", "x", "y", "note"],
            ),
            folder / "maps.parquet",
        )
        write_parquet(
            pd.DataFrame(vec_rows, columns=["seed", "level", "unit_id", "song_id", "split", *cols]),
            folder / "vectors.parquet",
        )
        write_parquet(
            pd.DataFrame(
                asg_rows,
                columns=ASSIGNMENT_COLUMNS,
            ),
            folder / "assignments.parquet",
        )
        if kind == "model":
            write_json(
                models / rep / "info.json",
                {
                    "model_key": rep,
                    "conditioned_on": [],
                    "inputs": {"x_kind": "vector", "feature_sets": ["mfcc_stats"]},
                    "latent_dim": 2,
                    "seeds": seeds,
                    "per_seed": {},
                },
            )
            hist = pd.DataFrame(
                [
                    {
                        "step": e,
                        "seed": s,
                        "train_recon": 2.0 / (e + 1),
                        "train_kl": 0.1,
                        "train_total": 2.1 / (e + 1),
                        "val_recon": 2.2 / (e + 1),
                        "val_kl": 0.1,
                        "val_total": 2.3 / (e + 1) + 0.01 * s,
                        "lr": 1e-3,
                        "kl_weight": 1.0,
                    }
                    for s in seeds
                    for e in range(5)
                ]
            )
            (models / rep).mkdir(parents=True, exist_ok=True)
            hist.to_csv(models / rep / "history.csv", index=False)
            x = rng.normal(size=(3, 8)).astype(np.float32)
            np.savez_compressed(
                models / rep / "recon.npz",
                segment_id=np.array(["s02__0001", "s05__0001", "s08__0001"]),
                features=x,
                features_recon=x * 0.9,
            )
    metrics = root / "metrics"
    write_json(metrics / "summary.json", summary_json())
    means_csv().to_csv(metrics / "means.csv", index=False)
    params = root / "params.yaml"
    model_keys = [r for r, (kind, _, _) in REPS.items() if kind == "model"]
    baseline_keys = [r for r, (kind, _, _) in REPS.items() if kind != "model"]
    params.write_text(
        "data:\n  label_columns: [language, genre]\nreport:\n  n_central_songs: 2\n  excerpt_s: 1.5\n"
        f"train:\n  models: {model_keys}\nmodels: {{{', '.join(f'{m}: {{}}' for m in model_keys)}}}\n"
        f"cluster:\n  baselines: {baseline_keys}\n"
    )
    return {
        "raw": raw,
        "segments": seg_dir,
        "models": models,
        "clusters": clusters,
        "metrics": metrics,
        "vega": VEGA,
        "out": root / "plots" / "report" / "index.html",
        "figures": root / "plots" / "figures",
        "pdf": root / "plots" / "report.pdf",
        "params": params,
    }


def run_stage(paths: dict[str, Path], **override: Path) -> str:
    from stages.report import main

    args = {**paths, **override}
    main([f"--{k}={v}" for k, v in args.items()])
    return args["out"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    paths = make_inputs(tmp_path_factory.mktemp("report"))
    return run_stage(paths), paths


def _section(text: str, anchor: str) -> str:
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', text, re.S)
    assert m, f"no section {anchor}"
    return m.group(1)


def test_summary_names_one_winner_per_label_with_its_interval(built) -> None:
    text, _ = built
    s = _section(text, "summary")
    assert re.search(r"Best for <b>genre</b>: <b[^>]*>vae</b>, NMI 0\.812 \[0\.712, 0\.912\]", s)
    assert re.search(r"Best for <b>language</b>: <b[^>]*>pca</b>, NMI 0\.501 \[0\.401, 0\.601\]", s)
    assert "not separable from pca" in s  # genre: pca's difference interval includes 0
    assert "4 test songs" in s and "90%" in s  # n and ci from summary.json, not hard-coded
    assert text.count(RULE) == 1  # the ranking rule, printed once
    assert f"lyrics: {NOT_APPLICABLE_REASON}" in s


def test_ranking_tables_mark_winner_and_not_separable_rows(built) -> None:
    text, _ = built
    r = _section(text, "ranking")
    assert r.count("(n = 4 test songs)") == 2
    genre = r[r.index("<code>genre</code>") :]
    rows = re.findall(r"<tr( class=\"winner\")?><td class=\"num\">(\d)</td><td>(\w+)(.*?)</tr>", genre)[:3]
    assert [(bool(w), rank, rep) for w, rank, rep, _ in rows] == [
        (True, "1", "vae"),
        (False, "2", "pca"),
        (False, "3", "raw"),
    ]
    assert "not separable" in rows[1][3] and "not separable" not in rows[2][3]
    assert "[-0.300, 0.050]" in rows[1][3]
    na = r[r.index("Not applicable") :]
    assert "lyrics" in na and NOT_APPLICABLE_REASON in na
    # a not-applicable representation is never ranked nor named best anywhere
    assert not re.search(r"<td[^>]*>\d</td><td>lyrics", text)
    assert "(n = 4 test songs" in _section(text, "detail")


def test_listen_plays_central_songs_of_each_winner(built) -> None:
    text, _ = built
    li = _section(text, "listen")
    assert 'genre: clusters of <span class="winner-name">vae</span>' in li
    assert 'language: clusters of <span class="winner-name">pca</span>' in li
    # 2 labels x 2 clusters x n_central_songs=2
    sources = re.findall(r'<source src="data:audio/ogg;base64,([^"]+)"', li)
    assert len(sources) == 8
    y, sr = sf.read(io.BytesIO(base64.b64decode(sources[0])))
    assert sr == SR and abs(len(y) / sr - 1.5) < 0.05
    # s00 sits exactly on the pop centroid of vae: the first song of genre cluster 0
    genre = li[li.index("genre: clusters") :]
    assert re.search(r"Cluster 0.*?<div class=\"t\">Song 0 pop/en</div>.*?distance 0\.00", genre, re.S)


def test_maps_show_the_cluster_stage_note_and_skip_not_applicable(built) -> None:
    text, paths = built
    m = _section(text, "maps")
    assert "t-SNE: all points identical" in m
    assert f"lyrics ({NOT_APPLICABLE_REASON})" in m
    names = sorted(p.stem for p in paths["figures"].glob("*.png"))
    assert names == [
        "latent_pca",
        "latent_raw",
        "latent_vae",
        "ranking_genre",
        "ranking_language",
        "recon_vae",
        "training_curves_vae",
    ]
    for p in paths["figures"].glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_and_leakage_show_what_was_written(built) -> None:
    text, _ = built
    t = _section(text, "training")
    assert "<td>vae</td><td>mfcc_stats</td>" in t and "1.2345" in t
    assert (
        "Labels merged by normalization (case, surrounding spaces): language: spellings merged"
        in _section(text, "dataset")
    )
    mig = _section(text, "disentanglement")
    assert "0.432 (0.400&ndash;0.460)" in mig and "Chen et al., 2018" in mig
    leak = _section(text, "leakage")
    assert "spectral_centroid" in leak and "0.970" in leak and "0.950" in leak


def test_detail_names_representations_whose_clips_carry_their_songs_vector(built) -> None:
    text, _ = built
    detail = _section(text, "detail")
    assert "One vector per song, given to each of its clips: vae." in detail
    assert "pca." not in detail and "raw." not in detail


def test_report_is_self_contained(built) -> None:
    text, _ = built
    # scripts (the explorer's vega libraries and its own code) are inline: none has a src
    scripts = re.findall(r"<script([^>]*)>", text)
    assert scripts and all("src" not in attrs for attrs in scripts), scripts
    markup = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)  # the libraries name URLs
    assert "http://" not in markup and "https://" not in markup
    srcs = re.findall(r'(?:src|href)="([^"]*)"', markup)
    assert srcs and all(s.startswith(("data:", "#")) for s in srcs), sorted(set(s[:30] for s in srcs))
    assert "/abs/path" not in text  # report.json's input path is not shown
    assert "Artist &lt;0&gt; &amp; co" in markup and "Artist <0>" not in text  # autoescaped


def test_two_runs_are_byte_identical(built, tmp_path: Path) -> None:
    text, paths = built
    again = run_stage(paths, out=tmp_path / "index.html", figures=tmp_path / "figures")
    assert again == text
    for p in paths["figures"].glob("*.png"):
        assert (tmp_path / "figures" / p.name).read_bytes() == p.read_bytes(), p.name


def test_the_cache_redraws_only_what_changed_and_changes_no_byte(built, tmp_path: Path, monkeypatch) -> None:
    """With --cache, a second report reuses every figure and excerpt of the first; a changed input
    (one model's training history) is drawn again; the pages equal the ones drawn without a cache."""
    import pandas as pd

    from musiclust.reporting.cache import ArtefactCache

    counts: list[tuple[int, int]] = []
    prune = ArtefactCache.prune

    def counting_prune(self, *a, **k):
        counts.append((self.misses, self.hits))
        return prune(self, *a, **k)

    monkeypatch.setattr(ArtefactCache, "prune", counting_prune)
    text, paths = built
    cache = tmp_path / "cache"

    def run(name: str, **over: Path) -> str:
        return run_stage(
            paths, out=tmp_path / name / "index.html", figures=tmp_path / name / "figures", **over
        )

    assert run("a", cache=cache) == text
    n = len(list(cache.glob("??/*")))
    assert n > 0 and counts[-1] == (n, 0)  # figures and excerpts, each stored once
    assert run("b", cache=cache) == text
    assert counts[-1] == (0, n)
    model = next(p for p in sorted(paths["models"].iterdir()) if (p / "history.csv").exists())
    changed = tmp_path / "models"
    shutil.copytree(paths["models"], changed)
    h = pd.read_csv(changed / model.name / "history.csv")
    h["val_total"] = h["val_total"] * 1.5
    h.to_csv(changed / model.name / "history.csv", index=False)
    third = run("c", models=changed, cache=cache)
    assert counts[-1] == (1, n - 1)  # the loss curves alone are drawn again
    assert third == run("d", models=changed) != text
    # the explorer's data of a representation is keyed by its cluster files' bytes: the same table
    # written again with another compression is a miss for that representation alone (its figures
    # read the same frames and are reused), and the page does not change
    import pyarrow.parquet as pq

    clusters = tmp_path / "clusters"
    shutil.copytree(paths["clusters"], clusters)
    rep = next(
        p.parent
        for p in sorted(clusters.glob("*/assignments.parquet"))
        if json.loads((p.parent / "info.json").read_text())["applicable"]
    )
    pq.write_table(
        pq.read_table(rep / "assignments.parquet"), rep / "assignments.parquet", compression="gzip"
    )
    assert run("e", clusters=clusters, cache=cache) == text
    assert counts[-1] == (1, n - 1)


def test_a_summary_without_a_contract_key_fails_naming_file_and_key(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    summ = json.loads((paths["metrics"] / "summary.json").read_text())
    del summ["ranking_rule"]
    write_json(paths["metrics"] / "summary.json", summ)
    with pytest.raises(ReportInputError, match=r"summary\.json: missing keys \['ranking_rule'\]"):
        run_stage(paths)
    assert not paths["out"].exists()


def test_a_broken_input_fails_naming_the_section(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    summ = json.loads((paths["metrics"] / "summary.json").read_text())
    summ["ranking"] = {}  # every key present, but no ranking for any label
    write_json(paths["metrics"] / "summary.json", summ)
    with pytest.raises(ReportError, match=r"report section '[A-Za-z ]+' \([a-z-]+\): KeyError"):
        run_stage(paths)
    assert not paths["out"].exists()


def test_a_missing_winner_run_fails_naming_the_first_section_that_reads_it(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    asg = paths["clusters"] / "pca" / "assignments.parquet"
    df = pd.read_parquet(asg)
    write_parquet(df[df["for_labels"] != "language"], asg)
    # Listen plays the winner's headline clusters (the explorer, which shows every representation's,
    # is built last, while the PDF prints)
    with pytest.raises(
        ReportError,
        match=r"section 'Listen'.*pca/assignments\.parquet: no kmeans song_mean "
        r"per_label run for 'language'",
    ):
        run_stage(paths)


def test_a_missing_map_file_is_named(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    (paths["clusters"] / "raw" / "maps.parquet").unlink()
    with pytest.raises(ReportInputError, match=r"raw/maps\.parquet: missing"):
        run_stage(paths)


def test_pdf_is_printed_with_chromium(built, tmp_path: Path) -> None:
    if find_chromium() is None:
        pytest.skip("no chromium / chromium-browser / google-chrome on PATH (CI installs chromium)")
    _, paths = built
    first = paths["pdf"].read_bytes()
    assert first[:5] == b"%PDF-" and len(first) > 10_000
    assert not (paths["out"].parent / "report.pdf").exists(), (
        "the PDF must stay outside the cached plots/report"
    )
    run_stage(paths, out=tmp_path / "index.html", figures=tmp_path / "figures", pdf=tmp_path / "report.pdf")
    second = (tmp_path / "report.pdf").read_bytes()
    # the stamps are fixed (test_pdf_stamps_are_fixed), but Chromium's rendering is not always the
    # same byte for byte on a busy machine (an object one byte longer, seen in CI): the PDF is a
    # side file, not a DVC output, so a second print must be the same document, not the same bytes
    assert second[:5] == b"%PDF-" and second.count(b"/Type /Page") == first.count(b"/Type /Page") > 0
    assert abs(len(second) - len(first)) <= 0.01 * len(first)
    assert re.findall(rb"/CreationDate \(D:(\d+)", second) == re.findall(rb"/CreationDate \(D:(\d+)", first)


def test_pdf_stamps_are_fixed() -> None:
    a = b"<< /CreationDate (D:20260101120000+00'00') /ModDate (D:20260101120001+00'00') >>\n/ID [<ab12> <CD34>]"
    b = fixed_stamps(a)
    assert b == (
        b"<< /CreationDate (D:20000101000000+00'00') /ModDate (D:20000101000000+00'00') >>\n"
        b"/ID [<0000> <0000>]"
    )
    assert len(b) == len(a)


def test_song_excerpt_is_contiguous_audio(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    segs = pd.read_parquet(paths["segments"] / "segments.parquet")
    y, sr, start = song_excerpt(segs, paths["segments"], "s03", 2.5)
    assert sr == SR and len(y) == int(2.5 * SR)
    assert start == 1.0  # 4 clips: starts at the clip before the middle
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * sr / len(y) - tone_freq(3)) < 2.0


def test_ogg_excerpts_are_deterministic_and_decodable() -> None:
    y = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 2) / SR)).astype(np.float32)
    a, b = encode_ogg(y, SR), encode_ogg(y, SR)
    assert a == b and a[:4] == b"OggS" and len(a) < 40_000
    z, sr = sf.read(io.BytesIO(a))  # libogg rejects pages whose checksum is wrong
    assert sr == SR and abs(len(z) - len(y)) < SR // 10


def test_central_songs_are_nearest_the_centroid() -> None:
    v = pd.DataFrame({"song_id": ["a", "b", "c", "d", "e"], "z": [0.0, 1.0, -1.0, 10.0, 12.0]})
    clusters = pd.Series([0, 0, 0, 1, 1], index=list("abcde"))
    got = central_songs(v, ["z"], clusters, 2)
    assert [s for s, _ in got[0]] == ["a", "b"] and got[0][0][1] == 0.0
    assert [s for s, _ in got[1]] == ["d", "e"] and got[1][0][1] == pytest.approx(1.0)


def test_reporting_computes_no_statistics() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "musiclust" / "reporting"
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(src.glob("*.py")))
    for banned in (
        "scipy",
        "musiclust.evaluation",
        "musiclust.ranking",
        "bootstrap(",
        "ttest",
        "except Exception",
    ):
        assert banned not in text, banned


def test_a_row_missing_a_shown_field_fails_naming_the_section(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    summ = json.loads((paths["metrics"] / "summary.json").read_text())
    del summ["ranking"]["genre"][1]["diff_low"]  # read only by the ranking template
    write_json(paths["metrics"] / "summary.json", summ)
    with pytest.raises(
        ReportError, match=r"report section 'Ranking' \(ranking\): UndefinedError: .*diff_low"
    ):
        run_stage(paths)
