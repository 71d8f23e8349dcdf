"""Reading the featurize stage's outputs: vector tables, train-only scalers, tensor shards.

Layout (see docs/pipeline.md): ``<set>.parquet`` for vector sets (``segment_id`` plus
named columns, raw values), ``scalers.json`` with the train-split mean/scale of each
vector set, and ``<set>/index.parquet`` + ``<set>/shard-*.npy`` for tensor sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from musiclust.fileio import read_json

VECTOR_SETS = ("mfcc_stats", "spectral", "rhythm", "pretrained")
TENSOR_SETS = ("logmel", "mfcc_seq")


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


def load_scalers(features_dir: str | Path) -> dict[str, Scaler]:
    raw = read_json(Path(features_dir) / "scalers.json")
    return {name: Scaler.from_dict(d) for name, d in raw.items()}


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
        if name not in VECTOR_SETS:
            raise ValueError(f"{name!r} is not a vector feature set (have {VECTOR_SETS})")
        path = features_dir / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: feature set {name!r} was not computed; add it to features.sets")
        df = pd.read_parquet(path)
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


def load_tensors(features_dir: str | Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Load a tensor set: ``(index with segment_id/shard/row, array (n_clips, ...))`` in index order."""
    d = Path(features_dir) / name
    if not (d / "index.parquet").exists():
        raise FileNotFoundError(f"{d}: feature set {name!r} was not computed; add it to features.sets")
    index = pd.read_parquet(d / "index.parquet")
    if not len(index):
        return index, np.empty((0,))
    shard_ids, rows = index["shard"].to_numpy(), index["row"].to_numpy()
    arr = None
    # one fancy-indexed read per shard instead of one Python-level copy per clip
    for s in np.unique(shard_ids):
        data = np.load(d / f"shard-{int(s):05d}.npy", mmap_mode="r")
        if arr is None:
            arr = np.empty((len(index), *data.shape[1:]), dtype=data.dtype)
        sel = shard_ids == s
        arr[sel] = data[rows[sel]]
    return index, arr
