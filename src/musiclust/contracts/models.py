"""``models/<key>/``: the output of one ``train@<key>`` stage, its file names, columns and writers.

- ``info.json`` (:data:`INFO_KEYS`, :func:`info_record`): what was trained on what;
- ``metrics.json`` (:func:`metrics_record`): ``applicable``, ``reason``, clip counts and per-seed
  values of :data:`SEED_METRICS` with their means;
- ``history.csv`` (:data:`HISTORY_COLUMNS`): one row per seed and validation pass (``step``:
  optimizer steps taken by then);
- when applicable only: ``seed_<s>.pt`` checkpoints (and ``pretrain_seed_<s>.pt`` for a model with a
  pretraining stage; :func:`checkpoint_path`), ``latents.parquet`` (:data:`LATENT_META` + ``z_..``
  (:func:`latent_columns`), + ``cluster`` for a model with its own assignments) and ``recon.npz``.

Everything here is a function of the run's inputs and params only (no wall-clock time, no
absolute path, no host name), so the folder is byte-identical across re-runs and DVC's
run-cache can restore it. Timings go to the log and to the stage's timings file instead.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.fileio import atomic_write_bytes, read_json, write_json, write_parquet

INFO_FILE = "info.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
LATENTS_FILE = "latents.parquet"
RECON_FILE = "recon.npz"

#: columns of ``history.csv``: one row per seed and validation pass of the main training stage,
#: ``step`` being the optimizer steps taken by then (every ``train.eval_every`` steps)
HISTORY_COLUMNS = [
    "step",
    "seed",
    "train_recon",
    "train_kl",
    "train_total",
    "val_recon",
    "val_kl",
    "val_total",
    "lr",
    "kl_weight",
]
#: per-seed values that metrics.json lists per seed and as a mean over seeds
SEED_METRICS = ("best_val_loss", "first_val_loss", "best_step", "steps")
#: files a run writes besides history.csv, metrics.json and info.json (removed before a run)
MODEL_FILES = (LATENTS_FILE, RECON_FILE)
CHECKPOINT_GLOBS = ("seed_*.pt", "pretrain_seed_*.pt")
#: the columns of latents.parquet before the latent columns ``z_..``
LATENT_META = ["segment_id", "song_id", "split", "seed"]
#: the keys of info.json, in order
INFO_KEYS = (
    "model_key",
    "applicable",
    "reason",
    "level",
    "conditioned_on",
    "inputs",
    "latent_dim",
    "seeds",
    "clips",
    "device",
    "per_seed",
)


def latent_columns(latent_dim: int) -> list[str]:
    """``z_00``, ``z_01``, ... (the column names of every latents table)."""
    return [f"z_{i:02d}" for i in range(latent_dim)]


def checkpoint_path(model_dir: str | Path, seed: int, stage: str = "train") -> Path:
    """``seed_<s>.pt`` (``stage="train"``) or ``pretrain_seed_<s>.pt`` (``stage="pretrain"``)."""
    prefix = {"train": "", "pretrain": "pretrain_"}[stage]
    return Path(model_dir) / f"{prefix}seed_{int(seed)}.pt"


def latents_frame(clips: pd.DataFrame, mu: np.ndarray, cluster: np.ndarray | None, seed: int) -> pd.DataFrame:
    """Per-clip latents table: ``segment_id, song_id, split, seed, z_..`` (+ ``cluster`` when the
    model assigns its own clusters, e.g. VaDE)."""
    df = clips[["segment_id", "song_id", "split"]].reset_index(drop=True).copy()
    df["seed"] = int(seed)
    df = pd.concat([df, pd.DataFrame(mu, columns=latent_columns(mu.shape[1]))], axis=1)
    if cluster is not None:
        df["cluster"] = cluster.astype(np.int64)
    return df


def clear_outputs(out_dir: Path) -> None:
    """Remove a previous run's checkpoints and latents: outputs are rewritten whole."""
    stale = [p for g in CHECKPOINT_GLOBS for p in out_dir.glob(g)]
    stale += [out_dir / name for name in MODEL_FILES if (out_dir / name).exists()]
    for path in stale:
        path.unlink()


