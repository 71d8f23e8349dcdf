"""Synthetic audio for the benchmarks: music-like clips and whole songs with lyrics.

Everything here depends only on ``(seed, index)``, so two runs of a benchmark measure the
same input. Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050


def synth_clip(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A few seconds of music-like audio: a 3-note chord with harmonics, beats and noise."""
    t = np.arange(n) / sr
    root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
    y = np.zeros(n)
    for semis in (0, rng.choice([3, 4]), 7):
        f0 = root * 2 ** (semis / 12)
        for h in range(1, 5):
            if f0 * h < sr / 2:
                y += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h
    bpm = rng.uniform(70, 170)
    y *= 0.3 + 0.7 * np.exp(-8 * ((t * bpm / 60) % 1.0))
    y += 0.05 * rng.standard_normal(n)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def _write_range(job: tuple[str, int, int, float, int]) -> list[str]:
    import soundfile as sf

    directory, start, stop, seconds, seed = job
    n = int(round(seconds * SAMPLE_RATE))
    out = []
    for i in range(start, stop):
        p = Path(directory) / f"clip{i:06d}.wav"
        sf.write(p, synth_clip(np.random.default_rng([seed, i]), n), SAMPLE_RATE, subtype="PCM_16")
        out.append(str(p))
    return out


def write_clips(directory: Path, n_clips: int, seconds: float, seed: int, workers: int = 2) -> list[Path]:
    """Write ``n_clips`` synthetic clips as 16-bit WAV at 22,050 Hz; returns their paths.

    Clip ``i`` depends only on ``(seed, i)``. The clips are made in child processes, which
    also keeps the generator's memory out of the process whose peak memory is measured.
    """
    import multiprocessing as mp

    step = 64
    jobs = [(str(directory), a, min(a + step, n_clips), seconds, seed) for a in range(0, n_clips, step)]
    ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(max(1, workers)) as pool:
        return [Path(p) for chunk in pool.imap(_write_range, jobs) for p in chunk]


#: Labels of the synthetic songs (the demo corpus's lyrics generator knows these languages).
SONG_LANGUAGES = ("en", "bn")
SONG_GENRES = ("pop", "rock", "folk", "electronic")
SONG_FORMATS = ("mp3", "flac")


def synth_song(seed: int, index: int, seconds: float, sample_rate: int) -> np.ndarray:
    """A stereo song ``(n, 2)`` float32: a new chord every 3 s, the channels slightly apart."""
    rng = np.random.default_rng([seed, index])
    n = int(round(seconds * sample_rate))
    step = 3 * sample_rate
    mono = np.concatenate([synth_clip(rng, min(step, n - a), sample_rate) for a in range(0, n, step)])
    right = 0.8 * mono + 0.2 * np.roll(mono, sample_rate // 100)
    return np.stack([mono, right], axis=1).astype(np.float32)


def _write_song(job: tuple[str, int, float, int, str, int]) -> str:
    import soundfile as sf

    directory, i, seconds, seed, fmt, sample_rate = job
    path = Path(directory) / f"song{i:06d}.{fmt}"
    y = synth_song(seed, i, seconds, sample_rate)
    if fmt == "mp3":
        sf.write(path, y, sample_rate, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(path, y, sample_rate, subtype="PCM_16")
    return path.name


def write_songs(
    directory: Path,
    n_songs: int,
    seconds: float = 30.0,
    seed: int = 0,
    fmt: str = "mp3",
    sample_rate: int = 44100,
    distinct: int | None = None,
    workers: int = 2,
) -> Path:
    """Write ``n_songs`` stereo songs with lyrics and a manifest CSV; returns the manifest path.

    ``distinct`` songs are rendered (all of them when ``None``); song ``i`` is a hard link
    to rendered song ``i % distinct`` under its own name, with its own lyrics and labels.
    MP3 encoding costs seconds per song, so a small ``distinct`` keeps the preparation of a
    large benchmark short while every song still has to be decoded on its own.
    """
    import csv
    import multiprocessing as mp

    from musiclust.synth.lyrics import make_lyrics

    if fmt not in SONG_FORMATS:
        raise ValueError(f"song format {fmt!r} is not one of {', '.join(SONG_FORMATS)}")
    if n_songs < 1:
        raise ValueError(f"need at least one song, got {n_songs}")
    directory = Path(directory)
    audio = directory / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    k = n_songs if distinct is None else max(1, min(distinct, n_songs))
    jobs = [(str(audio), i, seconds, seed, fmt, sample_rate) for i in range(k)]
    ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(max(1, min(workers, k))) as pool:
        rendered = pool.map(_write_song, jobs, chunksize=1)
    rows = []
    for i in range(n_songs):
        name = rendered[i % k]
        if i >= k:
            name = f"song{i:06d}.{fmt}"
            os.link(audio / rendered[i % k], audio / name)
        rng = np.random.default_rng([seed, i, 1])
        language = SONG_LANGUAGES[i % len(SONG_LANGUAGES)]
        genre = SONG_GENRES[(i // len(SONG_LANGUAGES)) % len(SONG_GENRES)]
        rows.append(
            {
                "track_id": f"song{i:06d}",
                "title": f"Song {i}",
                "artist": f"Artist {i % 50}",
                "language": language,
                "genre": genre,
                "source": f"audio/{name}",
                "lyrics": make_lyrics(rng, language, genre).text(),
            }
        )
    manifest = directory / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest
