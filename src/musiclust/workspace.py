"""The project's own caches (the cluster store, the report's cache): where they live when a stage
runs in a DVC experiment's temporary copy, and what they share (file digests for their keys, the
pruning of least recently used entries).

``dvc exp run --queue`` (and ``--temp``) runs the pipeline in a copy of the repository under
``<repo>/.dvc/tmp/exps/<tmpdir>/``, which holds the tracked files and the outputs but not the
ignored ``.musiclust/cache/`` folder. The cluster store and the report's figure cache are meant
to be shared by every experiment of the project, so a stage running in such a copy uses the
caches of the repository the copy was made from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from pathlib import Path

#: The path parts DVC puts its experiment copies under, relative to the repository root.
EXPERIMENT_COPIES = (".dvc", "tmp", "exps")


def project_root(cwd: Path | None = None) -> Path | None:
    """The repository a DVC experiment copy was made from, when ``cwd`` (default: the current
    folder) is inside one; None otherwise."""
    parts = (cwd or Path.cwd()).resolve().parts
    n = len(EXPERIMENT_COPIES)
    for i in range(len(parts) - n, 0, -1):
        if parts[i : i + n] == EXPERIMENT_COPIES:
            return Path(*parts[:i])
    return None


def shared_cache(path: str | Path | None, cwd: Path | None = None) -> Path | None:
    """``path`` (a cache folder relative to the repository root, as dvc.yaml gives it), moved to the
    repository an experiment copy was made from when the stage runs in one. Absolute paths and
    None are returned as they are."""
    if path is None:
        return None
    path = Path(path)
    if path.is_absolute():
        return path
    root = project_root(cwd)
    return root / path if root is not None else path


def file_digest(path: Path) -> bytes:
    """SHA-256 of a file's bytes (part of a cache key)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def prune_least_recent(
    root: Path,
    used: Collection[Path],
    keep: int,
    is_entry: Callable[[Path], bool],
    remove: Callable[[Path], None],
) -> None:
    """``remove`` the least recently used entries ``root/??/*`` (by modification time) beyond
    ``keep`` in all; an entry in ``used`` (this run's) is never removed and counts toward ``keep``."""
    entries = [p for p in root.glob("??/*") if is_entry(p) and p not in used]
    room = max(keep - len(used), 0)
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[room:]:
        remove(old)