def write_history(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """``history.csv`` with :data:`HISTORY_COLUMNS` (just the header when there are no rows)."""
    frame = pd.DataFrame(list(rows), columns=HISTORY_COLUMNS)
    atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A compressed ``.npz`` whose bytes depend on the arrays only.

    ``np.savez_compressed`` stamps each member with the current time; here every member gets
    the fixed zip epoch (1980-01-01), in the order given.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    atomic_write_bytes(path, buf.getvalue())


def clip_counts(n_in: int, n_used: int, n_train: int, n_val: int, n_silent: int) -> dict[str, int]:
    """The clip counts metrics.json carries (flat, ``n_*``)."""
    return {
        "n_clips_in": int(n_in),
        "n_clips": int(n_used),
        "n_train_clips": int(n_train),
        "n_val_clips": int(n_val),
        "n_silent_clips": int(n_silent),
    }


def metrics_record(
    per_seed: Mapping[int, Mapping[str, Any]], counts: Mapping[str, int], reason: str | None
) -> dict[str, Any]:
    """metrics.json: ``applicable``, ``reason``, clip counts, ``seed_<s>_<m>`` and ``<m>_mean``.

    ``m`` is each of :data:`SEED_METRICS`; the per-seed and mean keys are absent when the
    model was not applicable (nothing was trained).
    """
    out: dict[str, Any] = {"applicable": reason is None, "reason": reason, **counts}
    for seed, summary in per_seed.items():
        for k in SEED_METRICS:
            out[f"seed_{seed}_{k}"] = summary[k]
    if per_seed:
        for k in SEED_METRICS:
            out[f"{k}_mean"] = float(np.mean([s[k] for s in per_seed.values()]))
    return out


def info_record(
    key: str,
    *,
    reason: str | None,
    level: str,
    conditioned_on: Sequence[str],
    inputs: Mapping[str, Any],
    latent_dim: int | None,
    seeds: Sequence[int],
    clips: Mapping[str, Any],
    device: str,
    per_seed: Mapping[int, Mapping[str, Any]],
) -> dict[str, Any]:
    """info.json: what was trained on what (``applicable``/``reason`` say whether anything was).

    ``level`` is what one latent describes: ``clip``, or ``song`` for a song-level model, whose
    per-clip latents are its song embedding repeated (its clip-level scores are song-level).
    """
    return {
        "model_key": key,
        "applicable": reason is None,
        "reason": reason,
        "level": level,
        "conditioned_on": list(conditioned_on),
        "inputs": dict(inputs),
        "latent_dim": None if latent_dim is None else int(latent_dim),
        "seeds": [int(s) for s in seeds],
        "clips": dict(clips),
        "device": device,
        "per_seed": {str(s): dict(v) for s, v in per_seed.items()},
    }


# --------------------------------------------------------------------------- writer


def write_latents(out_dir: Path, latents: pd.DataFrame) -> None:
    """``latents.parquet`` (every seed; built by :func:`latents_frame`)."""
    write_parquet(latents, out_dir / LATENTS_FILE)


def write_recon(out_dir: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``recon.npz`` (a few test clips and their reconstructions)."""
    write_npz(out_dir / RECON_FILE, arrays)


def write_records(
    out_dir: Path, history: Iterable[Mapping[str, Any]], metrics: Mapping[str, Any], info: Mapping[str, Any]
) -> None:
    """``history.csv``, ``metrics.json`` and ``info.json`` (written for an applicable model or not)."""
    write_history(out_dir / HISTORY_FILE, history)
    write_json(out_dir / METRICS_FILE, metrics)
    write_json(out_dir / INFO_FILE, info)


# --------------------------------------------------------------------------- reader


def read_info(model_dir: str | Path) -> dict[str, Any]:
    """``info.json`` (``FileNotFoundError`` naming it and the stage to run when absent)."""
    path = Path(model_dir) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro train@{Path(model_dir).name}`")
    return read_json(path)


def read_metrics(model_dir: str | Path) -> dict[str, Any]:
    """``metrics.json``, or an empty mapping when the folder has none."""
    path = Path(model_dir) / METRICS_FILE
    return read_json(path) if path.is_file() else {}


def read_latents(model_dir: str | Path) -> pd.DataFrame:
    """``latents.parquet``, checked for ``segment_id`` and ``seed``."""
    path = Path(model_dir) / LATENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro train@{Path(model_dir).name}`")
    latents = pd.read_parquet(path)
    missing = {"segment_id", "seed"} - set(latents.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {sorted(missing)} (see docs/pipeline.md)")
    return latents


def read_history(model_dir: str | Path) -> pd.DataFrame:
    """``history.csv``."""
    path = Path(model_dir) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro train@{Path(model_dir).name}`")
    return pd.read_csv(path)


def read_recon(model_dir: str | Path) -> dict[str, np.ndarray] | None:
    """All arrays of ``recon.npz`` (no pickles), or ``None`` when training wrote none."""
    path = Path(model_dir) / RECON_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
