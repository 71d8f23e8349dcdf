"""A content-addressed store of what the report draws and encodes, so a report redraws only what changed.

Drawing the figures (matplotlib) and encoding the audio excerpts are most of the report stage's
time, and after an experiment that re-trains one model almost all of them are the same as the
last run's. Each artefact is stored under the SHA-256 of everything that determines its bytes:

* the drawing or encoding function (module and name) and its arguments, pickled (data frames and
  arrays included): equal pickles mean equal inputs, so a hit can only return the very bytes the
  function would have produced; a different pickle of equal data is a miss, never a wrong hit;
* the code that turns them into bytes: the source of the reporting modules that draw, encode and
  gather the explorer's data (and the clusters contract they read), and the versions of
  matplotlib, numpy and libsndfile.

The explorer's per-representation data (maps, headline clusters, distances to the centres) is
stored the same way (:meth:`ArtefactCache.get_keyed`), keyed by the digests of the cluster files
it reads.

The store is a plain folder (``stages/report.py --cache``, in dvc.yaml the project's own
``.musiclust/cache/report``), outside every DVC output: the report's outputs are the same bytes
with or without it (tests/test_report.py checks that). ``root=None`` switches it off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musiclust.fileio import atomic_write_bytes
from musiclust.workspace import prune_least_recent

log = logging.getLogger(__name__)

#: Entries kept after a report: the ones it used, then the most recently used up to this many.
KEEP_ENTRIES = 4000


def _code_key() -> bytes:
    """What, besides the arguments, decides an artefact's bytes: the drawing/encoding code and libraries."""
    import matplotlib
    import numpy
    import soundfile

    from musiclust.contracts import clusters
    from musiclust.reporting import excerpts, explore, figures, inputs, style

    h = hashlib.sha256()
    for mod in (figures, style, excerpts, explore, inputs, clusters):
        h.update(Path(mod.__file__).read_bytes())
    for version in (matplotlib.__version__, numpy.__version__, soundfile.__libsndfile_version__):
        h.update(version.encode() + b"\0")
    return h.digest()


class ArtefactCache:
    """``get(fn, *args)`` returns ``fn(*args)`` (bytes), from the store when the same call was made before."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root is not None else None
        self.used: set[Path] = set()
        self.hits = 0
        self.misses = 0
        self._code = _code_key() if self.root is not None else b""

    def get(self, fn: Callable[..., bytes], *args: Any) -> bytes:
        return self.get_keyed(f"{fn.__module__}.{fn.__qualname__}", args, lambda: fn(*args))

    def get_keyed(self, name: str, key: tuple[Any, ...], compute: Callable[[], bytes]) -> bytes:
        """``compute()``, stored under ``name`` and ``key``; ``key`` must hold everything ``compute``
        reads (a file by the digest of its bytes, :func:`musiclust.workspace.file_digest`), as ``get``'s arguments do."""
        if self.root is None:
            return compute()
        h = hashlib.sha256(self._code)
        h.update(f"{name}\0".encode())
        h.update(pickle.dumps(key, protocol=4))
        path = self.root / h.hexdigest()[:2] / h.hexdigest()
        self.used.add(path)
        try:
            data = path.read_bytes()
            os.utime(path)  # most recently used: kept longest by prune()
            self.hits += 1
            return data
        except FileNotFoundError:
            pass
        data = compute()
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:  # a full or read-only disk costs the next run time, not this report
            log.warning("report cache: cannot store %s: %s", path, exc)
        self.misses += 1
        return data

    def prune(self, keep: int = KEEP_ENTRIES) -> None:
        """Delete the least recently used entries beyond ``keep`` (never one this report used)."""
        if self.root is None or not self.root.is_dir():
            return
        prune_least_recent(self.root, self.used, keep, Path.is_file, lambda old: old.unlink(missing_ok=True))
        log.info("report cache: %d drawn or encoded, %d reused (%s)", self.misses, self.hits, self.root)
