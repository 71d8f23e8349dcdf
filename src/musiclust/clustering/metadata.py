"""The ``metadata`` baseline: songs described only by the metadata columns the user names.

It answers "how far does the song's metadata alone get?" (an artist often plays one genre, a
title gives away the language), so a model that only matches it has learnt little from the audio.
Built from ``cluster.metadata_columns`` of ``segments.parquet``, one block of columns per entry
``name[:encoding]``, every encoder fit on the training songs only:

- ``category``: one-hot of the :data:`MAX_CATEGORIES` commonest training values, plus ``<other>``
  (every value not among them, test-only values included); a missing value is the value
  ``<missing>``;
- ``text``: TF-IDF of character 2-4-grams (:data:`MAX_TFIDF_FEATURES` features);
- ``numeric``: standardized (missing and unparseable values get the training mean, i.e. 0).

Without an encoding, a numeric column is ``numeric``, a column named in :data:`TEXT_COLUMNS` is
``text`` and any other is ``category``. Each block is then divided by the square root of its
total variance on the training songs, so every named column weighs the same in a distance
whatever its width (51 one-hot columns or one number). Columns are named ``cat:<name>=<value>``,
``tfidf:<name>:<n-gram>`` and ``num:<name>``. Every clip gets its song's vector; the
representation does not depend on a training seed. Label columns are refused in params.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from musiclust.params import metadata_column_spec

log = logging.getLogger(__name__)

MAX_CATEGORIES = 50
MAX_TFIDF_FEATURES = 64
#: string columns encoded as text (TF-IDF) when no encoding is named
TEXT_COLUMNS = ("title",)
MISSING = "<missing>"


class NoMetadata(Exception):
    """The baseline has nothing to be built from (the reason says why)."""


@dataclass(frozen=True)
class Block:
    """One encoded metadata column: its song matrix (songs x features) and feature names."""

    name: str
    encoding: str
    x: np.ndarray  # (n_songs, d) float64
    columns: list[str]


def song_table(segments: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """One row per song (first clip's values, songs in order of first appearance): song_id, split, ``names``."""
    missing = [n for n in names if n not in segments.columns]
    if missing:
        raise ValueError(
            f"cluster.metadata_columns: column(s) {missing} not in segments.parquet "
            f"(song metadata there: {sorted(c for c in segments.columns if c not in ('segment_id', 'split'))})"
        )
    seg = segments.assign(song_id=segments["song_id"].astype(str))
    return seg.drop_duplicates("song_id")[["song_id", "split", *names]].reset_index(drop=True)


def encoding_of(values: pd.Series, name: str, encoding: str | None) -> str:
    """The encoding of column ``name``: the named one, else numeric / text / category (module doc)."""
    if encoding is not None:
        return encoding
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return "numeric"
    return "text" if name.lower() in TEXT_COLUMNS else "category"


def _strings(values: pd.Series) -> pd.Series:
    return values.map(
        lambda v: MISSING if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
    )


def encode_category(values: pd.Series, train: np.ndarray, name: str) -> Block:
    """One-hot of the commonest training values (ties: alphabetical) plus ``other``."""
    s = _strings(values)
    counts = s[train].value_counts()
    order = sorted(counts.index, key=lambda v: (-counts[v], v))[:MAX_CATEGORIES]
    pos = {v: i for i, v in enumerate(order)}
    idx = np.array([pos.get(v, len(order)) for v in s])
    x = np.zeros((len(s), len(order) + 1))
    x[np.arange(len(s)), idx] = 1.0
    return Block(name, "category", x, [f"cat:{name}={v}" for v in order] + [f"cat:{name}=<other>"])


def encode_text(values: pd.Series, train: np.ndarray, name: str) -> Block:
    """TF-IDF of character 2-4-grams within words, vocabulary and idf fit on training songs."""
    s = values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    vec = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), max_features=MAX_TFIDF_FEATURES, lowercase=True
    )
    try:
        vec.fit(s[train])
    except ValueError:  # an empty vocabulary: no training song has any text in this column
        raise NoMetadata(f"column {name!r} has no text on any training song") from None
    x = vec.transform(s).toarray()
    return Block(name, "text", x, [f"tfidf:{name}:{t}" for t in vec.get_feature_names_out()])


def encode_numeric(values: pd.Series, train: np.ndarray, name: str) -> Block:
    """Standardized with the training songs' mean and standard deviation; missing -> the mean."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(v)
    if bad.all() or (~bad & train).sum() == 0:
        raise NoMetadata(f"column {name!r} has no number on any training song")
    if bad.any():
        log.info("metadata: %d song(s) have no number in %r (given the training mean)", int(bad.sum()), name)
    mean = float(v[train & ~bad].mean())
    sd = float(v[train & ~bad].std())
    v = np.where(bad, mean, v)
    return Block(name, "numeric", ((v - mean) / (sd if sd > 0 else 1.0))[:, None], [f"num:{name}"])


ENCODERS = {"category": encode_category, "text": encode_text, "numeric": encode_numeric}


def metadata_vectors(
    segments: pd.DataFrame, specs: Sequence[str]
) -> tuple[pd.DataFrame, np.ndarray, list[str], str]:
    """Song vectors of the named metadata columns (module doc).

    Returns (songs: song_id + split, x: (n_songs, d) float32, columns, description). Raises
    :class:`NoMetadata` when ``specs`` is empty or nothing can be encoded.
    """
    if not specs:
        raise NoMetadata("cluster.metadata_columns is empty")
    parsed = [metadata_column_spec(s) for s in specs]
    songs = song_table(segments, [n for n, _ in parsed])
    train = (songs["split"].astype(str) == "train").to_numpy()
    if train.sum() < 2:
        raise NoMetadata("fewer than two training songs to fit the metadata encoders on")
    blocks = []
    for name, enc in parsed:
        encoding = encoding_of(songs[name], name, enc)
        block = ENCODERS[encoding](songs[name], train, name)
        total = float(block.x[train].var(axis=0).sum())
        if total <= 0:
            log.warning("metadata: %r is the same on every training song; it is left out", name)
            continue
        blocks.append(Block(block.name, block.encoding, block.x / np.sqrt(total), block.columns))
    if not blocks:
        raise NoMetadata(
            f"every column of cluster.metadata_columns ({', '.join(n for n, _ in parsed)}) is constant "
            "on the training songs"
        )
    x = np.hstack([b.x for b in blocks]).astype(np.float32)
    columns = [c for b in blocks for c in b.columns]
    description = (
        "song metadata: "
        + ", ".join(f"{b.name} ({b.encoding}, {len(b.columns)} dims)" for b in blocks)
        + "; encoders fit on train songs, each column's block scaled to unit total train variance"
    )
    return songs[["song_id", "split"]], x, columns, description
