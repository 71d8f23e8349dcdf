"""Print the HTML report to PDF with headless Chromium, when a Chromium is installed."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: Executable names tried in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: Seconds Chromium may take to print (the page embeds every figure and excerpt).
PRINT_TIMEOUT_S = 180
#: Chromium stamps the print time (and a document id made from it) into the PDF; both are
#: replaced by fixed values of the same length, so the cross-reference offsets stay valid and
#: the file is byte-identical run to run.
_DATE = re.compile(rb"(/(?:CreationDate|ModDate) ?\(D:)([0-9]{14})")
_ID = re.compile(rb"/ID ?\[ ?<([0-9A-Fa-f]+)> ?<([0-9A-Fa-f]+)> ?\]")


class PdfError(Exception):
    """Chromium was found but did not produce a PDF (the message says why)."""


def find_chromium() -> str | None:
    """Path of the first Chromium on PATH, or None."""
    for name in CHROMIUM_NAMES:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def fixed_stamps(pdf: bytes) -> bytes:
    """``pdf`` with its creation/modification dates and document id set to fixed values."""
    pdf = _DATE.sub(lambda m: m.group(1) + b"20000101000000", pdf)
    return _ID.sub(
        lambda m: (
            m.group(0).replace(m.group(1), b"0" * len(m.group(1))).replace(m.group(2), b"0" * len(m.group(2)))
        ),
        pdf,
    )


def print_pdf(html: Path, pdf: Path, exe: str) -> Path:
    """Print ``html`` to ``pdf`` with ``exe --headless``; raises :class:`PdfError` on failure."""
    pdf.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="musiclust-chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf.resolve()}",
            html.resolve().as_uri(),
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise PdfError(f"{exe} did not print {html} within {PRINT_TIMEOUT_S} s") from None
    if res.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise PdfError(f"{exe} exited {res.returncode} without writing {pdf}: {res.stderr.strip()[-500:]}")
    pdf.write_bytes(fixed_stamps(pdf.read_bytes()))
    return pdf


def maybe_print_pdf(html: Path, pdf: Path) -> Path | None:
    """Print the PDF if a Chromium is on PATH; otherwise log why not and remove a stale PDF."""
    exe = find_chromium()
    if exe is None:
        pdf.unlink(missing_ok=True)
        log.warning(
            "no PDF: none of %s is on PATH (install Chromium to get %s)", ", ".join(CHROMIUM_NAMES), pdf
        )
        return None
    out = print_pdf(html, pdf, exe)
    log.info("wrote %s with %s", out, exe)
    return out
