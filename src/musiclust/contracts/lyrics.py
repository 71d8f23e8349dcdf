"""``data/lyrics.parquet``: the output of the ``embed_lyrics`` stage.

One row per song of ``songs.parquet``, in its order: :data:`META_COLUMNS` (``song_id``,
``has_lyrics``, ``encoder``, ``text_source``), then ``emb_000`` ... ``emb_{d-1}`` float32
(:func:`emb_columns`; zeros where ``text_source`` is ``none``). ``d`` is ``lyrics.dim`` for
``tfidf-char``, the model's width for sentence-transformers: select columns by :data:`EMB_PREFIX`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from musiclust.fileio import write_parquet

#: ``text_source`` values: what the row's vector was computed from
SOURCE_LYRICS, SOURCE_AUDIO, SOURCE_NONE = "lyrics", "audio_description", "none"
META_COLUMNS = ["song_id", "has_lyrics", "encoder", "text_source"]
EMB_PREFIX = "emb_"


def emb_columns(dim: int) -> list[str]:
    """Names of the embedding columns: ``emb_000`` ... ``emb_{dim-1}``."""
    width = max(3, len(str(dim - 1)))
    return [f"{EMB_PREFIX}{i:0{width}d}" for i in range(dim)]


def embedding_columns(table: pd.DataFrame) -> list[str]:
    """The embedding columns of a lyrics table, in table order."""
    return [c for c in table.columns if c.startswith(EMB_PREFIX)]


def lyrics_table(
    song_ids: pd.Series,
    has_lyrics: np.ndarray,
    encoder: str,
    text_source: np.ndarray,
    x: np.ndarray,
    dim: int,
) -> pd.DataFrame:
    """The table: one row per song, :data:`META_COLUMNS` then the ``x`` ``(n_songs, dim)`` embeddings."""
    table = pd.DataFrame(
        {
            "song_id": song_ids.astype(str),
            "has_lyrics": has_lyrics.astype(bool),
            "encoder": encoder,
            "text_source": text_source.astype(str),
        }
    )
    return pd.concat([table, pd.DataFrame(x, columns=emb_columns(dim))], axis=1)


def write(table: pd.DataFrame, path: str | Path) -> None:
    """Write the table (:func:`lyrics_table`) to ``path``."""
    missing = [c for c in META_COLUMNS if c not in table.columns]
    if missing or not embedding_columns(table):
        raise ValueError(f"{path}: lyrics table lacks {missing or 'emb_* columns'}")
    write_parquet(table, path)


def read(path: str | Path) -> pd.DataFrame:
    """The lyrics table at ``path``, checked for ``song_id`` and ``emb_*`` columns.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no lyrics table; run the embed_lyrics stage first")
    df = pd.read_parquet(path)
    if "song_id" not in df.columns or not embedding_columns(df):
        raise ValueError(f"{path}: needs song_id and emb_* columns (see docs/pipeline.md)")
    return df
