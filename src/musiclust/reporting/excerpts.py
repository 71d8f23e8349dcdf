"""Short listenable excerpts of songs, read from the segment stage's audio shards.

Clips live in ``data/segments/audio-NNNNN.npy`` (int16 PCM rows of equal length, addressed by
``segments.parquet``'s ``shard`` and ``row``). The sample rate is not a report param: it follows
from the shard row length and the clip duration (``end_s - start_s``).
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from musiclust.contracts import segments as segments_contract
from musiclust.contracts.shards import ShardReader, from_pcm16

log = logging.getLogger(__name__)

_FADE_S = 0.03  # short fades so excerpts start and stop without a click


class ExcerptError(Exception):
    """No excerpt could be made for a song (the message says why)."""


def clip_audio(reader: ShardReader, shard: int, row: int) -> np.ndarray:
    """One clip's samples as float32 in [-1, 1), memory-mapped so nothing else is read.

    Shards hold int16 PCM (see :mod:`musiclust.contracts.shards`); float shards pass through.
    """
    try:
        arr = reader.shard(int(shard))
    except FileNotFoundError as exc:
        raise ExcerptError(str(exc)) from None
    if int(row) >= arr.shape[0]:
        raise ExcerptError(
            f"{reader.directory}: shard {shard} has {arr.shape[0]} rows, clip asks for row {row}"
        )
    x = np.asarray(arr[int(row)])
    return from_pcm16(x) if x.dtype == np.int16 else x.astype(np.float32)


def song_excerpt(
    segments: pd.DataFrame, segments_dir: Path, song_id: str, seconds: float
) -> tuple[np.ndarray, int, float]:
    """About ``seconds`` of contiguous audio from the middle of a song.

    Uses the song's non-silent clips in time order, starting near the middle and laying
    consecutive clips on a timeline (overlapping hops are handled). Returns
    ``(samples, sample_rate, start_s)``.
    """
    clips = segments[segments["song_id"] == song_id]
    if "is_silent" in clips.columns and (~clips["is_silent"].astype(bool)).any():
        clips = clips[~clips["is_silent"].astype(bool)]
    if clips.empty:
        raise ExcerptError(f"song {song_id}: no clips in segments.parquet")
    clips = clips.sort_values("start_s").reset_index(drop=True)
    # start near the middle (intros are often quiet), but early enough to fill ``seconds``
    middle = float(clips["start_s"].iloc[max(0, len(clips) // 2 - 1)])
    target = max(float(clips["start_s"].iloc[0]), min(middle, float(clips["end_s"].max()) - seconds))
    first = clips[clips["start_s"] <= target + 1e-9].iloc[-1]
    reader = segments_contract.audio_reader(segments_dir)
    y0 = clip_audio(reader, first["shard"], first["row"])
    dur = float(first["end_s"] - first["start_s"])
    if dur <= 0:
        raise ExcerptError(f"song {song_id}: clip {first.get('segment_id')} has no duration")
    sr = int(round(len(y0) / dur))
    n_out = int(round(seconds * sr))
    out = np.zeros(n_out, dtype=np.float32)
    t0 = float(first["start_s"])
    filled = 0
    for _, c in clips[clips["start_s"] >= t0].iterrows():
        offset = int(round((float(c["start_s"]) - t0) * sr))
        if offset > filled or offset >= n_out:
            break  # a gap (dropped silent clip) or done: keep the excerpt contiguous
        y = y0 if c["start_s"] == first["start_s"] else clip_audio(reader, c["shard"], c["row"])
        take = min(len(y), n_out - offset)
        out[offset : offset + take] = y[:take]
        filled = max(filled, offset + take)
    return out[:filled], sr, t0


def _for_listening(y: np.ndarray, sr: int, rate: int | None) -> tuple[np.ndarray, int]:
    """Mono float32 resampled to ``rate`` (when given and different), peak-normalized, faded in and out."""
    y = np.asarray(y, dtype=np.float32)
    if rate is not None and sr != rate:
        import soxr

        y, sr = soxr.resample(y, sr, rate).astype(np.float32), rate
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1e-6:
        y = y * (0.89 / peak)  # about -1 dBFS
    n_fade = min(int(_FADE_S * sr), y.size // 2)
    if n_fade > 0:
        ramp = np.linspace(0.0, 1.0, n_fade, dtype=np.float32)
        y[:n_fade] *= ramp
        y[-n_fade:] *= ramp[::-1]
    return y, sr


def encode_ogg(y: np.ndarray, sr: int, max_sr: int = 22050) -> bytes:
    """Peak-normalized, faded, Ogg/Vorbis-compressed mono audio (a 4 s excerpt is ~20-40 kB)."""
    # smaller files above max_sr; nobody judges a cluster by content above 11 kHz
    y, sr = _for_listening(y, sr, max_sr if sr > max_sr else None)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="OGG", subtype="VORBIS")
    return fixed_ogg_serial(buf.getvalue())


#: Sample rate of Opus excerpts: one of the rates Opus takes (8, 12, 16, 24, 48 kHz); 24 kHz
#: keeps content up to 12 kHz, more than a low bitrate spends bits on.
OPUS_RATE = 24000
#: libsndfile sets an Opus stream's bitrate from its compression level c in [0, 1]:
#: ``6 kbps + (1 - c) * (256 - 6) kbps``; these are the ends of that range.
OPUS_MIN_KBPS, OPUS_MAX_KBPS = 6.0, 256.0


def opus_compression_level(kbps: float) -> float:
    """libsndfile's compression level that asks Opus for ``kbps`` kilobits per second."""
    if not OPUS_MIN_KBPS <= kbps <= OPUS_MAX_KBPS:
        raise ValueError(f"Opus bitrate {kbps} kbps is outside [{OPUS_MIN_KBPS:g}, {OPUS_MAX_KBPS:g}]")
    return 1.0 - (kbps - OPUS_MIN_KBPS) / (OPUS_MAX_KBPS - OPUS_MIN_KBPS)


