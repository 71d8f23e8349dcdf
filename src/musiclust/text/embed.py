"""One embedding per song from its lyrics: the ``lyrics.parquet`` table.

Every song of ``songs.parquet`` gets exactly one row. Songs without lyrics are kept
and masked (``has_lyrics`` false, zero vector), never dropped, so multimodal models
can ignore absent text. Encoders that learn from data (``tfidf-char``) are fit on the
songs of the training split only, read from ``segments.parquet``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from musiclust.contracts import lyrics as contract
from musiclust.contracts import raw as raw_contract
from musiclust.contracts import segments as segments_contract
from musiclust.contracts.lyrics import SOURCE_AUDIO, SOURCE_LYRICS, SOURCE_NONE
from musiclust.params import LyricsParams
from musiclust.text.encoders import LyricsEncoder, build_encoder

log = logging.getLogger(__name__)


@dataclass
class LyricsSummary:
    """What the stage did, for the log (counts in = with lyrics + without)."""

    encoder: str
    dim: int
    n_songs: int
    n_with_lyrics: int
    n_without_lyrics: int
    n_described: int = 0
    n_fit: int = 0
    n_without_split: int = 0
    #: texts the model ran on (distinct chunks for sentence-transformers, texts for tfidf-char)
    n_chunks: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def song_splits(segments: pd.DataFrame) -> pd.Series:
    """``song_id -> split`` from the clip table (one split per song, by construction)."""
    missing = {"song_id", "split"} - set(segments.columns)
    if missing:
        raise ValueError(f"segments table lacks column(s) {sorted(missing)}")
    per_song = segments.groupby("song_id", sort=False)["split"].agg(lambda s: sorted(set(s)))
    mixed = per_song[per_song.map(len) > 1]
    if len(mixed):
        raise ValueError(
            f"{len(mixed)} song(s) have clips in several splits (e.g. {mixed.index[0]!r}); "
            "the split must be song-level: re-run the segment stage"
        )
    return per_song.map(lambda s: s[0])


def lyrics_mask(songs: pd.DataFrame) -> pd.Series:
    """Which songs really have lyrics: a non-blank ``lyrics`` string (and ``has_lyrics`` when given)."""
    text = songs["lyrics"] if "lyrics" in songs.columns else pd.Series([None] * len(songs), index=songs.index)
    present = text.map(lambda t: isinstance(t, str) and bool(t.strip()))
    if "has_lyrics" in songs.columns:
        declared = songs["has_lyrics"].fillna(False).astype(bool)
        blank = declared & ~present
        if blank.any():
            log.warning(
                "%d song(s) are marked has_lyrics but their lyrics are blank; they are masked (e.g. %s)",
                int(blank.sum()),
                songs.loc[blank, "song_id"].iloc[0],
            )
        return declared & present
    return present


def embed_songs(
    songs: pd.DataFrame,
    splits: pd.Series,
    params: LyricsParams,
    descriptions: pd.Series | None = None,
    encoder: LyricsEncoder | None = None,
) -> tuple[pd.DataFrame, LyricsSummary]:
    """Embed each song's lyrics.

    ``songs``: ``song_id``, ``lyrics`` (str or null), ``has_lyrics``; ``splits``:
    ``song_id -> train|val|test``; ``descriptions``: optional ``song_id -> text`` used
    for songs without lyrics (audio descriptions; never labels). ``encoder`` overrides
    the one built from ``params`` (for tests and notebooks).

    Returns ``(table, summary)``: the table has one row per song, in input order:
    ``song_id``, ``has_lyrics``, ``encoder``, ``text_source``, ``emb_*`` float32 (zeros
    where ``text_source == "none"``).
    """
    t0 = time.perf_counter()
    _check_song_ids(songs)
    songs = songs.reset_index(drop=True)
    has = lyrics_mask(songs).to_numpy()
    texts, source = _texts(songs, has, descriptions)

    enc = encoder or build_encoder(
        params.encoder,
        dim=params.dim,
        normalize=params.normalize,
        batch_size=params.batch_size,
        precision=params.precision,
        backend=params.backend,
    )
    split = songs["song_id"].map(splits)
    summary = LyricsSummary(
        encoder=params.encoder if encoder is None else enc.name,
        dim=enc.dim,
        n_songs=len(songs),
        n_with_lyrics=int(has.sum()),
        n_without_lyrics=int((~has).sum()),
        n_described=int((source == SOURCE_AUDIO).sum()),
        n_without_split=int(split.isna().sum()),
    )
    if summary.n_without_split:
        summary.notes.append(
            f"{summary.n_without_split} song(s) have no clips in the segments table "
            "(no split); they are embedded but never used for fitting"
        )
    x = _fit_and_encode(enc, texts, split, songs["song_id"], summary)

    table = contract.lyrics_table(songs["song_id"], has, summary.encoder, source, x, enc.dim)
    summary.seconds = time.perf_counter() - t0
    return table, summary


def _check_song_ids(songs: pd.DataFrame) -> None:
    """Every song has one distinct ``song_id``; ValueError otherwise."""
    if "song_id" not in songs.columns:
        raise ValueError("songs table lacks the song_id column")
    dup = songs["song_id"][songs["song_id"].duplicated()]
    if len(dup):
        raise ValueError(f"song_id {dup.iloc[0]!r} appears more than once in the songs table")


def _texts(songs: pd.DataFrame, has: np.ndarray, descriptions: pd.Series | None) -> tuple[list, np.ndarray]:
    """The text to embed per song (None: masked) and where it came from (``text_source``)."""
    texts: list[str | None] = [songs.at[i, "lyrics"] if has[i] else None for i in range(len(songs))]
    source = np.where(has, SOURCE_LYRICS, SOURCE_NONE).astype(object)
    if descriptions is not None:
        for i in np.flatnonzero(~has):
            desc = descriptions.get(songs.at[i, "song_id"])
            if isinstance(desc, str) and desc.strip():
                texts[i], source[i] = desc, SOURCE_AUDIO
    return texts, source


def _fit_and_encode(
    enc: LyricsEncoder, texts: list[str | None], split: pd.Series, song_ids: pd.Series, summary: LyricsSummary
) -> np.ndarray:
    """``(n_songs, dim)`` float32 vectors, zero where the text is None; fits ``enc`` on training texts first.

    Raises :class:`FloatingPointError` naming a song whose vector is not finite.
    """
    if not any(t is not None for t in texts):
        # e.g. a folder of audio files: nothing to fit or encode, every row stays masked
        summary.notes.append("no song has lyrics: every row is masked with a zero vector")
    elif enc.needs_fit:
        # fit on training songs only: the encoder must not see val/test text
        fit_idx = [i for i in range(len(texts)) if texts[i] is not None and split.iat[i] == "train"]
        summary.n_fit = len(fit_idx)
        enc.fit([texts[i] for i in fit_idx])

    idx = [i for i, t in enumerate(texts) if t is not None]
    x = np.zeros((len(texts), enc.dim), np.float32)
    if idx:
        x[idx] = enc.encode([texts[i] for i in idx])
        summary.n_chunks = int(getattr(enc, "n_encoded", len(idx)))
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():  # a non-finite vector would poison every downstream model
        raise FloatingPointError(
            f"encoder {enc.name} produced non-finite vectors for {int(bad.sum())} song(s), "
            f"e.g. {song_ids.iat[int(np.flatnonzero(bad)[0])]!r}"
        )
    return x


def run(
    raw_dir: str | Path,
    segments_dir: str | Path,
    out_path: str | Path,
    params: LyricsParams,
    features_dir: str | Path | None = None,
) -> LyricsSummary:
    """Read ``<raw>/songs.parquet`` and ``<segments>/segments.parquet``, write ``out_path``.

    ``features_dir`` is needed only with ``lyrics.describe_audio``.
    """
    songs = raw_contract.read_songs(raw_dir)
    segments = segments_contract.read_segments(segments_dir, require=())
    descriptions = None
    if params.describe_audio:
        from musiclust.text.describe import describe_songs_from_features

        if features_dir is None:
            raise ValueError("lyrics.describe_audio needs the audio features: pass --features data/features")
        descriptions = describe_songs_from_features(features_dir, segments)
    table, summary = embed_songs(songs, song_splits(segments), params, descriptions=descriptions)
    contract.write(table, out_path)
    log.info(
        "lyrics: %d songs, %d with lyrics, %d without (masked%s); encoder %s, dim %d%s; %.1f s -> %s",
        summary.n_songs,
        summary.n_with_lyrics,
        summary.n_without_lyrics,
        f"; {summary.n_described} of them described from audio" if params.describe_audio else "",
        summary.encoder,
        summary.dim,
        f", fit on {summary.n_fit} training songs" if summary.n_fit else "",
        summary.seconds,
        out_path,
    )
    for note in summary.notes:
        log.warning("lyrics: %s", note)
    return summary
