"""Song requests: one per manifest row (or per file of a folder), before any audio is touched.

A manifest is a CSV with the columns ``track_id, title, artist, language, genre,
source, lyrics_path`` (all but ``source`` optional) and optionally ``lyrics``
(inline text). ``source`` is a URL yt-dlp understands (``https://...``,
``ytsearch1:artist title``, ``file://...``) or a local file path relative to the
manifest. Every other column is kept as metadata.

Manifest text is data, never a command: a ``source`` that starts with ``--`` is
a (probably missing) file name, not an option, and nothing here builds a shell
command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.fileio import UserInputError

#: columns with a fixed meaning; everything else is metadata
KNOWN_COLUMNS = ("track_id", "title", "artist", "source", "lyrics_path", "lyrics")

# a URL scheme yt-dlp handles, or one of its search prefixes (ytsearch1:, ytsearch:, scsearch5:, ...)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SEARCH = re.compile(r"^[a-z]+search(?:\d+|all|date)?:", re.IGNORECASE)


class ManifestError(ValueError, UserInputError):
    """The manifest as a whole cannot be used (missing file, no ``source`` column, not CSV)."""


@dataclass
class TrackRequest:
    """One song to acquire, as the user asked for it.

    ``kind`` is ``url`` (yt-dlp: http(s), file://, search queries) or ``local``
    (a file on disk at ``local_path``). ``labels`` hold the label columns
    (evaluation only); ``metadata`` any other columns.
    """

    row: int
    source: str
    kind: str
    track_id: str | None = None
    title: str | None = None
    artist: str | None = None
    local_path: Path | None = None
    lyrics: str | None = None
    lyrics_path: Path | None = None
    labels: dict[str, str | None] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # human pointer for messages, e.g. "manifest.csv line 7"
    song_id: str = ""  # assigned by musiclust.data.acquire.assign_song_ids


def classify_source(source: str) -> str:
    """``url`` for anything yt-dlp should fetch, ``local`` for a file path."""
    s = source.strip()
    if _URL.match(s) or _SEARCH.match(s):
        return "url"
    return "local"


def _cell(value: Any) -> str | None:
    """A CSV cell as stripped text, or None when blank."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV as text columns (nothing coerced to numbers), UTF-8 with BOM tolerated."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ManifestError(f"{path}: not a regular file (a folder, pipe or device); give a CSV file")
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; set data.manifest in params.yaml to your CSV")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(f"{path}: not a readable CSV ({exc})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    return df


def read_manifest(path: str | Path, label_columns: tuple[str, ...] | list[str]) -> list[TrackRequest]:
    """Parse a manifest CSV into :class:`TrackRequest` rows (no file is checked yet).

    Local sources and ``lyrics_path`` are resolved relative to the manifest's
    folder. Rows keep their order; ``row`` is the 0-based data row index.
    """
    path = Path(path)
    df = read_table(path)
    if "source" not in df.columns:
        raise ManifestError(
            f"{path}: no 'source' column (have: {', '.join(df.columns)}); "
            "each row needs a URL, a ytsearch1: query or a file path"
        )
    base = path.resolve().parent
    extra = [c for c in df.columns if c not in KNOWN_COLUMNS and c not in label_columns]
    requests = []
    for i, rec in enumerate(df.to_dict(orient="records")):
        source = _cell(rec.get("source")) or ""
        kind = classify_source(source) if source else "none"
        local = None
        if kind == "local":
            local = Path(source).expanduser()
            local = local if local.is_absolute() else base / local
        lyr_path = _cell(rec.get("lyrics_path"))
        lyr = None
        if lyr_path:
            lyr = Path(lyr_path).expanduser()
            lyr = lyr if lyr.is_absolute() else base / lyr
        requests.append(
            TrackRequest(
                row=i,
                source=source,
                kind=kind,
                track_id=_cell(rec.get("track_id")),
                title=_cell(rec.get("title")),
                artist=_cell(rec.get("artist")),
                local_path=local,
                lyrics=rec.get("lyrics") if _cell(rec.get("lyrics")) else None,
                lyrics_path=lyr,
                labels={c: _cell(rec.get(c)) for c in label_columns},
                metadata={c: _cell(rec.get(c)) for c in extra},
                where=f"{path.name} line {i + 2}",
            )
        )
    return requests