def encode_opus(y: np.ndarray, sr: int, kbps: float) -> bytes:
    """Peak-normalized, faded, Ogg/Opus mono audio at about ``kbps`` (24 kbps: ~3 kB per second).

    Opus keeps music recognisable at bitrates where Vorbis cannot go (its floor is ~35 kbps
    here), which is what lets the explorer carry an excerpt of every song of a large collection.
    """
    y, sr = _for_listening(y, sr, OPUS_RATE)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="OGG", subtype="OPUS", compression_level=opus_compression_level(kbps))
    return fixed_ogg_serial(buf.getvalue())


#: libsndfile gives every Ogg stream a random serial number; the report must be byte-identical
#: run to run, so every page gets this one instead (the audio itself is encoded deterministically).
OGG_SERIAL = 0x6D75736C  # "musl"


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, no reflection, initial value 0)."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ b]
    return crc


def fixed_ogg_serial(data: bytes, serial: int = OGG_SERIAL) -> bytes:
    """The same Ogg stream with every page's serial number set to ``serial`` and checksums redone."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos : pos + 4] != b"OggS":
            raise ExcerptError(f"Ogg page expected at byte {pos} of the encoded excerpt")
        n_seg = out[pos + 26]
        size = 27 + n_seg + sum(out[pos + 27 : pos + 27 + n_seg])
        out[pos + 14 : pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22 : pos + 26] = b"\0\0\0\0"
        out[pos + 22 : pos + 26] = _ogg_crc(bytes(out[pos : pos + size])).to_bytes(4, "little")
        pos += size
    return bytes(out)


def centre_distances(vectors: pd.DataFrame, columns: list[str], clusters: pd.Series) -> pd.Series:
    """Each clustered song's distance to its cluster's centre, indexed by song_id (sorted).

    The centre is the mean of the cluster's song vectors (all its songs, whatever their split):
    a presentation aid for the Listen and Explore sections, not a score. ``vectors`` holds one
    row per song (``song_id`` plus ``columns``); ``clusters`` maps song_id to cluster.
    """
    v = vectors[vectors["song_id"].isin(clusters.index)].sort_values("song_id", kind="stable")
    x = v[columns].to_numpy(np.float64)
    c = v["song_id"].map(clusters).to_numpy()
    d = np.zeros(len(v))
    for k in np.unique(c):
        m = c == k
        d[m] = np.linalg.norm(x[m] - x[m].mean(axis=0), axis=1)
    return pd.Series(d, index=v["song_id"].astype(str).to_numpy(), name="distance")


def central_songs(
    vectors: pd.DataFrame, columns: list[str], clusters: pd.Series, n: int
) -> dict[int, list[tuple[str, float]]]:
    """The ``n`` songs nearest their cluster's centre, per cluster: ``{cluster: [(song_id, distance)]}``.

    Distances as :func:`centre_distances`; ties are broken by song order, so the choice is stable.
    """
    d = centre_distances(vectors, columns, clusters)
    out: dict[int, list[tuple[str, float]]] = {}
    for c, g in d.groupby(d.index.map(clusters), sort=True):
        order = np.argsort(g.to_numpy(), kind="stable")[:n]
        out[int(c)] = [(str(g.index[i]), float(g.iloc[i])) for i in order]
    return out


def data_uri(payload: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` for inline embedding."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
