"""Fetch one song's audio with yt-dlp's Python API (never a shell command).

Best audio only, converted by ffmpeg (the binary that ships with
``imageio-ffmpeg``) to a format soundfile decodes. Errors are sorted into the
report's reasons; unreachable networks fail fast: a short socket timeout, one
retry at most, and a shared :class:`NetworkBreaker` that stops trying once
several songs in a row could not connect while nothing has succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from musiclust.fileio import disk_full_error, is_disk_full

log = logging.getLogger(__name__)

# substrings of yt-dlp / urllib / requests errors, lower-cased, mapped to report reasons
_UNREACHABLE = (
    "failed to resolve",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "connection refused",
    "network is unreachable",
    "no route to host",
    "timed out",
    "connection reset",
    "failed to establish a new connection",
    "remote end closed connection",
    "connection aborted",
    "max retries exceeded",
)
_UNAVAILABLE = (
    "no such file or directory",
    "video unavailable",
    "private video",
    "this video is not available",
    "has been removed",
    "http error 404",
    "http error 410",
    "members-only",
    "sign in to confirm your age",
    "this video is unavailable",
    "account associated with this video has been terminated",
    "no video formats found",
    "requested format is not available",
    "only images are available",
    "copyright",
)
_UNSUPPORTED = ("is not a valid url", "unsupported url")
_CORRUPT = ("postprocessing", "conversion failed", "ffmpeg", "invalid data found")


_JS_HINT = (
    "YouTube needs a JavaScript runtime for full support: install Deno (https://deno.com) and "
    '`pip install "yt-dlp[default]"` (see docs/own_music.md)'
)
_JS_WARNED = threading.Event()


class DownloadFailure(Exception):
    """A download failed; ``reason`` is a report reason, ``retryable`` says whether to try again."""

    def __init__(self, reason: str, detail: str, retryable: bool = False) -> None:
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class YtdlSettings:
    """What a single download needs (built from ``params.download``)."""

    audio_format: str = "flac"
    max_duration_s: float = 900.0
    socket_timeout_s: float = 20.0
    retries: int = 3
    backoff_s: float = 2.0


class NetworkBreaker:
    """Trips after ``threshold`` consecutive unreachable songs while no host has answered yet.

    Offline, a manifest of 120 YouTube searches would otherwise spend minutes on
    retries; once tripped, the remaining network rows are reported
    ``unreachable`` at once. Thread-safe.
    """

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._consecutive = 0
        self._reached = 0

    @property
    def tripped(self) -> bool:
        with self._lock:
            return self._reached == 0 and self._consecutive >= self.threshold

    def record(self, reached: bool) -> None:
        """Count one networked attempt: ``reached`` is False only when no host answered."""
        with self._lock:
            if reached:  # a success, but also "video unavailable": the network works
                self._reached += 1
                self._consecutive = 0
            else:
                self._consecutive += 1


class _YtdlLogger:
    """Route yt-dlp's messages into logging instead of stderr (errors become our report)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def debug(self, msg: str) -> None:
        log.debug("[%s] %s", self.tag, msg)

    def info(self, msg: str) -> None:
        log.debug("[%s] %s", self.tag, msg)

    def warning(self, msg: str) -> None:
        if "javascript runtime" in msg.lower() and not _JS_WARNED.is_set():
            _JS_WARNED.set()  # once per run, not once per song
            log.warning("yt-dlp: %s -- %s", msg, _JS_HINT)
        log.debug("[%s] yt-dlp warning: %s", self.tag, msg)

    def error(self, msg: str) -> None:
        log.debug("[%s] yt-dlp error: %s", self.tag, msg)


def classify_error(exc: BaseException) -> DownloadFailure:
    """Map a yt-dlp exception (and its cause chain) to a report reason."""
    parts = [str(exc)]
    inner = getattr(exc, "exc_info", None)
    if inner and inner[1] is not None:
        parts.append(str(inner[1]))
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        parts.append(str(cause))
    text = " | ".join(parts)
    low = text.lower()
    # yt-dlp repeats the cause in parentheses; the first clause is the readable part
    detail = str(exc).replace("ERROR: ", "", 1).split(" (caused by ")[0].strip()[:300] or text[:300]
    if any(s in low for s in _UNREACHABLE):
        return DownloadFailure("unreachable", detail, retryable=True)
    if any(s in low for s in _UNSUPPORTED):
        return DownloadFailure("unsupported source", detail)
    if any(s in low for s in _UNAVAILABLE):
        if "requested format is not available" in low or "only images are available" in low:
            detail += f" ({_JS_HINT})"
        return DownloadFailure("unavailable", detail)
    if "http error 403" in low or "http error 429" in low:
        return DownloadFailure(
            "unavailable", detail + " (blocked or rate-limited; try later)", retryable=True
        )
    if any(s in low for s in _CORRUPT):
        return DownloadFailure("corrupt", detail)
    return DownloadFailure("download failed", detail, retryable=True)


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg  # ships a static ffmpeg, so no system install is needed

    return imageio_ffmpeg.get_ffmpeg_exe()


