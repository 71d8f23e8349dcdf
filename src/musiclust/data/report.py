"""The download report: one entry per input row, counts that reconcile, a readable summary.

``report.json`` is part of the persistent ``data/raw`` output, so it holds only
what the run *found* (no timings or "reused" flags): re-running on the same
input writes the same bytes and DVC sees nothing changed downstream.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: every reason a row can be skipped for, with what it means (docs/own_music.md repeats these)
SKIP_REASONS = {
    "unreachable": "the network or host could not be reached (offline, DNS failure, refused, timed out)",
    "unavailable": "the source answered but has nothing to give (removed/private video, 404, "
    "file:// to a missing file, a search that found nothing)",
    "unsupported source": "yt-dlp does not understand the URL",
    "download failed": "yt-dlp failed for another reason after all retries",
    "too long": "longer than download.max_duration_s",
    "corrupt": "the file does not decode completely (damaged or truncated)",
    "empty": "zero bytes or no audio frames",
    "unsupported format": "not an audio format soundfile decodes (or not audio at all), a sample rate "
    "below 4 kHz, or a FLAC whose header gives no length",
    "missing file": "a local path (or file:// URL) that does not exist",
    "outside allowed roots": "a file outside the input's folder and data.allowed_roots: never read",
    "not a regular file": "a folder, named pipe, device or socket: never read",
    "broken link": "a symbolic link to a file that does not exist",
    "symlink loop": "a symbolic link that points (through others) at itself",
    "permission denied": "the file exists but cannot be opened for reading",
    "duplicate id": "the song id (track_id, or derived from artist/title/file) was already used by an earlier "
    "row, or a second labels.csv row names the same file",
    "no source": "the row has an empty source cell",
    "error": "an unexpected error while handling this row (the message says which); please report it",
}


@dataclass
class RowResult:
    """Outcome of one input row. ``record`` is the ``songs.parquet`` row when ``status == 'ok'``."""

    row: int
    source: str
    track_id: str | None
    song_id: str
    status: str
    reason: str | None = None
    detail: str = ""
    lyrics: str = "none"  # a musiclust.data.lyrics LYRICS_* tag
    lyrics_detail: str = ""
    resolved: str | None = None  # for URLs: the page yt-dlp actually fetched
    record: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def skipped(
        cls, row: int, source: str, track_id: str | None, song_id: str, reason: str, detail: str
    ) -> RowResult:
        """A skipped row with its reason (one of :data:`SKIP_REASONS`)."""
        return cls(row, source, track_id, song_id, "skipped", reason, detail)

    def as_json(self) -> dict[str, Any]:
        out = {
            "row": self.row,
            "track_id": self.track_id,
            "song_id": self.song_id,
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
        }
        if self.status == "ok":
            out["lyrics"] = self.lyrics
            if self.lyrics_detail:
                out["lyrics_detail"] = self.lyrics_detail
        if self.resolved:
            out["resolved"] = self.resolved
        return out


def build_report(
    source: str, input_ref: str, results: list[RowResult], ignored: list[str] | None = None
) -> dict:
    """The ``report.json`` mapping; ``rows_in == ok + skipped`` by construction (and asserted)."""
    rows = sorted(results, key=lambda r: r.row)
    ok = sum(r.status == "ok" for r in rows)
    skipped = sum(r.status == "skipped" for r in rows)
    if ok + skipped != len(rows):
        raise AssertionError("a row is neither ok nor skipped")
    reasons = Counter(r.reason for r in rows if r.status == "skipped")
    lyrics = Counter(r.lyrics for r in rows if r.status == "ok")
    report = {
        "source": source,
        "input": input_ref,
        "rows_in": len(rows),
        "ok": ok,
        "skipped": skipped,
        "success_fraction": round(ok / len(rows), 4) if rows else 0.0,
        "reasons": dict(sorted(reasons.items())),
        "lyrics": dict(sorted(lyrics.items())),
        "rows": [r.as_json() for r in rows],
    }
    if ignored is not None:
        report["ignored_files"] = ignored
    return report


def summary_line(report: dict) -> str:
    """One log line: counts, reasons and lyrics outcomes."""
    reasons = ", ".join(f"{k}: {v}" for k, v in report["reasons"].items()) or "none"
    lyr = ", ".join(f"{k}: {v}" for k, v in report["lyrics"].items()) or "none"
    return (
        f"{report['ok']}/{report['rows_in']} songs ok, {report['skipped']} skipped "
        f"(reasons: {reasons}); lyrics of ok songs: {lyr}"
    )
