"""Short text descriptions of songs from their audio features (``lyrics.describe_audio``).

A song without lyrics can still get a text channel by describing how it sounds, as
one study of label-free multimodal music clustering did. The description is built
only from audio features of the song's own clips (tempo, energy, brightness, rhythmic
activity); genre, language and every other label column are never read, so the text
channel cannot leak labels into the models.

Per song the clip features are aggregated by the median over its non-silent clips.
Tempo is described in absolute BPM; energy, brightness and rhythmic activity relative
to the corpus, by terciles of the training songs (unsupervised statistics of the
inputs, fit on the training split like every other scaler).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from musiclust.contracts.features import read_vector_set

log = logging.getLogger(__name__)

#: spectral-set columns the descriptions use (written by the featurize stage)
NEEDED = ("tempo", "rms_mean", "rms_std", "centroid_mean")

_ENERGY = ("soft and quiet", "of moderate loudness", "loud and energetic")
_BRIGHT = ("a dark, warm sound", "a balanced sound", "a bright, sharp sound")
_RHYTHM = ("a smooth, sustained rhythm", "a steady rhythm", "a busy, percussive rhythm")


def song_audio_stats(spectral: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Per-song medians of the clip features: ``tempo_bpm``, ``energy_db``, ``brightness_hz``, ``rhythm``.

    ``spectral``: ``segment_id`` + the spectral columns; ``segments``: ``segment_id``,
    ``song_id``, optional ``is_silent``. ``rhythm`` is the within-clip loudness variation
    (frame RMS standard deviation over its mean): high for punctuated, percussive audio,
    low for sustained sound. Silent clips are left out; a song with only silent clips
    gets no row.
    """
    missing = [c for c in NEEDED if c not in spectral.columns]
    if missing:
        raise ValueError(f"spectral features lack column(s) {missing}; re-run the featurize stage")
    seg_cols = ["segment_id", "song_id"] + (["is_silent"] if "is_silent" in segments.columns else [])
    df = spectral[["segment_id", *NEEDED]].merge(segments[seg_cols], on="segment_id", how="inner")
    if "is_silent" in df.columns:
        df = df[~df["is_silent"].astype(bool)]
    rms = df["rms_mean"].to_numpy(np.float64)
    df = df.assign(
        tempo_bpm=df["tempo"].astype(float),
        energy_db=20 * np.log10(np.maximum(rms, 1e-10)),
        brightness_hz=df["centroid_mean"].astype(float),
        rhythm=df["rms_std"].to_numpy(np.float64) / np.maximum(rms, 1e-10),
    )
    stats = df.groupby("song_id", sort=False)[["tempo_bpm", "energy_db", "brightness_hz", "rhythm"]].median()
    return stats[np.isfinite(stats).all(axis=1)]


def _tercile(value: float, edges: np.ndarray) -> int:
    return int(np.searchsorted(edges, value, side="right"))


def _tempo_words(bpm: float) -> str:
    if bpm < 90:
        return "slow"
    if bpm < 130:
        return "medium"
    return "fast"


def describe(stats: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.Series:
    """One sentence per song (index ``song_id``) from :func:`song_audio_stats` rows.

    ``reference`` (default: ``stats``) holds the songs whose terciles define "quiet" /
    "loud", "dark" / "bright" and "smooth" / "busy"; pass the training songs.
    """
    ref = stats if reference is None or reference.empty else reference
    edges = {
        c: np.nanquantile(ref[c].to_numpy(), [1 / 3, 2 / 3]) for c in ("energy_db", "brightness_hz", "rhythm")
    }
    out = {}
    for song_id, r in stats.iterrows():
        out[song_id] = (
            f"A track at a {_tempo_words(r.tempo_bpm)} tempo of about {r.tempo_bpm:.0f} beats "
            f"per minute, {_ENERGY[_tercile(r.energy_db, edges['energy_db'])]}, with "
            f"{_BRIGHT[_tercile(r.brightness_hz, edges['brightness_hz'])]} and "
            f"{_RHYTHM[_tercile(r.rhythm, edges['rhythm'])]}."
        )
    return pd.Series(out, dtype=object)


def describe_songs_from_features(features_dir: str | Path, segments: pd.DataFrame) -> pd.Series:
    """Descriptions for every song with non-silent clips in ``<features_dir>/spectral.parquet``.

    ``segments`` needs ``segment_id``, ``song_id``, ``split`` (terciles come from the
    training songs) and optionally ``is_silent``.
    """
    try:
        spectral = read_vector_set(features_dir, "spectral")
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{exc}; lyrics.describe_audio needs the 'spectral' feature set or set lyrics.describe_audio: false"
        ) from None
    stats = song_audio_stats(spectral, segments)
    train_songs = set(segments.loc[segments["split"] == "train", "song_id"])
    descriptions = describe(stats, stats[stats.index.isin(train_songs)])
    log.info(
        "audio descriptions for %d song(s) (e.g. %r)",
        len(descriptions),
        descriptions.iloc[0] if len(descriptions) else "",
    )
    return descriptions
