"""Check that an audio file really decodes, end to end, before a song is accepted.

A header can look fine while the body is garbage or cut short (an interrupted
download, a truncated MP3). Every new file is therefore decoded block by block
(little memory even for long songs) and its decoded length compared with what
the header promises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from musiclust.audio.io import AudioDecodeError, probe, sf_name

#: peak amplitude below which a whole song counts as silent (about -80 dBFS)
SILENT_PEAK = 1e-4
_BLOCK = 1 << 16


@dataclass(frozen=True)
class VerifiedAudio:
    """What a full decode found."""

    duration_s: float
    sample_rate: int
    channels: int
    peak: float

    @property
    def silent(self) -> bool:
        return self.peak < SILENT_PEAK


def sniff_format(path: str | Path) -> str | None:
    """Audio container named by the file's first bytes, or None when it is not audio we know."""
    with Path(path).open("rb") as fh:
        head = fh.read(12)
    if len(head) < 4:
        return None
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b".snd":
        return "au"
    if head[:4] == b"caff":
        return "caf"
    return None


def verify_audio(path: str | Path, max_duration_s: float | None = None) -> VerifiedAudio:
    """Decode all of ``path``; raise :class:`AudioDecodeError` unless it is whole, finite audio.

    Reasons: ``missing file``, ``empty`` (zero bytes or no frames),
    ``unsupported format`` (the content is not audio soundfile knows, e.g. a
    text file renamed ``.wav``), ``corrupt`` (the decoder fails, samples are not
    finite, or fewer frames decode than the header promises: a truncated file),
    ``too long`` (the header promises more than ``max_duration_s``; checked
    before decoding, so a two-hour mix is not decoded only to be refused).
    """
    path = Path(path)
    try:
        info = probe(path)
    except AudioDecodeError as exc:
        if exc.reason in ("corrupt", "unsupported format") and path.is_file() and sniff_format(path) is None:
            with path.open("rb") as fh:
                head = fh.read(16)
            raise AudioDecodeError(
                path, "unsupported format", f"content is not audio soundfile can read (starts with {head!r})"
            ) from None
        if "does not exist or is not a regular file" in exc.detail:
            # libsndfile's wording when mpg123 finds no valid frame; the file itself is there
            raise AudioDecodeError(
                path, exc.reason, "no decodable audio frames (damaged header or data)"
            ) from None
        raise
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise AudioDecodeError(
            path, "too long", f"{info.duration_s:.0f} s > download.max_duration_s={max_duration_s:g}"
        )
    frames, peak = 0, 0.0
    try:
        with sf.SoundFile(sf_name(path)) as f:
            # read() until it returns nothing: blocks() trusts the header's frame count, which is
            # exactly what a truncated MP3 gets wrong
            while (block := f.read(_BLOCK, dtype="float32", always_2d=True)).shape[0]:
                if not np.isfinite(block).all():
                    raise AudioDecodeError(
                        path, "corrupt", f"non-finite samples after {frames / info.sample_rate:.1f} s"
                    )
                frames += block.shape[0]
                if block.size:
                    peak = max(peak, float(np.abs(block).max()))
    except AudioDecodeError:
        raise
    except Exception as exc:  # libsndfile errors mid-stream
        raise AudioDecodeError(path, "corrupt", f"decoding stopped after {frames} frames: {exc}") from None
    if frames == 0:
        raise AudioDecodeError(path, "empty", "no audio frames decode")
    decoded = frames / info.sample_rate
    # MP3 headers count frames loosely (encoder delay, padding): allow 2 % or 1 s
    if abs(decoded - info.duration_s) > max(1.0, 0.02 * info.duration_s):
        raise AudioDecodeError(
            path,
            "corrupt",
            f"truncated: the header says {info.duration_s:.1f} s but only {decoded:.1f} s decode",
        )
    return VerifiedAudio(decoded, info.sample_rate, info.channels, peak)
