"""Segmentation: windows, loudness, skipped songs with reasons, shard round-trip, the stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from stages import segment as segment_stage

from musiclust.audio.segment import (
    cut_windows,
    integrated_loudness,
    normalize_loudness,
    window_starts,
)
from musiclust.contracts.shards import ShardReader, ShardWriter, from_pcm16, to_pcm16
from musiclust.params import SegmentParams

SR = 22050
SEGMENT_COLUMNS = [
    "segment_id",
    "song_id",
    "clip_index",
    "start_s",
    "end_s",
    "split",
    "is_silent",
    "shard",
    "row",
    "title",
    "artist",
    "language",
    "genre",
    "has_lyrics",
]


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_raw(root: Path, songs: list[dict], sr: int = SR) -> Path:
    """A tiny ``data/raw``: each song dict has song_id, language, genre and ``y`` (audio) or ``raw`` (bytes)."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for s in songs:
        rel = f"audio/{s['song_id']}.wav"
        if "raw" in s:
            (root / rel).write_bytes(s["raw"])
            dur = 0.0
        else:
            sf.write(root / rel, s["y"], sr, subtype="PCM_16")
            dur = len(s["y"]) / sr
        rows.append(
            {
                "song_id": s["song_id"],
                "title": f"title {s['song_id']}",
                "artist": "artist",
                "language": s.get("language"),
                "genre": s.get("genre"),
                "audio_path": rel,
                "duration_s": dur,
                "sample_rate": sr,
                "lyrics": "la la",
                "has_lyrics": True,
                "source": "test",
                "year": 2020,
            }
        )
    pd.DataFrame(rows).to_parquet(root / "songs.parquet", index=False)
    return root


def write_params(repo_root: Path, path: Path, **sections: dict) -> Path:
    """The repository's params.yaml with some sections updated (shallow per section)."""
    with (repo_root / "params.yaml").open(encoding="utf-8") as fh:
        p = yaml.safe_load(fh)
    for key, value in sections.items():
        if isinstance(value, dict):
            p[key].update(value)
        else:
            p[key] = value
    path.write_text(yaml.safe_dump(p), encoding="utf-8")
    return path


def demo_songs(n_per_cell: int = 2, seconds: float = 7.5) -> list[dict]:
    rng = np.random.default_rng(0)
    songs = []
    for lang in ("en", "bn"):
        for g, genre in enumerate(("pop", "rock")):
            for i in range(n_per_cell):
                y = tone(seconds, 220.0 * (g + 1) + 30 * i) + 0.02 * rng.standard_normal(
                    int(seconds * SR)
                ).astype(np.float32)
                songs.append({"song_id": f"{lang}_{genre}_{i}", "language": lang, "genre": genre, "y": y})
    return songs


# --------------------------------------------------------------------------- units


def test_window_starts_drop_and_pad():
    # 10 samples, window 4, hop 4: windows at 0, 4; tail of 2 samples (= half a window)
    starts, tail = window_starts(10, 4, 4, "drop")
    assert starts.tolist() == [0, 4] and tail == "dropped"
    starts, tail = window_starts(10, 4, 4, "pad")
    assert starts.tolist() == [0, 4, 8] and tail == "padded"
    starts, tail = window_starts(9, 4, 4, "pad")  # one stray sample is not padded into a clip
    assert starts.tolist() == [0, 4] and tail == "dropped"
    starts, tail = window_starts(8, 4, 2, "drop")  # overlapping windows, nothing left over
    assert starts.tolist() == [0, 2, 4] and tail == "none"
    assert window_starts(3, 4, 4, "pad")[0].size == 0


def test_loudness_of_a_full_scale_997hz_sine():
    # BS.1770: a 0 dBFS 997 Hz sine reads -3.01 LUFS; the K-weighting filters redesigned for
    # the sample rate (instead of the standard's 48 kHz coefficients) are within about 0.06 dB
    assert integrated_loudness(tone(5.0, 997.0, 1.0), SR) == pytest.approx(-3.01, abs=0.1)
    assert integrated_loudness(np.zeros(SR * 2, np.float32), SR) == float("-inf")


def test_a_signal_shorter_than_one_gating_block_has_no_loudness_and_keeps_its_level():
    short = tone(0.3, 997.0, 0.5)  # under the 400 ms BS.1770 block
    assert integrated_loudness(short, SR) == float("-inf")
    y, gain = normalize_loudness(short, SR)
    assert gain == 0.0 and np.array_equal(y, short)


def test_normalize_loudness_reaches_target_and_respects_peak():
    y, gain = normalize_loudness(tone(5.0, 997.0, 0.01), SR, target_lufs=-20.0)
    assert integrated_loudness(y, SR) == pytest.approx(-20.0, abs=0.05)
    assert gain == pytest.approx(-20.0 - integrated_loudness(tone(5.0, 997.0, 0.01), SR), abs=1e-6)
    loud, _ = normalize_loudness(tone(5.0, 997.0, 0.01), SR, target_lufs=0.0)  # would clip: peak-limited
    assert np.max(np.abs(loud)) == pytest.approx(10 ** (-1 / 20), rel=1e-3)


