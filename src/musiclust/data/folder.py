"""Song requests from a folder of audio files (GTZAN-style genre folders, a music library).

Layouts (``data.folder_layout``):

- ``genre``: ``<root>/<genre>/.../<file>``: the top-level folder names the genre;
- ``language/genre``: ``<root>/<language>/<genre>/.../<file>``.

Deeper folders (artist, album) are allowed and carry no label; a file above the
labelled level has unknown (null) labels.

An optional ``<root>/labels.csv`` with a ``path`` column (relative to the root)
overrides or adds labels per file (any label column, plus ``track_id``,
``title``, ``artist``, ``lyrics_path``, ``lyrics``). Files it lists that do not
exist become rows that are reported as ``missing file``; a second row for one
path (``a.wav``, ``./a.wav``, or the NFC and NFD spellings of a name) becomes a
row reported as ``duplicate id``, and the first row holds.

Every entry the scan sees is accounted for: an entry with an audio name becomes
a row even when it is a broken link, a symlink loop or a named pipe (the
download stage then skips it with that reason, never reading it); other
entries, including symlinked folders (not followed), are listed as ignored.
Hidden entries (``.DS_Store``, ``._x``) are skipped.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections import Counter
from pathlib import Path

from musiclust.audio.io import AUDIO_EXTENSIONS
from musiclust.data.manifest import (
    KNOWN_COLUMNS,
    ManifestError,
    TrackRequest,
    _cell,
    read_rows,
    warn_missing_labels,
)
from musiclust.fileio import InputFileError, check_input_file, resolve_roots

log = logging.getLogger(__name__)

#: audio containers people have in libraries that soundfile cannot decode: they become rows
#: reported as "unsupported format" (so nothing is silently dropped), not ignored files
OTHER_AUDIO_EXTENSIONS = (".m4a", ".aac", ".wma", ".mp4", ".webm", ".mka", ".ape", ".wv", ".mpc", ".amr")
LABELS_FILE = "labels.csv"


def _is_audio_name(p: Path) -> bool:
    return p.suffix.lower() in AUDIO_EXTENSIONS + OTHER_AUDIO_EXTENSIONS


def scan_folder(
    root: str | Path, layout: str, label_columns: tuple[str, ...] | list[str]
) -> tuple[list[TrackRequest], list[str]]:
    """Requests for every audio file under ``root`` plus the non-audio files that were ignored.

    Returns ``(requests, ignored)``; ``ignored`` lists relative paths of files
    that are not audio by name (cover art, text, ``labels.csv``) so the report
    can account for them.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "folder not found"
        raise ManifestError(f"{root}: {what}; set data.folder in params.yaml to your music folder")
    depth = {"genre": 1, "language/genre": 2}[layout]

    files, ignored = [], []
    for rel, is_followed_dir in _walk(root):
        if is_followed_dir or rel.as_posix() == LABELS_FILE:
            continue
        (files if _is_audio_name(rel) else ignored).append(rel)

    table, repeated, columns = _labels_table(root)
    layout_labels = ("genre",) if depth == 1 else ("language", "genre")
    warn_missing_labels(f"{root} (layout {layout}, {LABELS_FILE})", (*layout_labels, *columns), label_columns)
    stems = Counter(f.stem.lower() for f in files)
    requests: list[TrackRequest] = []
    for rel in files:
        # the file stem is a readable id; two albums with "01 Intro.mp3" fall back to the path
        track_id = rel.stem if stems[rel.stem.lower()] == 1 else rel.with_suffix("").as_posix()
        req = _file_request(root, rel, len(requests), track_id, depth, label_columns)
        if _key(rel.as_posix()) in table:
            _apply_labels_row(req, table[_key(rel.as_posix())][0], root, label_columns)
        requests.append(req)
    listed = {_key(rel.as_posix()) for rel in files}
    for key, (rec, _line) in table.items():  # listed in labels.csv but not on disk
        if key in listed:
            continue
        req = TrackRequest(
            row=len(requests),
            source=key,
            kind="local",
            track_id=Path(key).stem,
            title=Path(key).stem,
            local_path=root / key,
            labels={c: None for c in label_columns},
            where=f"{root.name}/{LABELS_FILE} path {key}",
        )
        _apply_labels_row(req, rec, root, label_columns)
        requests.append(req)
    for key, line, first in repeated:  # a second row for one file: reported, never silently dropped
        requests.append(
            TrackRequest(
                row=len(requests),
                source=key,
                kind="local",
                track_id=Path(key).stem,
                local_path=root / key,
                labels={c: None for c in label_columns},
                where=f"{root.name}/{LABELS_FILE} line {line}",
                duplicate_of=f"{LABELS_FILE} line {first}",
            )
        )
    if ignored:
        log.info("%s: ignoring %d non-audio file(s), e.g. %s", root, len(ignored), ignored[0].as_posix())
    return requests, [_text(i.as_posix()) for i in ignored]


