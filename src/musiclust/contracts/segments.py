"""``data/segments/``: the output of the ``segment`` stage.

- ``segments.parquet``: one row per clip, in shard order (:data:`CLIP_COLUMNS` first, then the
  song's metadata: every column of ``songs.parquet`` except :data:`NOT_METADATA`);
- ``audio-NNNNN.npy``: int16 PCM shards (sample / :data:`~musiclust.contracts.shards.PCM_SCALE`),
  shape ``(rows, window_samples)``; clip = ``audio-{shard:05d}.npy[row]`` (:func:`audio_reader`);
- ``report.json``: counts that reconcile (``songs_in == segmented + skipped``), the ``audio``
  settings the clips were cut with (``sample_rate``, ``window_samples``, ``prefix``, ...), the
  split summary and one entry per song.

``split`` is the same for every clip of one song (:mod:`musiclust.audio.split`); ``is_silent``
flags clips that every consumer leaves out of training and clustering.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.contracts.shards import ShardReader, remove_shards
from musiclust.fileio import read_json, write_json, write_parquet

SEGMENTS_FILE = "segments.parquet"
REPORT_FILE = "report.json"
#: shard name prefix of clip audio (``audio-00000.npy``)
AUDIO_PREFIX = "audio"
#: the clip columns, in this order, before the song metadata
CLIP_COLUMNS = [
    "segment_id",
    "song_id",
    "clip_index",
    "start_s",
    "end_s",
    "split",
    "is_silent",
    "shard",
    "row",
]
#: the columns every reader needs
KEY_COLUMNS = ("segment_id", "song_id", "split")
#: song columns that do not travel into segments.parquet (long text, file locations, raw-audio facts)
NOT_METADATA = frozenset({"audio_path", "lyrics", "duration_s", "sample_rate"})


def segment_id(song_id: str, clip_index: int) -> str:
    """``<song_id>__<clip_index:04d>``: a clip's id."""
    return f"{song_id}__{int(clip_index):04d}"


def table_path(segments: str | Path) -> Path:
    """``segments.parquet`` given the stage's folder (or the file itself)."""
    path = Path(segments)
    return path / SEGMENTS_FILE if path.is_dir() else path


def read_segments(
    segments: str | Path, columns: Sequence[str] | None = None, require: Sequence[str] = KEY_COLUMNS
) -> pd.DataFrame:
    """``segments.parquet`` (given its folder or the file), checked for the ``require`` columns.

    ``columns`` reads only those columns. Raises ``FileNotFoundError`` / ``ValueError`` naming the file.
    """
    path = table_path(segments)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no segments table; run the segment stage first")
    df = pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    missing = [c for c in require if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (see docs/pipeline.md)")
    return df


def read_report(segments_dir: str | Path) -> dict[str, Any] | None:
    """``report.json`` of the segment stage, or ``None`` when the folder has none."""
    path = Path(segments_dir) / REPORT_FILE
    return read_json(path) if path.is_file() else None


def audio_prefix(report: dict[str, Any] | None) -> str:
    """The clip shards' name prefix the report records (:data:`AUDIO_PREFIX` when it says none)."""
    return ((report or {}).get("audio") or {}).get("prefix", AUDIO_PREFIX)


def audio_reader(segments_dir: str | Path, prefix: str = AUDIO_PREFIX) -> ShardReader:
    """Memory-mapped access to the clip audio shards by ``(shard, row)``."""
    return ShardReader(segments_dir, prefix)


def clear(out_dir: str | Path) -> None:
    """Remove what an earlier run wrote (the output is rewritten whole)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_shards(out, AUDIO_PREFIX)
    for stale in (SEGMENTS_FILE, REPORT_FILE):
        (out / stale).unlink(missing_ok=True)


def write(out_dir: str | Path, clips: pd.DataFrame, report: dict[str, Any] | None = None) -> None:
    """Write ``segments.parquet`` (``clips``, :data:`CLIP_COLUMNS` first) and, when given, ``report.json``."""
    out = Path(out_dir)
    missing = [c for c in CLIP_COLUMNS if c not in clips.columns]
    if missing:
        raise ValueError(f"{out / SEGMENTS_FILE}: clip table lacks {missing}")
    write_parquet(clips, out / SEGMENTS_FILE)
    if report is not None:
        write_json(out / REPORT_FILE, report)
