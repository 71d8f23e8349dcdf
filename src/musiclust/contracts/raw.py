"""``data/raw/``: the output of the ``download`` stage (persistent; rebuilt from the download cache).

- ``songs.parquet``: one row per song acquired and verified: :data:`BASE_COLUMNS`, the label
  columns, :data:`TAIL_COLUMNS`, then any extra manifest columns as metadata (:func:`songs_table`);
- ``audio/<song_id>.<ext>``: the audio files (``audio_path`` is relative to ``data/raw``);
- ``report.json``: one entry per input row, ``rows_in == ok + skipped``
  (:func:`musiclust.data.report.build_report`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.fileio import read_json, write_json, write_parquet

SONGS_FILE = "songs.parquet"
REPORT_FILE = "report.json"
#: folder of the audio files; ``audio_path`` is ``audio/<file>``
AUDIO_DIR = "audio"
#: songs.parquet columns every source provides (label columns go after ``artist``)
BASE_COLUMNS = ("song_id", "title", "artist")
#: the columns after the labels, in this order (extra manifest columns follow them)
TAIL_COLUMNS = ("audio_path", "duration_s", "sample_rate", "lyrics", "has_lyrics", "source", "track_id")


def songs_table(records: Sequence[Mapping[str, Any]], label_columns: Sequence[str]) -> pd.DataFrame:
    """``songs.parquet`` from one record per song: columns in contract order, fixed dtypes, nulls as None."""
    head = list(BASE_COLUMNS) + [c for c in label_columns if c not in BASE_COLUMNS + TAIL_COLUMNS]
    df = pd.DataFrame.from_records(list(records)) if records else pd.DataFrame()
    for c in head + list(TAIL_COLUMNS):
        if c not in df.columns:
            df[c] = pd.Series(dtype="object")
    extra = [c for c in df.columns if c not in head and c not in TAIL_COLUMNS]
    df = df[head + list(TAIL_COLUMNS) + extra]
    df["duration_s"] = df["duration_s"].astype("float64")
    df["sample_rate"] = df["sample_rate"].astype("int64")
    df["has_lyrics"] = df["has_lyrics"].astype(bool)
    for c in head + ["lyrics", "source", "track_id"] + extra:
        if df[c].dtype == object or df[c].isna().all():
            df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df.reset_index(drop=True)


def write(out_dir: str | Path, songs: pd.DataFrame, report: Mapping[str, Any]) -> None:
    """``songs.parquet`` and ``report.json`` into ``out_dir`` (the audio files are placed by download)."""
    out = Path(out_dir)
    write_parquet(songs, out / SONGS_FILE)
    write_json(out / REPORT_FILE, dict(report))


def read_songs(
    raw_dir: str | Path,
    columns: Sequence[str] | None = None,
    require: Sequence[str] = ("song_id",),
    unique_ids: bool = False,
) -> pd.DataFrame:
    """``<raw_dir>/songs.parquet`` checked for the ``require`` columns (and unique ``song_id``).

    ``columns`` reads only those. Raises ``FileNotFoundError`` / ``ValueError`` naming the file.
    """
    path = Path(raw_dir) / SONGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no song table; run the download stage first")
    songs = pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    for col in require:
        if col not in songs.columns:
            raise ValueError(f"{path}: column {col!r} is missing (see docs/pipeline.md)")
    if unique_ids and songs["song_id"].duplicated().any():
        raise ValueError(
            f"{path}: duplicate song_id {songs.loc[songs['song_id'].duplicated(), 'song_id'].iloc[0]!r}"
        )
    return songs


def read_report(raw_dir: str | Path) -> dict[str, Any]:
    """``<raw_dir>/report.json`` (``FileNotFoundError`` naming it when absent)."""
    path = Path(raw_dir) / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no download report; run the download stage first")
    return read_json(path)
