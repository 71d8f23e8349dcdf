"""Acquire a song collection into one folder: audio files, ``songs.parquet``, ``report.json``.

Sources (``data.source``): the synthetic ``demo`` corpus, a ``manifest`` CSV
(URLs, yt-dlp searches, local files) or a ``folder`` of audio. Every input row
ends ``ok`` or ``skipped`` with a reason; nothing is silently dropped.

Finished files live in a download cache outside the output folder
(``download.cache_dir``), each under a name derived from its source with a small
state record beside it; a re-run reuses a file whose record matches its row and
whose size is unchanged, and re-fetches otherwise. ``dvc exp run`` resets the
output folder to its last recorded version before running, so keeping finished
downloads anywhere inside it would lose an interrupted run's work. Files are
written under a temporary name and renamed only once verified, so an
interrupted run never leaves a half file that looks finished.

Each run builds the collection in a fresh folder beside the output (hard links
into the cache, so no extra disk) and swaps it in only when the success
threshold is met: a failing run leaves the previous collection untouched, and
``songs.parquet`` and the folder always describe the same collection.

Files named by the input (audio, lyrics) are read only when they are regular
files inside the input's own folder (the manifest's folder, the music folder)
or a folder listed in ``data.allowed_roots``. Nothing is written into a music
folder: one that holds the output or the cache is refused before anything runs.

Runs may share one cache at once (a shared lock; see :func:`_using_cache`); one
run at a time builds a given output folder. A full disk stops the run with one
line (:class:`musiclust.fileio.DiskFullError`): it is never one song's fault.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import unicodedata
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from musiclust.audio.io import AUDIO_EXTENSIONS, AudioDecodeError, probe
from musiclust.contracts import raw as contract
from musiclust.data.folder import scan_folder
from musiclust.data.lyrics import resolve_lyrics
from musiclust.data.manifest import TrackRequest, read_manifest
from musiclust.data.report import RowResult, build_report, summary_line
from musiclust.data.verify import VerifiedAudio, verify_audio
from musiclust.data.ytdl import DownloadFailure, NetworkBreaker, YtdlSettings, fetch
from musiclust.fileio import (
    DiskFullError,
    InputFileError,
    UserInputError,
    check_input_file,
    disk_full_error,
    file_mode,
    is_disk_full,
    link_or_copy,
    read_json,
    resolve_roots,
    safe_id,
    write_json,
)
from musiclust.params import AudioParams, DataParams, DownloadParams

log = logging.getLogger(__name__)

PARTIAL_PREFIX = ".partial-"
#: lock file in the download cache: every run using the cache holds it shared (see _using_cache)
CACHE_LOCK = ".lock"
#: label cells that mean "unknown" (compared without case and surrounding space): never a class
LABEL_PLACEHOLDERS = frozenset({"nan", "n/a", "na", "none", "null"})
_DISK_HINT = " (finished songs are kept in download.cache_dir)"
_MAX_LOGGED = 20  # skipped rows named one by one in the log; the report has all


class AcquisitionError(RuntimeError, UserInputError):
    """Too few songs were acquired (below ``download.min_success_fraction``)."""


@dataclass
class AcquireResult:
    """What :func:`acquire` wrote."""

    songs: pd.DataFrame
    report: dict
    songs_path: Path
    report_path: Path


@dataclass
class _Context:
    out_dir: Path  # the collection being built (swapped into place on success)
    cache_dir: Path  # finished files and their state records, by source
    partial_dir: Path  # this run's temporary downloads
    download: DownloadParams
    settings: YtdlSettings
    breaker: NetworkBreaker
    roots: tuple[Path, ...]  # folders input files may come from
    max_lyrics_bytes: int

    @property
    def audio_dir(self) -> Path:
        return self.out_dir / contract.AUDIO_DIR


def assign_song_ids(requests: list[TrackRequest]) -> dict[int, str]:
    """Give each request a ``song_id``; returns ``{row: detail}`` for rows that repeat an earlier id.

    The id comes from ``track_id``, else ``artist - title``, else the file name
    (local) or the source text, and is passed through :func:`safe_id`. Ids are
    compared case-insensitively because ``A.flac`` and ``a.flac`` are one file
    on macOS and Windows.
    """
    seen: dict[str, TrackRequest] = {}
    dupes: dict[int, str] = {}
    for req in requests:
        if req.duplicate_of:  # repeats an earlier row: reported as such, takes no id from others
            req.song_id = safe_id(req.track_id or req.source or f"row{req.row}")
            dupes[req.row] = f"{req.where} repeats {req.source!r}; {req.duplicate_of} is used"
            continue
        if req.track_id:
            raw = req.track_id
        elif req.title:
            raw = f"{req.artist} - {req.title}" if req.artist else req.title
        elif req.local_path is not None:
            raw = req.local_path.stem
        else:
            raw = req.source or f"row{req.row}"
        req.song_id = safe_id(raw)
        key = req.song_id.casefold()
        if key in seen:
            first = seen[key]
            dupes[req.row] = (
                f"song id {req.song_id!r} (from {raw!r}) was already used by {first.where or f'row {first.row}'}"
            )
        else:
            seen[key] = req
    return dupes


def acquire(
    data: DataParams,
    download: DownloadParams,
    audio: AudioParams,
    seed: int,
    out_dir: str | Path,
    manifest: str | Path | None = None,
    folder: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> AcquireResult:
    """Acquire the collection named by ``data.source`` into ``out_dir``; write table and report.

    ``manifest``/``folder`` override ``data.manifest``/``data.folder`` (the
    stage passes the paths it declares to DVC); ``cache_dir`` overrides
    ``download.cache_dir``. The collection is built in a folder beside
    ``out_dir`` and replaces it only on success. Raises
    :class:`AcquisitionError` when the success fraction is below
    ``download.min_success_fraction``; ``out_dir`` is then left as it was and
    the new table and report stay in the folder the message names.
    """
    out_dir = Path(out_dir).absolute()
    _check_replaceable(out_dir)
    cache = None
    if data.source != "demo":
        cache = _download_cache(cache_dir if cache_dir is not None else download.cache_dir, out_dir)
        if data.source == "folder":  # checked before anything is written
            _check_apart(Path(folder or data.folder).expanduser(), out_dir, cache)
        cache.mkdir(parents=True, exist_ok=True)
    with _one_build(out_dir):
        return _build(data, download, audio, seed, out_dir, manifest, folder, cache)


def _build(
    data: DataParams,
    download: DownloadParams,
    audio: AudioParams,
    seed: int,
    out_dir: Path,
    manifest: str | Path | None,
    folder: str | Path | None,
    cache: Path | None,
) -> AcquireResult:
    """Build the collection beside ``out_dir`` and swap it in when the success threshold is met."""
    build = out_dir.with_name(f".{out_dir.name}.new")
    shutil.rmtree(build, ignore_errors=True)
    try:
        (build / contract.AUDIO_DIR).mkdir(parents=True)
        ignored: list[str] | None = None
        if data.source == "demo":
            results = _acquire_demo(data, audio, seed, build)
            input_ref = "demo"
        else:
            assert cache is not None
            requests, ignored, input_ref, base = _read_requests(data, manifest, folder)
            log.info("%s: %d row(s) from %s", data.source, len(requests), input_ref)
            results = _fetch_into(build, cache, base, requests, data, download)
        try:
            songs, report = _write_collection(build, data, input_ref, results, ignored)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(exc, build / contract.SONGS_FILE, hint=_DISK_HINT) from None
            raise
    except DiskFullError:
        shutil.rmtree(build, ignore_errors=True)  # the half-built collection only takes more space
        raise
    try:
        check_success(report, download.min_success_fraction, build / contract.REPORT_FILE)
    except AcquisitionError as exc:
        kept = f"; the previous collection in {out_dir} is unchanged" if out_dir.exists() else ""
        raise AcquisitionError(f"{exc}{kept}") from None
    _swap_in(build, out_dir)
    songs_path, report_path = out_dir / contract.SONGS_FILE, out_dir / contract.REPORT_FILE
    log.info("%s; report: %s", summary_line(report), report_path)
    return AcquireResult(songs, report, songs_path, report_path)


@contextmanager
def _one_build(out_dir: Path) -> Iterator[None]:
    """One run at a time builds a given output folder (an exclusive flock on ``.<name>.lock`` beside
    it); a second run is refused at once instead of deleting the first one's work in progress."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = out_dir.with_name(f".{out_dir.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise AcquisitionError(f"--out {out_dir}: cannot write beside it ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AcquisitionError(
                f"another download run is building {out_dir} now (it holds {lock}); wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def _read_requests(
    data: DataParams, manifest: str | Path | None, folder: str | Path | None
) -> tuple[list[TrackRequest], list[str] | None, str, Path]:
    """``(requests, ignored, input_ref, base)`` for a manifest or folder source.

    ``ignored`` lists a folder's non-audio files (None for a manifest);
    ``base`` is the folder input files may always come from.
    """
    if data.source == "manifest":
        path = Path(manifest or data.manifest)
        return read_manifest(path, data.label_columns), None, str(path), path.resolve().parent
    root = Path(folder or data.folder).expanduser()
    requests, ignored = scan_folder(root, data.folder_layout, data.label_columns)
    return requests, ignored, str(root), root.resolve()


