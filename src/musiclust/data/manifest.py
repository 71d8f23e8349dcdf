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

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.fileio import UserInputError

#: columns with a fixed meaning; everything else is metadata
KNOWN_COLUMNS = ("track_id", "title", "artist", "source", "lyrics_path", "lyrics")

log = logging.getLogger(__name__)

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
    #: set when this row repeats an earlier one (a second labels.csv row for one file): that row's pointer
    duplicate_of: str | None = None
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


#: the longest cell accepted (characters): inline lyrics beyond ``data.max_lyrics_bytes`` are cut later
MAX_CELL_CHARS = 1 << 24
#: header delimiters tried in this order: comma, then what spreadsheet exports use instead
DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class CsvRows:
    """A CSV read as text: lower-cased ``columns``, one ``{column: text}`` per data row, and the
    file line each row starts on (quoted cells may span lines)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    delimiter: str = ","


def read_rows(path: str | Path) -> CsvRows:
    """Read a CSV as text cells (nothing coerced to numbers) with the line each row starts on.

    UTF-8 (a byte-order mark is fine) or UTF-16 with a byte-order mark (what spreadsheets save
    as "Unicode text"). The delimiter is the first of comma, semicolon, tab found in the header
    line. Column names are compared without case and surrounding spaces, so a header naming one
    column twice (``source,Source``) is refused rather than letting one silently win. Raises
    :class:`ManifestError` naming the file and line.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ManifestError(f"{path}: not a regular file (a folder, pipe or device); give a CSV file")
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; set data.manifest in params.yaml to your CSV")
    text = _decode(path, path.read_bytes())
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ManifestError(
            f"{path} line {line}: contains a NUL character, so it is not a text CSV "
            "(UTF-16 without a byte-order mark, or a binary file?); re-save it as UTF-8 CSV"
        )
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = next((d for d in DELIMITERS if d in first), ",")
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, MAX_CELL_CHARS))
    try:
        return _parse(path, text, delimiter)
    finally:
        csv.field_size_limit(limit)


def _decode(path: Path, raw: bytes) -> str:
    """The file's text: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 (BOM optional)."""
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            f"{path} line {line}: not {encoding.upper().replace('-SIG', '')} ({exc.reason} at byte {exc.start}); "
            "re-save it as UTF-8"
        ) from None


def _parse(path: Path, text: str, delimiter: str) -> CsvRows:
    # strict: a quote that is never closed is an error, not a cell that swallows the rest of the file
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True, strict=True
    )
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    start = 1
    try:
        for cells in reader:
            here, start = start, reader.line_num + 1
            if not cells:  # a blank line
                continue
            if header is None:
                header = _header(path, here, cells)
                continue
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                raise ManifestError(
                    f"{path} line {here}: {len(cells)} cells but the header names {len(header)} columns; "
                    f"quote cells that contain {'a comma' if delimiter == ',' else repr(delimiter)}"
                )
            cells = cells[: len(header)] + [""] * (len(header) - len(cells))
            rows.append(dict(zip(header, cells)))
            lines.append(here)
    except csv.Error as exc:  # the row that began on line ``start`` could not be read
        raise ManifestError(
            f"{path} line {start}: not a readable CSV ({exc}); a quoted cell must end with a quote "
            "followed by the delimiter or the end of the line"
        ) from None
    if header is None:
        raise ManifestError(f"{path}: empty; the first line must name the columns (source, ...)")
    return CsvRows(path, header, rows, lines, delimiter)


def _header(path: Path, line: int, cells: list[str]) -> list[str]:
    """Column names in lower case without surrounding spaces; a name given twice is refused."""
    names = [c.strip().lower() or f"unnamed: {i}" for i, c in enumerate(cells)]
    seen: dict[str, str] = {}
    for name, cell in zip(names, cells):
        if name in seen:
            raise ManifestError(
                f"{path} line {line}: column {name!r} is named more than once ({seen[name]!r} and {cell!r}; "
                "names are compared without case and surrounding spaces); rename or remove one"
            )
        seen[name] = cell
    return names


def read_table(path: str | Path) -> pd.DataFrame:
    """:func:`read_rows` as a frame of text columns (no line numbers)."""
    table = read_rows(path)
    return pd.DataFrame(table.rows, columns=table.columns, dtype=object)


def warn_missing_labels(where: str, columns: list[str] | tuple[str, ...], label_columns) -> None:
    """Log a label column of ``data.label_columns`` that the input does not have (every song: unknown)."""
    for c in label_columns:
        if c not in columns:
            log.warning(
                "%s: no column %r (named in data.label_columns): every song's %s is unknown (null)",
                where,
                c,
                c,
            )


def read_manifest(path: str | Path, label_columns: tuple[str, ...] | list[str]) -> list[TrackRequest]:
    """Parse a manifest CSV into :class:`TrackRequest` rows (no file is checked yet).

    Local sources and ``lyrics_path`` are resolved relative to the manifest's
    folder. Rows keep their order; ``row`` is the 0-based data row index.
    """
    path = Path(path)
    table = read_rows(path)
    if "source" not in table.columns:
        raise ManifestError(
            f"{path}: no 'source' column (have: {', '.join(table.columns)}); "
            "each row needs a URL, a ytsearch1: query or a file path"
        )
    warn_missing_labels(str(path), table.columns, label_columns)
    base = path.resolve().parent
    extra = [c for c in table.columns if c not in KNOWN_COLUMNS and c not in label_columns]
    requests = []
    for i, (rec, line) in enumerate(zip(table.rows, table.lines)):
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
                where=f"{path.name} line {line}",
            )
        )
    return requests
