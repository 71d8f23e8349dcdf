"""A content-addressed store of ``data/clusters/<rep>/`` folders, so the cluster stage re-clusters only what changed.

The ``cluster`` stage clusters, maps and scores every representation (each model of
``train.models``, each baseline of ``cluster.baselines``) in one process. After an experiment
that re-trains one model (``dvc exp run -S beta=8``), the other representations' inputs are the
same as in an earlier run, and so is their output: the stage copies it from this store instead of
computing it again. A representation's entry is keyed by the SHA-256 of everything that decides
its folder's bytes:

* its name, and the bytes of every input file it reads: ``models/<key>/`` whole for a model;
  ``data/features/`` and ``data/lyrics.parquet`` for a baseline; ``segments.parquet`` for all;
* the params the stage reads (:data:`PARAM_KEYS`, the same keys as its ``params:`` in dvc.yaml);
* the code that computes it: every source file of :data:`CODE_PATHS` (the stage's code deps in
  dvc.yaml; tests/test_contract.py keeps the two equal) and the versions of the numerical
  libraries whose results or file encoding it depends on.

Equal keys therefore mean the same computation on the same bytes, whose output (seeded, single
BLAS thread) is byte-identical: a hit returns what the stage would have written. The store is a
plain folder (``--cache``; in dvc.yaml the project's own ``.musiclust/cache/cluster``), outside
every DVC output: the stage's outputs are the same with or without it (tests check that).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from musiclust.fileio import source_digest
from musiclust.workspace import file_digest, prune_least_recent

log = logging.getLogger(__name__)

#: The code of the cluster stage, relative to the ``musiclust`` package: what its output depends on
#: beyond the inputs and params (dvc.yaml lists the same paths as the stage's code deps).
CODE_PATHS = (
    "clustering",
    "evaluation",
    "contracts/segments.py",
    "contracts/shards.py",
    "contracts/features.py",
    "contracts/lyrics.py",
    "contracts/models.py",
    "contracts/clusters.py",
    "projection.py",
    "params.py",
    "fileio.py",
    "log.py",
    "workspace.py",
)
#: Distributions whose version can change a clustering, a score or the Parquet bytes written.
LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "umap-learn", "numba", "threadpoolctl")
#: The params the stage reads (as in dvc.yaml): part of every key.
PARAM_KEYS = (
    "seeds",
    "cluster",
    "evaluate.bootstrap",
    "evaluate.silhouette_sample",
    "data.label_columns",
    "train.features",
)
#: Entries (folders) kept after a run: the ones it used, then the most recently used up to this many
#: in all (five runs of the default 20 representations).
KEEP_ENTRIES = 100


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def code_key() -> bytes:
    """SHA-256 of the stage's source files (:data:`CODE_PATHS`) and library versions (:data:`LIBRARIES`)."""
    h = source_digest(CODE_PATHS)
    for dist in LIBRARIES:
        h.update(f"{dist}={_version(dist)}\0".encode())
    return h.digest()


class ClusterStore:
    """``restore(key, out)`` / ``save(key, out)`` of whole ``data/clusters/<rep>/`` folders."""

    def __init__(self, root: Path | None, stage_file: Path | None = None):
        """``stage_file``: the stage script, whose source is part of the code key too."""
        self.root = Path(root) if root is not None else None
        self.used: set[Path] = set()
        self.hits = 0
        self.misses = 0
        self._code = b""
        if self.root is not None:
            h = hashlib.sha256(code_key())
            if stage_file is not None:
                h.update(Path(stage_file).read_bytes())
            self._code = h.digest()
        self._digests: dict[Path, bytes] = {}

    def _inputs_digest(self, paths: Iterable[Path]) -> bytes:
        """Names and bytes of ``paths`` (files, or folders read whole), each file hashed once per run."""
        h = hashlib.sha256()
        for p in paths:
            p = Path(p)
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            h.update(p.name.encode() + b"\0")
            for f in files:
                if f not in self._digests:
                    self._digests[f] = file_digest(f) if f.exists() else b"missing"
                # names relative to the input: the same bytes elsewhere (another checkout) are a hit
                rel = f.relative_to(p).as_posix() if p.is_dir() else f.name
                h.update(rel.encode() + b"\0" + self._digests[f])
        return h.digest()

    def key(self, rep: str, inputs: Iterable[Path], params: Mapping[str, Any]) -> str | None:
        """The entry key of ``rep`` computed from ``inputs`` under ``params`` (None: store off)."""
        if self.root is None:
            return None
        h = hashlib.sha256(self._code)
        h.update(rep.encode() + b"\0")
        h.update(json.dumps(params, sort_keys=True, default=str).encode() + b"\0")
        h.update(self._inputs_digest(inputs))
        return h.hexdigest()

    def _entry(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / key

    def restore(self, key: str | None, out_dir: Path) -> bool:
        """Fill ``out_dir`` (rewritten whole) from entry ``key``; False when there is none."""
        if key is None:
            return False
        entry = self._entry(key)
        self.used.add(entry)
        if not (entry / "info.json").is_file():
            self.misses += 1
            return False
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        for f in sorted(entry.iterdir()):
            shutil.copyfile(f, out_dir / f.name)
        os.utime(entry)  # most recently used: kept longest by prune()
        self.hits += 1
        return True

    def save(self, key: str | None, out_dir: Path) -> None:
        """Store ``out_dir``'s files as entry ``key`` (a failure to store costs a later run time, not this one)."""
        if key is None:
            return
        entry = self._entry(key)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for f in sorted(out_dir.iterdir()):
                if f.is_file():
                    shutil.copyfile(f, tmp / f.name)
            shutil.rmtree(entry, ignore_errors=True)
            tmp.rename(entry)  # info.json present only in a whole entry
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning("cluster store: cannot store %s: %s", entry, exc)

    def prune(self, keep: int = KEEP_ENTRIES) -> None:
        """Delete the least recently used entries beyond ``keep`` (never one this run used)."""
        if self.root is None or not self.root.is_dir():
            return
        prune_least_recent(
            self.root, self.used, keep, Path.is_dir, lambda old: shutil.rmtree(old, ignore_errors=True)
        )
        log.info(
            "cluster store: %d representation(s) clustered, %d reused (%s)", self.misses, self.hits, self.root
        )