def _download_cache(cache_dir: str | Path, out_dir: Path) -> Path:
    """The download cache folder (not created yet); refused when it and the output folder overlap."""
    cache = Path(cache_dir).expanduser().absolute()
    if cache.is_relative_to(out_dir) or out_dir.is_relative_to(cache):
        raise AcquisitionError(
            f"download.cache_dir ({cache}) must be outside the output folder {out_dir} and not contain it: "
            "the output is replaced on every run"
        )
    return cache


def _check_apart(music: Path, out_dir: Path, cache: Path) -> None:
    """Refuse a music folder that holds (or sits inside) the output or the download cache.

    The folder is scanned whole on every run, so a copy written inside it would come back as a
    new song on the next run (7 songs become 14), and nothing may be written into the user's
    folder at all; a music folder inside the output or the cache would be replaced or cleaned.
    """
    real = music.resolve()
    for what, path in (("--out", out_dir), ("download.cache_dir", cache)):
        other = path.resolve()
        if other.is_relative_to(real) or real.is_relative_to(other):
            inside = "inside" if other.is_relative_to(real) else "around"
            raise AcquisitionError(
                f"{what} ({path}) is {inside} data.folder ({music}): the music folder is scanned whole on "
                f"every run, so the stage's own files would come back as songs; put {what} outside it"
            )


