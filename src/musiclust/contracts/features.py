"""``data/features/``: the output of the ``featurize`` stage, its one reader and writer.

- ``<set>.parquet`` for the vector sets (:data:`VECTOR_SETS`): ``segment_id`` plus named float32
  columns, raw (unscaled) values, rows in the order of ``segments.parquet``;
- ``scalers.json``: ``{set: {"columns", "mean", "scale"}}`` fit on the train split only
  (:class:`Scaler`), which :func:`load_vectors` applies;
- ``<set>/index.parquet`` (``segment_id``, ``shard``, ``row``) + ``<set>/shard-NNNNN.npy`` for the
  tensor sets (:data:`TENSOR_SETS`; :mod:`musiclust.contracts.shards`);
- ``report.json``: counts and shapes, no timings.

Column meanings and the computation: :mod:`musiclust.features.extract`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from musiclust.contracts.shards import ShardWriter, shard_path
from musiclust.fileio import read_json, write_json, write_parquet

#: sets written as one ``<set>.parquet`` table each
VECTOR_SETS = ("mfcc_stats", "spectral", "rhythm", "pretrained")
#: vector sets computed by a pretrained model (:mod:`musiclust.features.pretrained`), not by the
#: signal featurizer, which accepts and skips them
MODEL_SETS = ("pretrained",)
#: sets written as ``<set>/`` shards of one fixed-shape tensor per clip
TENSOR_SETS = ("logmel", "mfcc_seq")
SCALERS_FILE = "scalers.json"
REPORT_FILE = "report.json"
INDEX_FILE = "index.parquet"
#: shard name prefix inside a tensor set's folder (``shard-00000.npy``)
TENSOR_PREFIX = "shard"
INDEX_COLUMNS = ["segment_id", "shard", "row"]


@dataclass(frozen=True)
class Scaler:
    """Per-column standardization fit on training songs only."""

    columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def fit(cls, columns: Sequence[str], x_train: np.ndarray) -> Scaler:
        mean = x_train.mean(axis=0)
        scale = x_train.std(axis=0)
        scale = np.where(scale > 1e-8, scale, 1.0)  # constant columns pass through centred
        return cls(tuple(columns), mean.astype(np.float64), scale.astype(np.float64))

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(tuple(d["columns"]), np.asarray(d["mean"], float), np.asarray(d["scale"], float))


def scalers_path(features_dir: str | Path) -> Path:
    """``<features_dir>/scalers.json``."""
    return Path(features_dir) / SCALERS_FILE


def load_scalers(features_dir: str | Path) -> dict[str, Scaler]:
    """The train-split scaler of every vector set, from ``scalers.json``."""
    raw = read_json(scalers_path(features_dir))
    return {name: Scaler.from_dict(d) for name, d in raw.items()}


def read_vector_set(features_dir: str | Path, name: str) -> pd.DataFrame:
    """``<set>.parquet`` as written (``segment_id`` + raw columns)."""
    if name not in VECTOR_SETS:
        raise ValueError(f"{name!r} is not a vector feature set (have {VECTOR_SETS})")
    path = Path(features_dir) / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: feature set {name!r} was not computed; add it to features.sets")
    return pd.read_parquet(path)


def load_vectors(
    features_dir: str | Path, sets: Sequence[str], standardize: bool = True
) -> tuple[pd.Series, np.ndarray, list[str]]:
    """Concatenate vector feature sets column-wise.

    Returns ``(segment_ids, X (n_clips, n_features) float32, column names)``;
    with ``standardize`` each set is scaled with its train-only scaler.
    """
    features_dir = Path(features_dir)
    if not sets:
        raise ValueError("no feature sets requested")
    scalers = load_scalers(features_dir) if standardize else {}
    ids = None
    blocks, names = [], []
    for name in sets:
        df = read_vector_set(features_dir, name)
        path = features_dir / f"{name}.parquet"
        if ids is None:
            ids = df["segment_id"]
        elif not ids.equals(df["segment_id"]):
            raise ValueError(f"{path}: rows are not aligned with the other feature sets")
        cols = [c for c in df.columns if c != "segment_id"]
        x = df[cols].to_numpy(np.float32)
        if standardize:
            sc = scalers[name]
            if list(sc.columns) != cols:
                raise ValueError(f"{features_dir}/scalers.json does not match the columns of {path}")
            x = sc.transform(x)
        blocks.append(x)
        names.extend(cols)
    return ids, np.concatenate(blocks, axis=1), names


def tensor_index(features_dir: str | Path, name: str) -> tuple[pd.DataFrame, list[Path]]:
    """``(index, shard paths)`` of a tensor set; every shard the index uses is checked to exist."""
    d = Path(features_dir) / name
    if not (d / INDEX_FILE).exists():
        raise FileNotFoundError(f"{d}: feature set {name!r} was not computed; add it to features.sets")
    index = pd.read_parquet(d / INDEX_FILE)
    shard_ids = index["shard"].to_numpy(np.int64)
    n_shards = int(shard_ids.max()) + 1 if len(index) else 0
    paths = [shard_path(d, TENSOR_PREFIX, s) for s in range(n_shards)]
    used = set(np.unique(shard_ids).tolist())
    missing = [p.name for s, p in enumerate(paths) if s in used and not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{d}: shard(s) {missing} listed in {INDEX_FILE} are missing; re-run featurize"
        )
    return index, paths


def load_tensors(features_dir: str | Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Load a tensor set: ``(index with segment_id/shard/row, array (n_clips, ...))`` in index order."""
    index, paths = tensor_index(features_dir, name)
    if not len(index):
        return index, np.empty((0,))
    shard_ids, rows = index["shard"].to_numpy(), index["row"].to_numpy()
    arr = None
    # one fancy-indexed read per shard instead of one Python-level copy per clip
    for s in np.unique(shard_ids):
        data = np.load(paths[int(s)], mmap_mode="r")
        if arr is None:
            arr = np.empty((len(index), *data.shape[1:]), dtype=data.dtype)
        sel = shard_ids == s
        arr[sel] = data[rows[sel]]
    return index, arr


