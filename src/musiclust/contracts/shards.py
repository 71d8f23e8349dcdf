"""Fixed-shape arrays stored as a few ``.npy`` shards plus a (shard, row) index.

Thousands of one-clip files are slow for DVC and for the file system, so clips (and
tensor features) are appended to a :class:`ShardWriter`, which streams them into the
current shard file and buffers nothing: memory stays flat however long the collection
is. Shards are read back with ``np.load(mmap_mode="r")``.

Clip audio is stored as 16-bit PCM (``int16``, full scale 32768, like a WAV file):
half the size of float32, and its quantization noise (about -96 dBFS) is far below
anything the features resolve after loudness normalization.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Full scale of the int16 clip shards (the WAV convention: sample / 32768).
PCM_SCALE = 32768.0
#: Target size of one shard; a shard always holds at least one row.
DEFAULT_SHARD_BYTES = 32 * 1024 * 1024


def shard_path(directory: str | Path, prefix: str, shard: int) -> Path:
    """Path of shard number ``shard``: ``<directory>/<prefix>-NNNNN.npy``."""
    return Path(directory) / f"{prefix}-{shard:05d}.npy"


def to_pcm16(y: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 (clipped, rounded to nearest)."""
    return np.clip(np.rint(np.asarray(y, np.float32) * PCM_SCALE), -32768, 32767).astype(np.int16)


def from_pcm16(x: np.ndarray) -> np.ndarray:
    """int16 PCM to float32 in [-1, 1)."""
    return np.asarray(x, np.float32) * np.float32(1.0 / PCM_SCALE)


def _npy_header(shape: Sequence[int], dtype: np.dtype, total_len: int | None = None) -> bytes:
    """An ``.npy`` (version 1.0) header for a C-ordered array, padded to ``total_len`` bytes.

    Padding with spaces is what numpy itself does, so a header written for the largest
    possible row count can later be rewritten in place for the actual one.
    """
    d = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(shape),
    }
    text = repr(d).encode("latin1")
    fixed = len(np.lib.format.MAGIC_PREFIX) + 2 + 2  # magic, version, header length
    if total_len is None:
        total_len = -(-(fixed + len(text) + 1) // 64) * 64  # numpy aligns the data to 64 bytes
    pad = total_len - fixed - len(text) - 1
    if pad < 0:
        raise ValueError("npy header does not fit in the reserved space")
    body = text + b" " * pad + b"\n"
    return np.lib.format.MAGIC_PREFIX + bytes([1, 0]) + struct.pack("<H", len(body)) + body


class ShardWriter:
    """Append rows of one fixed shape and dtype to ``<prefix>-NNNNN.npy`` shards, streaming.

    Rows go straight to the open shard file (no buffer): the header is written for the
    largest row count a shard may reach and rewritten with the actual count when the shard
    is closed, so memory does not depend on the shard size or the collection size. A shard
    appears under its final name only when complete (written as a ``.part`` file, then renamed).

    ``add`` returns the ``(shard, row)`` address of every row it was given, which is what
    the index tables (``segments.parquet``, ``<set>/index.parquet``) record.
    """

    def __init__(
        self,
        directory: str | Path,
        prefix: str,
        row_shape: Sequence[int],
        dtype: np.dtype | type,
        rows_per_shard: int | None = None,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        row_bytes = max(1, int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize)
        self.rows_per_shard = int(rows_per_shard or max(1, shard_bytes // row_bytes))
        self._header_len = len(_npy_header((self.rows_per_shard, *self.row_shape), self.dtype))
        self._fh = None
        self._tmp: Path | None = None
        self._fill = 0
        self.n_shards = 0
        self.n_rows = 0
        self._closed = False

    def add(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """Append ``rows`` (shape ``(n, *row_shape)``); returns each row's ``(shard, row)``."""
        if self._closed:
            raise RuntimeError(f"{self.directory}/{self.prefix}: writer already closed")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(
                f"{self.prefix}: rows of shape {rows.shape[1:]} given, writer expects {self.row_shape}"
            )
        where: list[tuple[int, int]] = []
        i = 0
        while i < len(rows):
            if self._fh is None:
                self._open()
            take = min(len(rows) - i, self.rows_per_shard - self._fill)
            self._fh.write(rows[i : i + take].data)
            where.extend((self.n_shards, self._fill + r) for r in range(take))
            self._fill += take
            i += take
            if self._fill == self.rows_per_shard:
                self._finish()
        self.n_rows += len(rows)
        return where

    def close(self) -> int:
        """Finish the last (partial) shard; returns the number of shards written."""
        if not self._closed:
            if self._fh is not None:
                self._finish()
            self._closed = True
        return self.n_shards

    def _open(self) -> None:
        path = shard_path(self.directory, self.prefix, self.n_shards)
        self._tmp = path.with_name(f".{path.name}.part")
        self._fh = self._tmp.open("wb")
        self._fh.write(_npy_header((self.rows_per_shard, *self.row_shape), self.dtype))
        self._fill = 0

    def _finish(self) -> None:
        self._fh.seek(0)
        self._fh.write(_npy_header((self._fill, *self.row_shape), self.dtype, total_len=self._header_len))
        self._fh.close()
        os.replace(self._tmp, shard_path(self.directory, self.prefix, self.n_shards))
        self._fh, self._tmp = None, None
        self.n_shards += 1
        self._fill = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_shards(directory: str | Path, prefix: str) -> int:
    """Delete ``<prefix>-*.npy`` left by an earlier run (outputs are rewritten whole)."""
    n = 0
    for p in Path(directory).glob(f"{prefix}-*.npy"):
        p.unlink()
        n += 1
    return n


class ShardReader:
    """Memory-mapped access to ``<prefix>-NNNNN.npy`` shards by ``(shard, row)``."""

    def __init__(self, directory: str | Path, prefix: str) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self._open: dict[int, np.ndarray] = {}

    def shard(self, shard: int) -> np.ndarray:
        """The whole shard ``shard`` as a read-only memory map."""
        if shard not in self._open:
            path = shard_path(self.directory, self.prefix, shard)
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: shard is missing; re-run the stage that writes {self.prefix}-*.npy"
                )
            self._open[shard] = np.load(path, mmap_mode="r")
        return self._open[shard]

    def rows(self, shards: Sequence[int], rows: Sequence[int]) -> np.ndarray:
        """Stack the rows at the given addresses, in the given order."""
        shards = np.asarray(shards, np.int64)
        rows = np.asarray(rows, np.int64)
        if len(shards) == 0:
            raise ValueError("no rows requested")
        first = self.shard(int(shards[0]))
        out = np.empty((len(rows), *first.shape[1:]), first.dtype)
        # contiguous runs within one shard are copied in one slice (the common case)
        for s in np.unique(shards):
            sel = np.flatnonzero(shards == s)
            out[sel] = self.shard(int(s))[rows[sel]]
        return out
