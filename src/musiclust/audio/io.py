"""Decode audio files to mono float32 at a target rate, with reasons on failure."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from musiclust.fileio import InputFileError

#: Extensions soundfile (libsndfile >= 1.1) decodes directly.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aiff", ".aif")


#: the lowest sample rate a file may have (Hz). Recordings start at 8 kHz (telephone speech); a rate
#: far below that holds no music (under 2 kHz of bandwidth) and comes from a damaged or forged
#: header: a "20-second" wav at 1 Hz is 20 samples.
MIN_FILE_SAMPLE_RATE = 4000


#: libsndfile's frame count for a stream of unknown length (SF_COUNT_MAX, 2**63 - 1); no real file
#: comes near it (2**62 frames at 384 kHz is 380,000 years)
_UNKNOWN_FRAMES = 2**62


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
        info = sf.info(sf_name(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise AudioDecodeError(path, _reason_for(path), str(exc)) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioDecodeError(path, "empty", "no audio frames")
    if info.frames >= _UNKNOWN_FRAMES:
        raise AudioDecodeError(
            path,
            "unsupported format",
            "the header gives no length (an empty FLAC, or one written to a pipe), so it cannot be "
            "decoded to its end; re-encode it to a file, e.g. ffmpeg -i IN -c:a flac OUT.flac",
        )
    if info.samplerate < MIN_FILE_SAMPLE_RATE:
        raise AudioDecodeError(
            path,
            "unsupported format",
            f"sample rate {info.samplerate} Hz is below {MIN_FILE_SAMPLE_RATE} Hz: not a recording "
            "(a damaged header?)",
        )
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))


def load_audio(path: str | Path, sample_rate: int, max_duration_s: float | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 signal at ``sample_rate`` Hz.

    With ``max_duration_s`` a file longer than that is refused (reason ``too long``) from its
    header, and at most that much plus a second is ever decoded (a header may understate).
    Raises :class:`AudioDecodeError` with reason ``missing``, ``empty``,
    ``unsupported format``, ``corrupt`` or ``too long``; never returns a partial signal silently.
    """
    path = Path(path)
    info = probe(path)  # the header: missing, empty, not audio, an impossible sample rate
    frames = -1
    if max_duration_s is not None:
        if info.duration_s > max_duration_s:
            raise _too_long(path, info.duration_s, max_duration_s)
        frames = int(np.ceil((max_duration_s + 1.0) * info.sample_rate))
    try:
        data, sr = sf.read(sf_name(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioDecodeError(path, _reason_for(path), str(exc)) from None
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "empty", "no audio frames")
    if max_duration_s is not None and data.shape[0] > max_duration_s * sr:
        raise _too_long(path, data.shape[0] / sr, max_duration_s, "at least ")
    y = downmix(data)
    if not np.all(np.isfinite(y)):
        raise AudioDecodeError(path, "corrupt", "non-finite samples")
    if sr != sample_rate:
        import soxr  # librosa's own resampler backend

        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(y, dtype=np.float32)


def downmix(data: np.ndarray) -> np.ndarray:
    """Mono mix of ``(frames, channels)`` float32: the channel mean, as ``data.mean(axis=1)``.

    For stereo, ``(left + right) / 2`` gives the same float32 values as ``mean(axis=1)``
    (a two-element float32 sum halved) at a fraction of its cost: numpy's reduction over a
    length-2 axis runs a strided inner loop per frame, which cost a third of the segment
    stage's time on 44.1 kHz stereo MP3. Other channel counts use the mean itself.
    """
    if data.shape[1] == 1:
        return data[:, 0]
    if data.shape[1] == 2 and data.dtype == np.float32:
        y = np.add(data[:, 0], data[:, 1])
        y *= np.float32(0.5)  # exact: halving a float32 is the same as dividing it by 2
        return y
    return data.mean(axis=1)


def sf_name(path: Path) -> str | bytes:
    """``path`` as soundfile should be given it: its bytes on POSIX, so that a file name that is not
    valid UTF-8 (an old library copied from another system) opens instead of failing to encode."""
    return os.fsencode(path) if os.name == "posix" else str(path)


def _too_long(path: Path, seconds: float, limit: float, more: str = "") -> AudioDecodeError:
    return AudioDecodeError(path, "too long", f"{more}{seconds:.0f} s > download.max_duration_s={limit:g}")


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
