"""Clips streamed from the feature shards, so memory stays flat in the collection size.

Tensor feature sets (``features/<set>/index.parquet`` + ``shard-*.npy``, float16/int16, see
docs/pipeline.md) are opened memory-mapped as a :class:`ShardedArray`: a lazy view whose rows
are read from disk only when a batch needs them, and converted to float32 per batch (float16
storage, float32 compute). Vector sets are small and stay in memory as numpy arrays; both
kinds index the same way (``a[idx]`` reads rows, :func:`subset` makes a view).

:func:`batches` turns a mapping of such arrays into a torch ``DataLoader`` of float32 tensor
batches in a given order (workers optional, pinned memory on CUDA).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from musiclust.contracts.features import tensor_index
from musiclust.models.base import row_chunks

#: rows per read when a pass over a whole array is needed (finite check, statistics)
CHUNK = 4096


class ShardedArray:
    """Rows ``(shard[i], row[i])`` of memory-mapped ``.npy`` shards, in this view's order.

    ``len``, ``shape``, ``ndim`` and ``dtype`` (the stored dtype) behave like an array's;
    ``a[idx]`` (an int array, a slice or an int) READS those rows into a numpy array of the
    stored dtype; :meth:`subset` returns a new view without reading. Each read maps the shards
    it needs and unmaps them afterwards: pages of a mapping that stays open count toward the
    process's resident memory until it is closed, which would grow with the collection (and
    once per view); a view is just paths and row numbers, so it pickles cheaply to workers.
    """

    def __init__(self, paths: Sequence[Path], shard: np.ndarray, row: np.ndarray) -> None:
        self.paths = [Path(p) for p in paths]
        self.shard = np.asarray(shard, dtype=np.int64)
        self.row = np.asarray(row, dtype=np.int64)
        existing = [p for p in self.paths if p.exists()]
        first = np.load(existing[0], mmap_mode="r") if existing else np.empty((0,))
        self.dtype = first.dtype
        self.item_shape = tuple(first.shape[1:])
        del first

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.shard), *self.item_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    def __len__(self) -> int:
        return len(self.shard)

    def subset(self, idx: np.ndarray) -> ShardedArray:
        """A view of the rows ``idx`` (int positions or a boolean mask); nothing is read."""
        view = ShardedArray.__new__(ShardedArray)
        view.__dict__.update(self.__dict__)
        view.shard, view.row = self.shard[idx], self.row[idx]
        return view

    def __getitem__(self, idx: Any) -> np.ndarray:
        pos = np.arange(len(self))[idx]
        if np.ndim(pos) == 0:
            return self[np.array([pos])][0]
        shard, row = self.shard[pos], self.row[pos]
        out = np.empty((len(pos), *self.item_shape), dtype=self.dtype)
        for s in np.unique(shard):  # one sorted read per shard
            sel = np.flatnonzero(shard == s)
            order = np.argsort(row[sel], kind="stable")
            mapped = np.load(self.paths[int(s)], mmap_mode="r")
            out[sel[order]] = mapped[row[sel][order]]  # fancy indexing copies: no view keeps the map
            del mapped
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row (memory grows with the view: prefer batches or chunks)."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def open_tensor_set(features_dir: str | Path, name: str) -> tuple[pd.DataFrame, ShardedArray]:
    """``(index, lazy rows in index order)`` of a tensor feature set; nothing is read yet."""
    index, paths = tensor_index(features_dir, name)
    return index, ShardedArray(paths, index["shard"].to_numpy(np.int64), index["row"].to_numpy(np.int64))


def subset(a: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of ``a``: a lazy view of a :class:`ShardedArray`, a copy of a numpy array."""
    return a.subset(idx) if isinstance(a, ShardedArray) else a[idx]


def chunks(a: Any, size: int = CHUNK) -> Iterator[np.ndarray]:
    """Consecutive blocks of ``size`` rows of ``a`` (read one at a time)."""
    return row_chunks(a, size)


class ClipBatches(Dataset):
    """Item ``idx`` (a list of row positions) is that batch as float32 tensors, keyed like ``arrays``."""

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self.arrays = dict(arrays)

    def __len__(self) -> int:
        return len(self.arrays["x"])

    def __getitem__(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        pos = np.asarray(idx, dtype=np.int64)
        out = {}
        for k, v in self.arrays.items():
            if isinstance(v, torch.Tensor):
                out[k] = v[torch.as_tensor(pos, device=v.device)].float()
            else:
                # float16 storage -> float32 once per batch, in torch: numpy's half-to-float cast
                # is several times slower (the values are the same: the cast is exact)
                out[k] = torch.from_numpy(np.ascontiguousarray(v[pos])).float()
        return out


def batches(
    arrays: Mapping[str, Any], order: Sequence[np.ndarray], device: torch.device, workers: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Float32 tensor batches on ``device``, one per index array of ``order``, in that order."""
    loader = DataLoader(
        ClipBatches(arrays),
        sampler=list(order),
        batch_size=None,  # the sampler yields whole batches
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # its own generator: a DataLoader otherwise draws a worker seed from torch's global RNG on
        # every pass, which would shift the sampling noise of the models (and change results)
        generator=torch.Generator().manual_seed(0),
    )
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def sequential(n: int, size: int) -> list[np.ndarray]:
    """``[0..size), [size..2 size), ...`` up to ``n``: the order of evaluation and encoding."""
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


def song_batches(song: np.ndarray, size: int, generator: torch.Generator | None = None) -> list[np.ndarray]:
    """Batches of whole songs: the rows of each song together, about ``size`` rows per batch.

    ``song`` ``(N,)`` is each row's song code (the ``"song"`` array of a song-level model). Songs
    come in order of their first row, or in a random order drawn from ``generator``; songs are
    added to a batch until it holds at least ``size`` rows (a song longer than ``size`` is a
    batch alone). A trailing batch of a single song joins the one before it, so that every
    training batch holds at least two songs when there are two.
    """
    if isinstance(song, torch.Tensor):
        song = song.cpu().numpy()
    codes = pd.factorize(pd.Series(np.asarray(song)), sort=False)[0]
    by_song = np.argsort(codes, kind="stable")
    rows = np.split(by_song, np.cumsum(np.bincount(codes))[:-1]) if len(codes) else []
    if generator is not None:
        rows = [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
    out: list[list[np.ndarray]] = []
    filled = size
    for r in rows:
        if filled >= size:
            out.append([])
            filled = 0
        out[-1].append(r)
        filled += len(r)
    if len(out) > 1 and len(out[-1]) == 1:
        last = out.pop()
        out[-1] += last
    return [np.concatenate(b) for b in out]


def eval_order(arrays: Mapping[str, Any], size: int) -> list[np.ndarray]:
    """The order of evaluation and encoding: :func:`sequential`, or whole songs in order of first
    appearance when the arrays carry a ``"song"`` array (a song-level model)."""
    if "song" in arrays:
        return song_batches(arrays["song"], size)
    return sequential(len(arrays["x"]), size)
