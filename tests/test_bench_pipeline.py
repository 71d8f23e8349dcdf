"""``musiclust bench pipeline``: the stages' own calls on a few songs, one table, timings outside the outputs."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
import soundfile as sf

from musiclust.bench import pipeline, synth


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_synthetic_songs_are_stereo_44k_with_lyrics_and_links(tmp_path):
    manifest = synth.write_songs(tmp_path, 3, seconds=4.0, seed=1, fmt="flac", distinct=2, workers=1)
    df = pd.read_csv(manifest)
    assert list(df["track_id"]) == ["song000000", "song000001", "song000002"]
    assert df["lyrics"].str.len().min() > 20 and set(df["language"]) <= set(synth.SONG_LANGUAGES)
    info = sf.info(tmp_path / df["source"][0])
    assert info.samplerate == 44100 and info.channels == 2 and abs(info.duration - 4.0) < 1e-6
    # song 2 is a link to rendered song 0 under its own name
    assert (tmp_path / df["source"][2]).samefile(tmp_path / df["source"][0])
    assert not (tmp_path / df["source"][1]).samefile(tmp_path / df["source"][0])


def test_bench_pipeline_times_each_stage_and_writes_json_only_where_asked(capsys, tmp_path):
    out = tmp_path / "timings.json"
    args = _args(
        "--songs",
        "3",
        "--seconds",
        "7",
        "--format",
        "flac",
        "--distinct",
        "3",
        "--stages",
        "download,segment,featurize",
        "--params",
        str(tmp_path / "none.yaml"),
        "--out",
        str(out),
    )
    assert pipeline.run(args) == 0
    table = capsys.readouterr().out
    for stage in ("download", "segment", "featurize", "total"):
        assert f"| {stage} |" in table
    assert "embed_lyrics" not in table
    res = json.loads(out.read_text())
    by = {s["stage"]: s for s in res["stages"]}
    assert by["download"]["units"] == 3 and by["segment"]["unit"] == "clips"
    assert by["segment"]["units"] == by["featurize"]["units"] == 6  # two 3 s windows per 7 s song
    assert by["segment"]["audio_seconds"] == pytest.approx(21.0)
    assert by["featurize"]["audio_seconds"] == pytest.approx(18.0)
    assert all(s["seconds"] > 0 and s["peak_mib"] > 0 for s in res["stages"])
    assert by["featurize"]["target"] == ">= 2500x realtime" and isinstance(by["featurize"]["met"], bool)


def test_manifest_subset_keeps_local_paths_valid(tmp_path):
    src = tmp_path / "m"
    manifest = synth.write_songs(src, 3, seconds=3.0, fmt="flac", workers=1)
    out = pipeline._first_manifest_rows(manifest, 2, tmp_path / "subset.csv")
    df = pd.read_csv(out)
    assert len(df) == 2 and all((src / "audio").joinpath(p.split("/")[-1]).samefile(p) for p in df["source"])


def test_bench_pipeline_downloads_the_rows_of_a_users_manifest(tmp_path):
    """The subset is written to a temporary folder; its rows still point at the user's files,
    which must count as allowed (the manifest's folder), not 'outside allowed roots'."""
    manifest = synth.write_songs(tmp_path / "m", 3, seconds=3.0, fmt="flac", workers=1)
    out = tmp_path / "t.json"
    args = _args(
        "--songs", "2", "--manifest", str(manifest), "--stages", "download",
        "--params", str(tmp_path / "none.yaml"), "--out", str(out),
    )  # fmt: skip
    assert pipeline.run(args) == 0
    assert json.loads(out.read_text())["stages"][0]["units"] == 2


def test_bench_pipeline_rejects_unknown_stages(tmp_path):
    with pytest.raises(SystemExit, match="not one of"):
        pipeline.run(_args("--stages", "segment,bogus", "--params", str(tmp_path / "none.yaml")))