def _options(work_dir: Path, stem: str, settings: YtdlSettings) -> dict:
    """yt-dlp options for one quiet, single-item attempt writing ``work_dir/<stem>.<audio_format>``."""
    return {
        "format": "bestaudio/best",
        "outtmpl": {"default": str(work_dir / f"{stem}.%(ext)s")},
        "paths": {"home": str(work_dir), "temp": str(work_dir)},
        "noplaylist": True,
        "playlist_items": "1",
        "enable_file_urls": True,  # file:// sources (local mirrors, offline tests)
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _YtdlLogger(stem),
        "socket_timeout": settings.socket_timeout_s,
        # our own loop retries whole songs with backoff; yt-dlp's inner retries would multiply it
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 0,
        "overwrites": True,
        "cachedir": False,
        "ffmpeg_location": _ffmpeg_exe(),
        "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": settings.audio_format}],
    }


def fetch_once(source: str, work_dir: Path, stem: str, settings: YtdlSettings) -> tuple[Path, dict]:
    """One attempt: download ``source`` as best audio into ``work_dir/<stem>.<audio_format>``.

    Returns the produced file and a small info dict (title, uploader, duration,
    webpage_url). Raises :class:`DownloadFailure`. ``work_dir`` is a private
    temporary folder; the caller renames the result into place when verified.
    """
    import yt_dlp

    work_dir.mkdir(parents=True, exist_ok=True)
    opts = _options(work_dir, stem, settings)
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            # resolve first (a search becomes one video) so the duration limit is checked before downloading
            info = ydl.extract_info(source, download=False)
            if info is None:
                raise DownloadFailure("unavailable", "yt-dlp returned nothing for this source")
            if info.get("_type") in ("playlist", "multi_video"):
                entries = [e for e in (info.get("entries") or []) if e]
                if not entries:
                    raise DownloadFailure("unavailable", "the search or playlist found nothing")
                info = entries[0]
            duration = info.get("duration")
            if duration and float(duration) > settings.max_duration_s:
                raise DownloadFailure(
                    "too long",
                    f"{float(duration):.0f} s > download.max_duration_s={settings.max_duration_s:g}",
                )
            info = ydl.process_ie_result(info, download=True)
    except DownloadFailure:
        raise
    except Exception as exc:  # yt_dlp.utils.DownloadError and friends
        if is_disk_full(exc):  # not this song's fault: the stage stops (musiclust.data.acquire)
            raise disk_full_error(exc, work_dir) from None
        raise classify_error(exc) from None
    produced = [Path(d["filepath"]) for d in (info.get("requested_downloads") or []) if d.get("filepath")]
    produced = [p for p in produced if p.is_file()]
    if not produced:
        candidates = sorted(work_dir.glob(f"{stem}.{settings.audio_format}"))
        produced = candidates
    if not produced:
        raise DownloadFailure("download failed", "yt-dlp finished but produced no audio file")
    meta = {k: info.get(k) for k in ("title", "uploader", "duration", "webpage_url", "id")}
    return produced[0], meta


def fetch(
    source: str, work_dir: Path, stem: str, settings: YtdlSettings, breaker: NetworkBreaker | None = None
) -> tuple[Path, dict, int]:
    """Download with retries and exponential backoff; returns ``(file, info, attempts)``.

    Permanent failures (unavailable, too long, unsupported) are not retried;
    unreachable ones are retried once at most, and not at all once the
    ``breaker`` has tripped.
    """
    breaker = breaker or NetworkBreaker()
    # a local file:// copy succeeding says nothing about the network
    networked = not source.strip().lower().startswith("file:")
    attempt = 0
    while True:
        if networked and breaker.tripped:
            raise DownloadFailure(
                "unreachable",
                "no network: several songs in a row could not connect, so this one was not tried "
                "(check your connection, then re-run; finished songs are kept)",
            )
        attempt += 1
        try:
            path, meta = fetch_once(source, work_dir, stem, settings)
        except DownloadFailure as exc:
            unreachable = exc.reason == "unreachable"
            limit = min(settings.retries, 1) if unreachable else settings.retries
            if not exc.retryable or attempt > limit:
                if networked:
                    breaker.record(reached=not unreachable)
                raise
            wait = settings.backoff_s * (2 ** (attempt - 1))
            log.info("%s: %s; retry %d/%d in %.1f s", stem, exc.reason, attempt, limit, wait)
            time.sleep(wait)
            continue
        if networked:
            breaker.record(reached=True)
        return path, meta, attempt