def _file_request(
    root: Path, rel: Path, row: int, track_id: str, depth: int, label_columns: tuple[str, ...] | list[str]
) -> TrackRequest:
    """The request for the audio file ``root/rel``, labelled by its top ``depth`` folders."""
    labels = {c: None for c in label_columns}
    parents = rel.parts[:-1]
    # top-level folders name the labels; deeper ones (artist/album) are just organisation
    if len(parents) >= depth:
        named = dict(zip(("genre",) if depth == 1 else ("language", "genre"), parents))
        labels.update({k: _text(v) for k, v in named.items() if k in labels})
    return TrackRequest(
        row=row,
        source=_text(rel.as_posix()),
        kind="local",
        track_id=_text(track_id),
        title=_text(rel.stem),
        local_path=root / rel,
        labels=labels,
        where=_text(f"{root.name}/{rel.as_posix()}"),
    )


def _text(name: str) -> str:
    """A file name as text for tables and reports: bytes that are not UTF-8 (Python keeps them as
    lone surrogates, which no UTF-8 file can hold) become U+FFFD; the file itself is still read."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _walk(root: Path) -> list[tuple[Path, bool]]:
    """Every non-hidden entry under ``root`` (relative, sorted) and whether it is a folder descended into.

    Symbolic links are never followed into folders (a loop cannot trap the scan and a
    link cannot pull in a tree elsewhere); a symlinked folder is reported as an entry.
    """
    out: list[tuple[Path, bool]] = []

    def unreadable(exc: OSError) -> None:
        # a folder that cannot be listed is reported (as ignored, with a warning), never skipped silently
        rel = Path(exc.filename).relative_to(root) if exc.filename else Path(".")
        log.warning(
            "%s: cannot list folder %s (%s): its files are not in the collection", root, rel, exc.strerror
        )
        out.append((rel, False))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            out.append(((here / d).relative_to(root), not (here / d).is_symlink()))
        for f in filenames:
            if not f.startswith("."):  # hidden files (.DS_Store, ._AppleDouble)
                out.append(((here / f).relative_to(root), False))
    return sorted(out)


def _key(rel: str) -> str:
    """How a relative path is matched between the disk and labels.csv: ``./a//b`` is ``a/b``, and
    the NFC and NFD spellings of a name (macOS writes NFD) are one."""
    return unicodedata.normalize("NFC", Path(rel).as_posix())


def _labels_table(root: Path) -> tuple[dict[str, tuple[dict, int]], list[tuple[str, int, int]], list[str]]:
    """``labels.csv`` as ``({path: (row, line)}, repeated, columns)``; ``repeated`` lists each later row
    for a path already listed, as ``(path, its line, the first row's line)``: the first row holds."""
    path = root / LABELS_FILE
    if not path.exists() and not path.is_symlink():
        return {}, [], []
    try:
        check_input_file(path, resolve_roots([root]))
    except InputFileError as exc:
        raise ManifestError(f"{path}: {exc.reason} ({exc.detail})") from None
    table = read_rows(path)
    if "path" not in table.columns:
        raise ManifestError(f"{path}: needs a 'path' column with file paths relative to {root}")
    out: dict[str, tuple[dict, int]] = {}
    repeated: list[tuple[str, int, int]] = []
    for rec, line in zip(table.rows, table.lines):
        key = _cell(rec.get("path"))
        if not key:
            continue
        key = _key(key)
        if key in out:
            repeated.append((key, line, out[key][1]))
        else:
            out[key] = (rec, line)
    return out, repeated, table.columns


def _apply_labels_row(req: TrackRequest, rec: dict, root: Path, label_columns) -> None:
    """Non-blank cells of a labels.csv row win over what the layout implied."""
    for c in label_columns:
        if _cell(rec.get(c)) is not None:
            req.labels[c] = _cell(rec.get(c))
    for attr in ("track_id", "title", "artist"):
        if _cell(rec.get(attr)) is not None:
            setattr(req, attr, _cell(rec.get(attr)))
    if _cell(rec.get("lyrics")):
        req.lyrics = rec["lyrics"]
    if _cell(rec.get("lyrics_path")):
        req.lyrics_path = root / _cell(rec["lyrics_path"])
    for c, v in rec.items():
        if c not in KNOWN_COLUMNS and c != "path" and c not in label_columns:
            req.metadata[c] = _cell(v)
