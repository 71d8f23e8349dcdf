"""Lyrics text: read files tolerantly, strip section markers, report what failed.

A song's lyrics come from a ``lyrics_path`` file or an inline ``lyrics`` cell.
Files are UTF-8 (a byte-order mark is tolerated; UTF-16 with a BOM is read as
well). Anything else is *reported* as ``unreadable lyrics`` and the song is kept
without lyrics: guessing a legacy code page would silently turn Bangla or
accented text into garbage, which is worse than an honest gap.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from musiclust.fileio import MISSING, InputFileError, check_input_file, read_bounded

#: lyrics outcomes (a song's audio status is separate: lyrics never skip a song)
LYRICS_OK = "ok"
LYRICS_NONE = "none"
LYRICS_UNREADABLE = "unreadable lyrics"
LYRICS_MISSING = "missing lyrics file"
LYRICS_EMPTY = "empty lyrics"
#: default of ``data.max_lyrics_bytes``: the longest real song texts are ~30 kB
MAX_LYRICS_BYTES = 200_000

# Bracketed section markers anywhere in a line: [Chorus], [Verse 2: Artist], [x2].
_BRACKET = re.compile(r"\[[^\]\n]{0,60}\]")
# Whole lines that only name a section: "Chorus", "(Chorus)", "Verse 2:", "{Bridge}", "Outro x2".
_SECTION_LINE = re.compile(
    r"^\s*[\(\{]?\s*(?:verse|chorus|pre[- ]?chorus|post[- ]?chorus|bridge|intro|outro|hook|refrain|"
    r"interlude|instrumental|coda|break|repeat)(?:\s*\d+)?\s*[\)\}]?\s*:?\s*(?:x\s*\d+)?\s*$",
    re.IGNORECASE,
)
_BLANK_RUN = re.compile(r"\n{3,}")


class LyricsError(InputFileError):
    """Lyrics could not be read; ``reason`` is one of the ``LYRICS_*`` tags."""


@dataclass(frozen=True)
class Lyrics:
    """Cleaned lyrics of one song and how they were obtained."""

    text: str | None
    status: str  # one of the LYRICS_* tags
    detail: str = ""

    @property
    def has_lyrics(self) -> bool:
        return self.text is not None


def decode_text(data: bytes) -> str:
    """Decode lyrics bytes: UTF-8 (BOM tolerated) or UTF-16 with a BOM.

    Raises :class:`UnicodeDecodeError` for anything else (for example a
    Windows-1252 or ISO-8859 file), so the caller can report it.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def clean_lyrics(text: str) -> str:
    """Normalize lyrics for embedding: NFC, section markers and blank runs removed.

    ``[Chorus]``-style markers and lines that only name a section ("Verse 2:",
    "(Chorus)") carry no words of the song; they would make every song look
    alike to a text encoder.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _BRACKET.sub("", text)
    lines = [ln.rstrip() for ln in text.split("\n")]
    lines = [ln for ln in lines if not _SECTION_LINE.match(ln)]
    text = "\n".join(lines)
    return _BLANK_RUN.sub("\n\n", text).strip()


def _decode_cut(data: bytes) -> str:
    """Decode bytes cut at an arbitrary offset: drop a character split by the cut."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data[: len(data) - len(data) % 2].decode("utf-16", errors="ignore")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8-sig")
        raise


def read_lyrics_file(path: str | Path) -> str:
    """Read and clean a lyrics file (at most :data:`MAX_LYRICS_BYTES`); raises :class:`LyricsError`."""
    return read_lyrics_bounded(path)[0]


def read_lyrics_bounded(
    path: str | Path, roots: tuple[Path, ...] | None = None, max_bytes: int = MAX_LYRICS_BYTES
) -> tuple[str, bool]:
    """Read and clean a lyrics file; returns ``(text, truncated)``.

    With ``roots`` the file must be a regular file inside one of them (see
    :func:`musiclust.fileio.check_input_file`); at most ``max_bytes`` are read
    and ``truncated`` says the file was longer. Raises :class:`LyricsError`
    naming the problem.
    """
    path = Path(path)
    try:
        real = check_input_file(path, roots) if roots is not None else path
        data, truncated = read_bounded(real, max_bytes)
    except InputFileError as exc:
        reason = LYRICS_MISSING if exc.reason == MISSING else exc.reason
        raise LyricsError(path, reason, exc.detail) from None
    except FileNotFoundError:
        raise LyricsError(path, LYRICS_MISSING, "no such file") from None
    except OSError as exc:
        raise LyricsError(path, LYRICS_UNREADABLE, exc.strerror or str(exc)) from None
    try:
        text = _decode_cut(data) if truncated else decode_text(data)
    except UnicodeDecodeError as exc:
        raise LyricsError(
            path,
            LYRICS_UNREADABLE,
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); re-save the file as UTF-8",
        ) from None
    return clean_lyrics(text), truncated


def resolve_lyrics(
    inline: str | None,
    path: str | Path | None,
    roots: tuple[Path, ...] | None = None,
    max_bytes: int = MAX_LYRICS_BYTES,
) -> Lyrics:
    """Lyrics of one song from an inline cell or a file (inline text wins when both are given).

    Never raises for bad lyrics: the outcome is in :attr:`Lyrics.status` so the
    song is kept and the problem reported. A file outside ``roots`` or not a
    regular file is never read; text longer than ``max_bytes`` is cut there and
    :attr:`Lyrics.detail` says so (status stays ``ok``).
    """
    cut = f"truncated to the first {max_bytes} bytes (data.max_lyrics_bytes)"
    if inline is not None and inline.strip():
        raw = inline.encode("utf-8")
        truncated = len(raw) > max_bytes
        text = clean_lyrics(raw[:max_bytes].decode("utf-8", errors="ignore") if truncated else inline)
        if not text:
            return Lyrics(None, LYRICS_EMPTY, "inline lyrics are only markers")
        return Lyrics(text, LYRICS_OK, f"inline lyrics {cut}" if truncated else "")
    if path is None:
        return Lyrics(None, LYRICS_NONE)
    try:
        text, truncated = read_lyrics_bounded(path, roots, max_bytes)
    except LyricsError as exc:
        return Lyrics(None, exc.reason, f"{exc.path}: {exc.detail}")
    if not text:
        return Lyrics(None, LYRICS_EMPTY, f"{path}: no words after removing section markers")
    return Lyrics(text, LYRICS_OK, f"{path}: {cut}" if truncated else "")
