"""Where a report came from: git commit, the params file as written, and dvc.lock hashes.

Each piece is optional: a copy of the repository without ``.git``, or a first run before
``dvc.lock`` exists, still gets a report that says what it could not find.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


@dataclass
class Provenance:
    """The footer's facts; ``None`` where unavailable, with the reason in ``notes``."""

    commit: str | None = None
    dirty: bool | None = None
    params_text: str | None = None
    lock_rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _git(root: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def lock_hashes(lock: dict) -> list[dict[str, str]]:
    """Flatten a parsed ``dvc.lock`` into rows ``stage, kind (dep/out), path, md5``."""
    rows = []
    for stage, body in sorted((lock.get("stages") or {}).items()):
        for kind in ("deps", "outs"):
            for entry in body.get(kind) or []:
                digest = entry.get("md5") or entry.get("hash") or entry.get("etag") or ""
                rows.append({"stage": stage, "kind": kind[:-1], "path": str(entry.get("path", "")),
                             "md5": str(digest)})
    return rows


def collect(root: Path, params_path: Path, lock_path: Path | None = None) -> Provenance:
    """Gather commit, params text and lock hashes from ``root`` (the pipeline's working directory)."""
    prov = Provenance()
    prov.commit = _git(root, "rev-parse", "HEAD")
    if prov.commit is None:
        prov.notes.append("no git commit (not a git checkout, or git is not installed)")
    else:
        # files a running pipeline rewrites itself do not make the code "dirty"
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)dvc.lock", ":(exclude)metrics", ":(exclude)plots")
        prov.dirty = bool(status) if status is not None else None
    try:
        prov.params_text = params_path.read_text(encoding="utf-8")
    except OSError as exc:
        prov.notes.append(f"{params_path}: unreadable ({exc.strerror or exc})")
    lock_path = lock_path or root / "dvc.lock"
    if lock_path.exists():
        try:
            with lock_path.open(encoding="utf-8") as fh:
                prov.lock_rows = lock_hashes(yaml.safe_load(fh) or {})
        except (OSError, yaml.YAMLError) as exc:
            prov.notes.append(f"{lock_path}: unreadable ({exc})")
    else:
        prov.notes.append(f"{lock_path}: absent (first run, or run outside DVC)")
    return prov
