"""Decode audio files to mono float32 at a target rate, with reasons on failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from musiclust.fileio import InputFileError

#: Extensions soundfile (libsndfile >= 1.1) decodes directly.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aiff", ".aif")


class AudioDecodeError(InputFileError):
    """A file could not be decoded; ``reason`` is a short machine-readable tag."""


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int


def probe(path: str | Path) -> AudioInfo:
    """Header information without decoding; raises :class:`AudioDecodeError`."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise AudioDecodeError(path, _reason_for(path), str(exc)) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioDecodeError(path, "empty", "no audio frames")
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to a mono float32 signal at ``sample_rate`` Hz.

    Raises :class:`AudioDecodeError` with reason ``missing``, ``empty``,
    ``unsupported format`` or ``corrupt``; never returns a partial signal silently.
    """
    path = Path(path)
    _check_file(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioDecodeError(path, _reason_for(path), str(exc)) from None
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "empty", "no audio frames")
    y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(y)):
        raise AudioDecodeError(path, "corrupt", "non-finite samples")
    if sr != sample_rate:
        import soxr  # librosa's own resampler backend

        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(y, dtype=np.float32)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(path, "missing file")
    if not path.is_file():
        raise AudioDecodeError(path, "not a file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty", "zero-byte file")


def _reason_for(path: Path) -> str:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        return "unsupported format"
    return "corrupt"