def _fetch_into(
    build: Path,
    cache: Path,
    base: Path,
    requests: list[TrackRequest],
    data: DataParams,
    download: DownloadParams,
) -> list[RowResult]:
    """Acquire every request into ``build`` through ``cache``, in a temporary download folder."""
    settings = YtdlSettings(
        audio_format=download.audio_format,
        max_duration_s=download.max_duration_s,
        socket_timeout_s=download.timeout_s,
        retries=download.retries,
        backoff_s=download.backoff_s,
    )
    with _using_cache(cache):
        partial = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=cache))
        roots = (base, *resolve_roots(data.allowed_roots))
        ctx = _Context(
            build, cache, partial, download, settings, NetworkBreaker(), roots, data.max_lyrics_bytes
        )
        try:
            return _acquire_requests(requests, ctx)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def _using_cache(cache: Path) -> Iterator[None]:
    """Hold the download cache for one run; several runs may share it at once.

    Every run holds a shared lock on ``<cache>/.lock`` while it works. A run that starts while
    no other holds it (an exclusive lock is free) first removes the temporary folders that
    interrupted runs left; with another run going, those folders may be that run's work in
    progress and are left alone (the next run on its own removes them). Finished files are
    renamed into place whole, so two runs fetching one source at once both end with it.
    Without ``fcntl`` (not POSIX) leftovers are never removed, which is safe but takes disk.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(cache / CACHE_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another run is using the download cache %s; sharing it", cache)
        else:
            _remove_partials(cache)
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a starting run removes leftovers
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_collection(
    build: Path, data: DataParams, input_ref: str, results: list[RowResult], ignored: list[str] | None
) -> tuple[pd.DataFrame, dict]:
    """Write ``songs.parquet`` and ``report.json`` into ``build``, log what was skipped; returns both."""
    songs, label_notes = _songs_frame(results, data.label_columns)
    report = build_report(data.source, input_ref, results, ignored)
    report["label_notes"] = label_notes  # spellings that normalization merged (empty: none)
    for note in label_notes:
        log.warning("labels: %s", note)
    contract.write(build, songs, report)
    skipped = [r for r in report["rows"] if r["status"] == "skipped"]
    for r in skipped[:_MAX_LOGGED]:
        log.warning("skipped row %d (%s): %s - %s", r["row"], r["source"][:80], r["reason"], r["detail"])
    if len(skipped) > _MAX_LOGGED:
        log.warning(
            "... and %d more skipped rows, all listed in %s",
            len(skipped) - _MAX_LOGGED,
            build / contract.REPORT_FILE,
        )
    return songs, report


#: what a previous run (this version or an older one) leaves in the output folder
_OWN_ENTRIES = {contract.AUDIO_DIR, contract.SONGS_FILE, contract.REPORT_FILE, "lyrics", "state", ".partial"}


def _check_replaceable(out_dir: Path) -> None:
    """Refuse an output folder holding anything this stage did not write: it is replaced whole."""
    if out_dir == Path.cwd() or Path.cwd().is_relative_to(out_dir) or out_dir.parent == out_dir:
        raise AcquisitionError(
            f"--out {out_dir} contains the working folder; give a folder of its own (data/raw)"
        )
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise AcquisitionError(f"--out {out_dir} is not a folder")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in _OWN_ENTRIES)
    if foreign:
        raise AcquisitionError(
            f"--out {out_dir} holds files the download stage did not write ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); it replaces that folder whole, so give an empty or own folder"
        )


def _swap_in(build: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished ``build`` folder (two renames; the old one is then deleted)."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists() or out_dir.is_symlink():
        os.replace(out_dir, old)
    os.replace(build, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def check_success(report: dict, min_fraction: float, report_path: str | Path) -> None:
    """Raise :class:`AcquisitionError` naming the report when too few songs made it.

    An empty collection is refused whatever ``min_fraction`` says (0 accepts any partial one).
    """
    n, ok = report["rows_in"], report["ok"]
    if n == 0:
        raise AcquisitionError(f"the input has no songs (0 rows); see {report_path}")
    top = ", ".join(f"{k}: {v}" for k, v in sorted(report["reasons"].items(), key=lambda kv: -kv[1]))
    hint = (
        " - no network? connect and re-run (finished songs are kept)"
        if "unreachable" in report["reasons"]
        else ""
    )
    if ok == 0:
        raise AcquisitionError(
            f"no song was acquired (0/{n} ok: {top}), and an empty collection never replaces one{hint}; "
            f"the reason for every row is in {report_path}"
        )
    if ok / n < min_fraction:
        raise AcquisitionError(
            f"only {ok}/{n} songs ({ok / n:.0%}) were acquired, below download.min_success_fraction="
            f"{min_fraction:g} ({top}){hint}; the reason for every row is in {report_path}"
        )


# --------------------------------------------------------------------------- demo


def _acquire_demo(data: DataParams, audio: AudioParams, seed: int, out_dir: Path) -> list[RowResult]:
    # imported here: the demo generator is only needed for this source
    from musiclust.synth.corpus import generate_demo_corpus

    df = generate_demo_corpus(data.demo, audio.sample_rate, seed, out_dir)
    results = []
    for i, rec in enumerate(df.to_dict(orient="records")):
        song_id = str(rec["song_id"])
        apath = Path(str(rec["audio_path"]))
        full = apath if apath.is_absolute() else out_dir / apath
        rec["audio_path"] = (
            full.relative_to(out_dir).as_posix() if full.is_relative_to(out_dir) else str(full)
        )
        try:
            info = probe(full)
        except AudioDecodeError as exc:
            results.append(
                RowResult.skipped(i, "demo", song_id, song_id, exc.reason, f"{full}: {exc.detail}")
            )
            continue
        rec.setdefault("duration_s", info.duration_s)
        rec.setdefault("sample_rate", info.sample_rate)
        lyrics = rec.get("lyrics")
        has = bool(lyrics) if not isinstance(lyrics, float) else False
        rec["has_lyrics"] = bool(rec.get("has_lyrics", has))
        rec.setdefault("source", "demo")
        rec.setdefault("track_id", song_id)
        results.append(
            RowResult(
                i, "demo", song_id, song_id, "ok", lyrics="ok" if rec["has_lyrics"] else "none", record=rec
            )
        )
    return results


# --------------------------------------------------------------------------- manifest / folder


def _acquire_requests(requests: list[TrackRequest], ctx: _Context) -> list[RowResult]:
    dupes = assign_song_ids(requests)
    results: list[RowResult] = []
    todo: list[tuple[TrackRequest, Callable[[TrackRequest, _Context], RowResult]]] = []
    for req in requests:
        if req.row in dupes:  # a repeated id, or a repeated labels.csv row (req.duplicate_of)
            results.append(
                RowResult.skipped(
                    req.row, req.source, req.track_id, req.song_id, "duplicate id", dupes[req.row]
                )
            )
        elif req.kind == "none":
            results.append(
                RowResult.skipped(
                    req.row,
                    req.source,
                    req.track_id,
                    req.song_id,
                    "no source",
                    f"{req.where}: the source cell is empty; give a URL, ytsearch1: query or file path",
                )
            )
        else:
            todo.append((req, _from_url if req.kind == "url" else _from_local))
    pool = ThreadPoolExecutor(max_workers=max(1, int(ctx.download.concurrency)))
    try:
        futures = {pool.submit(_guarded, fn, req, ctx): req for req, fn in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="acquire", unit="song", leave=False):
            results.append(fut.result())
    except BaseException as exc:
        # Ctrl-C or a full disk: start no queued song, let the ones in flight finish (each lands
        # whole or not at all); finished songs are already in place and a re-run skips them
        if not isinstance(exc, DiskFullError):
            log.warning("interrupted: waiting for the songs in progress (Ctrl-C again to abandon them)")
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return sorted(results, key=lambda r: r.row)


def _guarded(
    fn: Callable[[TrackRequest, _Context], RowResult], req: TrackRequest, ctx: _Context
) -> RowResult:
    """Run one row; an unexpected error skips that row (with its message) instead of the whole run.

    A full disk is not the row's fault and would fail every row after it: it stops the run.
    """
    try:
        return fn(req, ctx)
    except DiskFullError:
        raise
    except Exception as exc:  # one bad row must not kill a run of hundreds
        if is_disk_full(exc):
            need = req.local_path.stat().st_size if req.local_path and req.local_path.is_file() else None
            raise disk_full_error(exc, ctx.cache_dir, need, _DISK_HINT) from None
        log.exception("row %d (%s): unexpected error", req.row, req.where)
        return RowResult.skipped(
            req.row, req.source, req.track_id, req.song_id, "error", f"{type(exc).__name__}: {exc}"
        )


def _entry(key: dict) -> str:
    """Cache name of a source: a hash of what identifies it (URL and format, or path, size and mtime)."""
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:24]


def _reusable(ctx: _Context, key: dict) -> dict | None:
    """The state record of a finished cached file for this exact source, if the file is still intact."""
    sp = ctx.cache_dir / f"{_entry(key)}.json"
    if not sp.is_file():
        return None
    try:
        state = read_json(sp)
    except (OSError, ValueError):
        return None
    if state.get("key") != key:
        return None
    f = ctx.cache_dir / str(state.get("file", ""))
    if not f.is_file() or f.stat().st_size != state.get("size"):
        return None
    try:
        probe(f)  # cheap header check; the full decode happened when the file was accepted
    except AudioDecodeError:
        return None
    return state


def _accept(ctx: _Context, tmp: Path, ext: str, info: VerifiedAudio, key: dict, extra: dict) -> dict:
    """Rename a verified temporary file into the cache and record where it came from."""
    entry = _entry(key)
    dest = ctx.cache_dir / f"{entry}{ext}"
    os.replace(tmp, dest)
    state = {
        "key": key,
        "file": dest.name,
        "size": dest.stat().st_size,
        "duration_s": round(info.duration_s, 4),
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "peak": round(info.peak, 6),
        **extra,
    }
    write_json(ctx.cache_dir / f"{entry}.json", state)
    return state


def _place(ctx: _Context, req: TrackRequest, state: dict) -> str:
    """Link the cached file into the collection as ``audio/<song_id><ext>``; returns that name."""
    src = ctx.cache_dir / state["file"]
    mode = src.stat().st_mode
    if not mode & 0o044:  # cached by an older version as 0600: readable like any file the user writes
        os.chmod(src, mode | (file_mode() & 0o444))
    name = f"{req.song_id}{src.suffix}"
    dest = ctx.audio_dir / name
    dest.unlink(missing_ok=True)
    link_or_copy(src, dest)
    return name


def _refused(req: TrackRequest, exc: InputFileError) -> RowResult:
    hint = ""
    if exc.reason == "missing file" and req.source.startswith("-"):
        hint = " (a source starting with '-' is read as a file name, never as an option)"
    return RowResult.skipped(
        req.row,
        req.source,
        req.track_id,
        req.song_id,
        exc.reason,
        f"{req.where}: {exc.path}: {exc.detail}{hint}",
    )


def _too_long(req: TrackRequest, duration_s: float, ctx: _Context) -> RowResult | None:
    limit = ctx.download.max_duration_s
    if duration_s > limit:
        return RowResult.skipped(
            req.row,
            req.source,
            req.track_id,
            req.song_id,
            "too long",
            f"{duration_s:.0f} s > download.max_duration_s={limit:g}",
        )
    return None


def _from_local(req: TrackRequest, ctx: _Context) -> RowResult:
    assert req.local_path is not None
    try:
        path = check_input_file(req.local_path, ctx.roots)
    except InputFileError as exc:
        if exc.reason == "not a regular file" and req.local_path.is_dir():
            exc.detail = "is a folder, not a file"
        return _refused(req, exc)
    st = path.stat()
    key = {"source": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    state = _reusable(ctx, key)
    if state is None:
        ext = path.suffix.lower()
        if st.st_size == 0:
            return RowResult.skipped(
                req.row, req.source, req.track_id, req.song_id, "empty", f"{path}: zero-byte file"
            )
        if ext not in AUDIO_EXTENSIONS:
            return RowResult.skipped(
                req.row,
                req.source,
                req.track_id,
                req.song_id,
                "unsupported format",
                f"{path}: '{ext or 'no extension'}' cannot be decoded by soundfile; convert it to flac, wav or mp3",
            )
        try:
            info = verify_audio(path, max_duration_s=ctx.download.max_duration_s)
        except AudioDecodeError as exc:
            return RowResult.skipped(
                req.row, req.source, req.track_id, req.song_id, exc.reason, f"{path}: {exc.detail}"
            )
        if (skip := _too_long(req, info.duration_s, ctx)) is not None:
            return skip
        # copy, not link: DVC makes cached files read-only, which must never touch the user's originals
        fd, tmp = tempfile.mkstemp(prefix=f".{req.song_id}.", suffix=".part", dir=ctx.partial_dir)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, file_mode())  # mkstemp made it 0600
            state = _accept(ctx, Path(tmp), ext, info, key, {})
        finally:
            Path(tmp).unlink(missing_ok=True)
    return _ok(req, ctx, state, title=req.title or path.stem)


def _file_url_path(source: str) -> Path | None:
    """The local path of a ``file://`` URL, else None."""
    parts = urllib.parse.urlsplit(source.strip())
    if parts.scheme.lower() != "file":
        return None
    return Path(urllib.request.url2pathname(parts.path))