def test_cut_windows_flags_and_drops_silence():
    y = np.concatenate([tone(3.0), np.zeros(3 * SR, np.float32), tone(3.0)])
    flagged = cut_windows(y, SR, SegmentParams(window_s=3.0, hop_s=3.0, silence="flag"))
    assert flagged.is_silent.tolist() == [False, True, False]
    assert flagged.window_index.tolist() == [0, 1, 2]
    dropped = cut_windows(y, SR, SegmentParams(window_s=3.0, hop_s=3.0, silence="drop"))
    assert dropped.window_index.tolist() == [0, 2] and dropped.n_dropped_silent == 1
    np.testing.assert_array_equal(dropped.audio[1], y[6 * SR : 9 * SR])


def test_shard_writer_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.uniform(-1, 1, (11, 50)).astype(np.float32)
    with ShardWriter(tmp_path, "audio", (50,), np.int16, rows_per_shard=4) as w:
        where = w.add(to_pcm16(data[:3])) + w.add(to_pcm16(data[3:]))
    assert sorted(p.name for p in tmp_path.glob("audio-*.npy")) == [f"audio-{i:05d}.npy" for i in range(3)]
    assert not list(tmp_path.glob(".*.part"))  # streamed shards are renamed when complete
    assert np.load(tmp_path / "audio-00002.npy").shape == (3, 50)  # header rewritten for the partial shard
    assert where[:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    back = from_pcm16(ShardReader(tmp_path, "audio").rows([s for s, _ in where], [r for _, r in where]))
    np.testing.assert_allclose(back, data, atol=1 / 32768 + 1e-7)


# --------------------------------------------------------------------------- stage


def test_segment_stage_outputs_and_skips(tmp_path, repo_root):
    songs = demo_songs()
    songs += [
        {"song_id": "short", "language": "en", "genre": "pop", "y": tone(2.0)},
        {"song_id": "silent", "language": "bn", "genre": "rock", "y": np.zeros(6 * SR, np.float32)},
        {"song_id": "broken", "language": "en", "genre": "rock", "raw": b"RIFF\x00\x00garbage" * 10},
        {
            "song_id": "gap",
            "language": "bn",
            "genre": "pop",
            "y": np.concatenate([tone(3.0), np.zeros(3 * SR, np.float32), tone(3.0)]),
        },
    ]
    raw = make_raw(tmp_path / "raw", songs)
    params = write_params(repo_root, tmp_path / "params.yaml", audio={"loudness_normalize": False})
    out = tmp_path / "segments"
    assert segment_stage.main(["--raw", str(raw), "--out", str(out), "--params", str(params)]) == 0

    seg = pd.read_parquet(out / "segments.parquet")
    assert list(seg.columns[: len(SEGMENT_COLUMNS) - 5]) == SEGMENT_COLUMNS[:-5]
    assert set(SEGMENT_COLUMNS) | {"source", "year"} <= set(seg.columns)
    assert "audio_path" not in seg.columns and "lyrics" not in seg.columns
    rep = yaml.safe_load((out / "report.json").read_text())
    assert rep["songs_in"] == len(songs) == rep["segmented"] + rep["skipped"]
    assert rep["reasons"] == {"too short": 1, "silent": 1, "corrupt": 1}
    by_song = {r["song_id"]: r for r in rep["songs"]}
    assert by_song["broken"]["status"] == "skipped" and by_song["broken"]["detail"]
    # the raw folder was given as an absolute path: the cached report still holds none
    text = (out / "report.json").read_text()
    assert str(tmp_path) not in text and str(raw.resolve()) not in text, by_song["broken"]["detail"]
    assert set(seg["song_id"]) == {s["song_id"] for s in songs} - {"short", "silent", "broken"}
    # 7.5 s songs at 3 s windows: 2 clips each, tail dropped; the gap song: 3 clips, the middle one silent
    assert (seg.groupby("song_id").size().drop("gap") == 2).all()
    gap = seg[seg["song_id"] == "gap"].sort_values("clip_index")
    assert gap["is_silent"].tolist() == [False, True, False]
    assert rep["silent_clips"] == {"flagged": 1, "dropped": 0} and rep["tails"]["dropped"] == 8
    assert seg["segment_id"].tolist() == [f"{s}__{c:04d}" for s, c in zip(seg["song_id"], seg["clip_index"])]
    # no song has clips in two splits; all three splits used
    assert (seg.groupby("song_id")["split"].nunique() == 1).all()
    assert set(seg["split"]) == {"train", "val", "test"}
    # shard round-trip: a clip's samples are the song's samples (no normalization in this run)
    reader = ShardReader(out, "audio")
    row = seg[seg["segment_id"] == "en_rock_1__0001"].iloc[0]
    clip = from_pcm16(reader.rows([row["shard"]], [row["row"]]))[0]
    original = next(s["y"] for s in songs if s["song_id"] == "en_rock_1")
    expected = original[int(row["start_s"] * SR) : int(row["start_s"] * SR) + 3 * SR]
    np.testing.assert_allclose(clip, expected, atol=2 / 32768)


def test_segment_stage_pad_drop_and_normalize(tmp_path, repo_root):
    songs = demo_songs(n_per_cell=1)
    songs.append(
        {
            "song_id": "gap",
            "language": "bn",
            "genre": "pop",
            "y": np.concatenate([tone(3.0, amp=0.01), np.zeros(3 * SR, np.float32), tone(3.0, amp=0.01)]),
        }
    )
    raw = make_raw(tmp_path / "raw", songs)
    params = write_params(repo_root, tmp_path / "params.yaml", segment={"tail": "pad", "silence": "drop"})
    out = tmp_path / "segments"
    segment_stage.main(["--raw", str(raw), "--out", str(out), "--params", str(params)])
    seg = pd.read_parquet(out / "segments.parquet")
    rep = yaml.safe_load((out / "report.json").read_text())
    # 7.5 s: two whole windows plus a 1.5 s tail (half a window) padded into a third
    tails = seg[seg["clip_index"] == 2].drop(seg.index[seg["song_id"] == "gap"], errors="ignore")
    assert len(tails) == 4 and np.allclose(tails["end_s"], 7.5)
    assert rep["silent_clips"]["dropped"] == 1
    assert seg[seg["song_id"] == "gap"]["clip_index"].tolist() == [0, 2]
    reader = ShardReader(out, "audio")
    clip = from_pcm16(reader.rows([tails["shard"].iloc[0]], [tails["row"].iloc[0]]))[0]
    assert np.all(clip[int(1.5 * SR) + 1 :] == 0)  # padding is digital silence
    # the quiet gap song was normalized up to about -20 LUFS
    gap = seg[seg["song_id"] == "gap"].iloc[0]
    y = from_pcm16(reader.rows([gap["shard"]], [gap["row"]]))[0]
    assert integrated_loudness(y, SR) == pytest.approx(-20.0, abs=1.0)


def test_segment_stage_survives_a_table_of_only_bad_songs(tmp_path, repo_root):
    """No crash on a table of only bad songs: every song's reason is in the report, and the stage
    stops naming the setting to change (zero clips would only fail later, in train)."""
    from musiclust.audio.segment import NoUsableClips

    raw = make_raw(
        tmp_path / "raw",
        [
            {"song_id": "short", "language": "en", "genre": "pop", "y": tone(1.0)},
            {"song_id": "bad", "language": "en", "genre": "pop", "raw": b"nope"},
        ],
    )
    params = write_params(repo_root, tmp_path / "params.yaml")
    out = tmp_path / "segments"
    with pytest.raises(NoUsableClips, match=r"segment\.window_s"):
        segment_stage.main(["--raw", str(raw), "--out", str(out), "--params", str(params)])
    seg = pd.read_parquet(out / "segments.parquet")
    rep = yaml.safe_load((out / "report.json").read_text())
    assert len(seg) == 0 and rep["skipped"] == 2 and rep["segmented"] == 0
    assert rep["reasons"] == {"too short": 1, "corrupt": 1}
    assert "split" in seg.columns and "segment_id" in seg.columns


def test_gtzan_songs_segment(tmp_path, repo_root, shared_data):
    """Real FLAC music: three GTZAN excerpts give ten 3 s clips each."""
    labels = pd.read_csv(shared_data / "gtzan40" / "labels.csv")
    pick = labels.groupby("genre").head(1).head(3)
    raw = tmp_path / "raw"
    (raw / "audio").mkdir(parents=True)
    rows = []
    for _, r in pick.iterrows():
        src = shared_data / "gtzan40" / r["path"]
        sid = Path(r["path"]).stem.replace(".", "_")
        (raw / "audio" / src.name).symlink_to(src)
        rows.append(
            {
                "song_id": sid,
                "title": sid,
                "artist": "",
                "language": None,
                "genre": r["genre"],
                "audio_path": f"audio/{src.name}",
                "duration_s": float(r["duration_s"]),
                "sample_rate": SR,
                "lyrics": None,
                "has_lyrics": False,
                "source": "gtzan40",
            }
        )
    pd.DataFrame(rows).to_parquet(raw / "songs.parquet", index=False)
    params = write_params(repo_root, tmp_path / "params.yaml")
    out = tmp_path / "segments"
    segment_stage.main(["--raw", str(raw), "--out", str(out), "--params", str(params)])
    seg = pd.read_parquet(out / "segments.parquet")
    assert seg["song_id"].nunique() == 3
    assert seg.groupby("song_id").size().between(9, 10).all()
    assert set(seg["split"]) == {"train", "val", "test"}
