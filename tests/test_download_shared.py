"""The folder and manifest sources on real recordings in ../shared/data (skipped when absent).

gtzan40: 40 GTZAN excerpts in genre folders with a labels.csv. jamendo10: full
MP3 songs with non-ASCII file names and UTF-8 lyrics files.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import stages.download as stage
import yaml


def _params(tmp, data: dict) -> str:
    p = tmp / "params.yaml"
    p.write_text(yaml.safe_dump({"data": data, "download": {"concurrency": 2}}))
    return str(p)


def test_folder_source_on_gtzan40(tmp_path, shared_data):
    root = shared_data / "gtzan40"
    if not root.is_dir():
        pytest.skip("gtzan40 is absent")
    labels = pd.read_csv(root / "labels.csv")
    out = tmp_path / "raw"
    stage.main(["--out", str(out), "--params", _params(tmp_path, {"source": "folder", "folder": str(root)})])
    rep = json.loads((out / "report.json").read_text())
    assert rep["rows_in"] == len(labels) == rep["ok"] == 40
    songs = pd.read_parquet(out / "songs.parquet")
    assert songs["genre"].value_counts().to_dict() == labels["genre"].value_counts().to_dict()
    assert songs["language"].isna().all()  # blank in labels.csv: unknown, not invented
    assert songs["duration_s"].between(29.5, 30.5).all() and (songs["sample_rate"] == 22050).all()
    # genre comes from labels.csv and agrees with the folder each file sits in
    by_id = songs.set_index("song_id")
    for path, genre in zip(labels["path"], labels["genre"]):
        sid = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        assert by_id.loc[sid, "genre"] == genre == path.split("/")[1]


def _jamendo_manifest(tmp_path, shared_data, n: int | None):
    root = shared_data / "jamendo10"
    if not root.is_dir():
        pytest.skip("jamendo10 is absent")
    lab = pd.read_csv(root / "labels.csv")
    if n is not None:
        # keep the non-ASCII names in the fast subset
        lab = pd.concat(
            [lab[~lab["path"].map(str.isascii)].head(2), lab[lab["path"].map(str.isascii)].head(n - 2)]
        )
    man = lab.rename(columns={"path": "source"})
    man["source"] = [str(root / p) for p in man["source"]]
    man["lyrics_path"] = [str(root / p) for p in man["lyrics_path"]]
    path = tmp_path / "jamendo.csv"
    man.to_csv(path, index=False)
    return path, lab


def _check_jamendo(out, lab):
    rep = json.loads((out / "report.json").read_text())
    assert rep["rows_in"] == len(lab) == rep["ok"]
    assert rep["lyrics"] == {"ok": len(lab)}
    songs = pd.read_parquet(out / "songs.parquet")
    assert songs["has_lyrics"].all()
    assert songs["song_id"].map(str.isascii).all()
    assert set(songs["language"]) == set(lab["language"])
    for (_, s), (_, row) in zip(songs.iterrows(), lab.iterrows()):
        assert s["title"] == row["title"] and s["license"] == row["license"]
        assert s["duration_s"] == pytest.approx(row["duration_s"], abs=0.2)
        assert s["sample_rate"] == 44100
        assert s["audio_path"].endswith(".mp3") and (out / s["audio_path"]).is_file()
        assert len(s["lyrics"]) > 200


def test_manifest_source_on_jamendo_subset(tmp_path, shared_data):
    path, lab = _jamendo_manifest(tmp_path, shared_data, 3)
    out = tmp_path / "raw"
    stage.main(
        [
            "--out",
            str(out),
            "--params",
            _params(tmp_path, {"source": "manifest", "allowed_roots": [str(shared_data / "jamendo10")]}),
            "--manifest",
            str(path),
        ]
    )
    _check_jamendo(out, lab)


@pytest.mark.slow
def test_manifest_source_on_all_of_jamendo10(tmp_path, shared_data):
    path, lab = _jamendo_manifest(tmp_path, shared_data, None)
    out = tmp_path / "raw"
    stage.main(
        [
            "--out",
            str(out),
            "--params",
            _params(tmp_path, {"source": "manifest", "allowed_roots": [str(shared_data / "jamendo10")]}),
            "--manifest",
            str(path),
        ]
    )
    _check_jamendo(out, lab)