def _from_url(req: TrackRequest, ctx: _Context) -> RowResult:
    local = _file_url_path(req.source)
    if local is not None:  # yt-dlp would read any file:// path: the same rule as for local files
        try:
            check_input_file(local, ctx.roots)
        except InputFileError as exc:
            return _refused(req, exc)
    key = {"source": req.source, "audio_format": ctx.settings.audio_format}
    state = _reusable(ctx, key)
    if state is None:
        work = ctx.partial_dir / req.song_id
        try:
            try:
                path, meta, attempts = fetch(req.source, work, req.song_id, ctx.settings, ctx.breaker)
            except DownloadFailure as exc:
                return RowResult.skipped(
                    req.row, req.source, req.track_id, req.song_id, exc.reason, exc.detail
                )
            try:
                info = verify_audio(path, max_duration_s=ctx.download.max_duration_s)
            except AudioDecodeError as exc:
                return RowResult.skipped(
                    req.row,
                    req.source,
                    req.track_id,
                    req.song_id,
                    exc.reason,
                    f"downloaded file {exc.detail}",
                )
            if (skip := _too_long(req, info.duration_s, ctx)) is not None:
                return skip
            extra = {
                "resolved": meta.get("webpage_url"),
                "remote_title": meta.get("title"),
                "uploader": meta.get("uploader"),
            }
            state = _accept(ctx, path, path.suffix.lower(), info, key, extra)
            log.info("%s: downloaded in %d attempt(s)", req.song_id, attempts)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _ok(
        req,
        ctx,
        state,
        title=req.title or state.get("remote_title") or req.song_id,
        artist=req.artist or state.get("uploader"),
        resolved=state.get("resolved"),
    )