# --------------------------------------------------------------------------- writer


def clear(out_dir: str | Path) -> None:
    """Remove what an earlier run wrote (every output is rewritten whole)."""
    out = Path(out_dir)
    for name in VECTOR_SETS:
        (out / f"{name}.parquet").unlink(missing_ok=True)
    for name in TENSOR_SETS:
        shutil.rmtree(out / name, ignore_errors=True)
    for f in (SCALERS_FILE, REPORT_FILE):
        (out / f).unlink(missing_ok=True)


def write_vector_set(
    out_dir: str | Path, name: str, ids: pd.Series, x: np.ndarray, columns: Sequence[str]
) -> None:
    """``<name>.parquet``: ``segment_id`` then ``columns`` (raw values ``x``, rows aligned with ``ids``)."""
    df = pd.DataFrame(x, columns=list(columns))
    df.insert(0, "segment_id", ids)
    write_parquet(df, Path(out_dir) / f"{name}.parquet")


def tensor_writer(
    out_dir: str | Path, name: str, row_shape: Sequence[int], dtype: np.dtype | type
) -> ShardWriter:
    """A streaming writer of tensor set ``name``'s shards (its folder is emptied first)."""
    d = Path(out_dir) / name
    shutil.rmtree(d, ignore_errors=True)
    return ShardWriter(d, TENSOR_PREFIX, row_shape, dtype)


def write_tensor_index(
    out_dir: str | Path, name: str, ids: pd.Series, where: Sequence[tuple[int, int]]
) -> None:
    """``<name>/index.parquet``: each clip's ``(shard, row)`` as the tensor writer returned it."""
    index = pd.DataFrame({"segment_id": ids, "shard": [w[0] for w in where], "row": [w[1] for w in where]})
    write_parquet(index.astype({"shard": np.int64, "row": np.int64}), Path(out_dir) / name / INDEX_FILE)


def write_scalers(out_dir: str | Path, scalers: dict[str, Scaler]) -> None:
    """``scalers.json`` (sets in the order given)."""
    write_json(scalers_path(out_dir), {name: sc.to_dict() for name, sc in scalers.items()})


def write_report(out_dir: str | Path, report: dict) -> None:
    """``report.json`` (no timings: it is a cached output)."""
    write_json(Path(out_dir) / REPORT_FILE, report)