def _ok(
    req: TrackRequest,
    ctx: _Context,
    state: dict,
    title: str,
    artist: str | None = None,
    resolved: str | None = None,
) -> RowResult:
    lyr = resolve_lyrics(req.lyrics, req.lyrics_path, ctx.roots, ctx.max_lyrics_bytes)
    if lyr.has_lyrics and lyr.detail:
        log.warning("%s (%s): lyrics %s", req.song_id, req.where, lyr.detail)
    name = _place(ctx, req, state)
    record = {
        "song_id": req.song_id,
        "title": title,
        "artist": artist if artist is not None else req.artist,
        **req.labels,
        "audio_path": f"{contract.AUDIO_DIR}/{name}",
        "duration_s": float(state["duration_s"]),
        "sample_rate": int(state["sample_rate"]),
        "lyrics": lyr.text,
        "has_lyrics": lyr.has_lyrics,
        "source": req.source,
        "track_id": req.track_id,
    }
    # an input column that clashes with a computed one (a labels.csv "duration_s") is kept, renamed
    record.update({(f"input_{k}" if k in record else k): v for k, v in req.metadata.items()})
    detail = ""
    if float(state.get("peak", 1.0)) < 1e-4:
        detail = "silent (kept; the segment stage flags silent clips)"
    return RowResult(
        req.row,
        req.source,
        req.track_id,
        req.song_id,
        "ok",
        None,
        detail,
        lyrics=lyr.status,
        lyrics_detail=lyr.detail,
        resolved=resolved,
        record=record,
    )


# --------------------------------------------------------------------------- outputs


def normalize_label(value: object) -> object:
    """One spelling per class: NFC, surrounding space removed, lower case (``' EN '`` -> ``'en'``).

    Blank cells and the placeholders spreadsheets and pandas write for "unknown" (``NaN``,
    ``N/A``, ``NA``, ``None``, ``null``, any case: :data:`LABEL_PLACEHOLDERS`) are None, never a class.
    """
    if not isinstance(value, str):
        return value
    text = " ".join(unicodedata.normalize("NFC", value).split()).lower()
    return None if not text or text in LABEL_PLACEHOLDERS else text


def normalize_labels(records: list[dict], label_columns: tuple[str, ...]) -> list[str]:
    """Normalize label cells in place; returns one note per column where that merged spellings
    or read placeholders as unknown."""
    notes = []
    for c in label_columns:
        merged: dict[object, set[str]] = {}
        placeholders: dict[str, int] = {}
        for rec in records:
            if c in rec:
                raw = rec[c]
                rec[c] = normalize_label(raw)
                if isinstance(raw, str) and rec[c] is None and raw.strip():
                    placeholders[raw.strip()] = placeholders.get(raw.strip(), 0) + 1
                elif isinstance(raw, str):
                    merged.setdefault(rec[c], set()).add(raw)
        if placeholders:
            notes.append(
                f"{c}: {sum(placeholders.values())} placeholder value(s) read as unknown (null): "
                + ", ".join(f"{k!r} x{v}" for k, v in sorted(placeholders.items()))
            )
        groups = [
            f"{sorted(v)} -> {k!r}"
            for k, v in sorted(merged.items(), key=lambda kv: str(kv[0]))
            if len(v) > 1
        ]
        if groups:
            notes.append(f"{c}: spellings merged (case and spaces ignored): " + "; ".join(groups))
    return notes


def _songs_frame(results: list[RowResult], label_columns: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    records = [r.record for r in sorted(results, key=lambda r: r.row) if r.status == "ok" and r.record]
    notes = normalize_labels(records, label_columns)
    return contract.songs_table(records, label_columns), notes


def _remove_partials(cache_dir: Path) -> None:
    """Leftovers of an interrupted run: temporary downloads and half copies are never reused."""
    for p in cache_dir.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
