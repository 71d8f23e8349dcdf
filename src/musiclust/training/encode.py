"""Encode clips with a trained model: per-clip and per-song latents (posterior means)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from musiclust.models.base import LatentModel
from musiclust.training.data import ClipData, load_clip_data
from musiclust.training.loop import EVAL_BATCH
from musiclust.training.streaming import batches, eval_order


def latent_columns(latent_dim: int) -> list[str]:
    """``z_00``, ``z_01``, ... (the column names of every latents table)."""
    return [f"z_{i:02d}" for i in range(latent_dim)]


@torch.no_grad()
def encode_arrays(
    model: LatentModel,
    arrays: Mapping[str, Any],
    device: str | torch.device = "cpu",
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means ``(N, D)`` of input arrays (keys as in a training batch; numpy or
    sharded, read in batches) and the model's own cluster assignments ``(N,)``
    (:meth:`LatentModel.assign`; ``None`` when it has none). A song-level model's batches
    hold whole songs, so each row gets the latent of its song encoded from all its rows here."""
    model.eval()
    device = torch.device(device)
    model.to(device)
    mus, clusters = [], []
    order = eval_order(arrays, EVAL_BATCH)
    for batch in batches(arrays, order, device, workers):
        mus.append(model.latent(batch).float().cpu().numpy())
        own = model.assign(batch)
        if own is not None:
            clusters.append(own.cpu().numpy())
    mu = np.concatenate(mus) if mus else np.zeros((0, model.latent_dim), np.float32)
    cluster = np.concatenate(clusters).astype(np.int64) if clusters else None
    rows = np.concatenate(order) if order else np.zeros(0, np.int64)
    if not np.array_equal(rows, np.arange(len(rows))):  # song batches: back to the rows' order
        back = np.empty_like(rows)
        back[rows] = np.arange(len(rows))
        mu = mu[back]
        cluster = None if cluster is None else cluster[back]
    return mu.astype(np.float32), cluster


def encode_data(
    model: LatentModel, data: ClipData, device: str | torch.device = "cpu", workers: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`encode_arrays` of every clip of ``data``, in its row order.

    A song-level model (``level`` "song") encodes each song from its non-silent clips (from all
    of them when every clip is silent, the rule of :func:`song_latents`) and gives that latent
    to every clip of the song, silent ones included: the song mean of its clip latents is then
    exactly the song embedding, whichever clips a later step keeps.
    """
    if model.level != "song":
        return encode_arrays(model, data.arrays, device, workers)
    silent = data.clips["is_silent"].to_numpy(bool)
    song = data.clips["song_id"].astype(str)
    all_silent = pd.Series(silent).groupby(song.to_numpy()).transform("all").to_numpy(bool)
    use = ~silent | all_silent
    mu_use, cluster_use = encode_arrays(model, data.select(use), device, workers)
    first = pd.Series(np.arange(int(use.sum())), index=song[use].to_numpy()).groupby(level=0).first()
    pos = first.reindex(song.to_numpy()).to_numpy(np.int64)
    return mu_use[pos], None if cluster_use is None else cluster_use[pos]


def latents_frame(clips: pd.DataFrame, mu: np.ndarray, cluster: np.ndarray | None, seed: int) -> pd.DataFrame:
    """Per-clip latents table: ``segment_id, song_id, split, seed, z_..`` (+ ``cluster`` when the
    model assigns its own clusters, e.g. VaDE)."""
    df = clips[["segment_id", "song_id", "split"]].reset_index(drop=True).copy()
    df["seed"] = int(seed)
    df = pd.concat([df, pd.DataFrame(mu, columns=latent_columns(mu.shape[1]))], axis=1)
    if cluster is not None:
        df["cluster"] = cluster.astype(np.int64)
    return df


def song_latents(latents: pd.DataFrame, is_silent: np.ndarray | None = None) -> pd.DataFrame:
    """Mean of each song's clip latents per seed: ``song_id, split, seed, z_..``.

    Silent clips (``is_silent``, aligned with ``latents``) are left out of the mean unless
    every clip of the song is silent, so a quiet intro does not pull a song toward silence.
    """
    zc = [c for c in latents.columns if c.startswith("z_")]
    df = latents.copy()
    silent = np.zeros(len(df), bool) if is_silent is None else np.asarray(is_silent, bool)
    df["_silent"] = silent
    all_silent = df.groupby(["seed", "song_id"])["_silent"].transform("all")
    use = df[~df["_silent"] | all_silent]
    out = use.groupby(["seed", "song_id"], sort=True).agg({"split": "first", **{c: "mean" for c in zc}})
    return out.reset_index()[["song_id", "split", "seed", *zc]]


def encode_clips(
    model: LatentModel,
    checkpoint: Mapping[str, Any],
    segments: pd.DataFrame,
    features_dir: str | Path,
    lyrics: pd.DataFrame | None = None,
    device: str | torch.device = "cpu",
) -> tuple[pd.DataFrame, ClipData]:
    """Encode new clips with a loaded model (see :func:`musiclust.models.load_model`).

    ``segments`` needs ``segment_id``, ``song_id``, ``split`` (any value, e.g. ``"new"``); for
    the CVAE also the condition column. Features are read from ``features_dir`` exactly as the
    checkpoint's ``inputs`` describe (same feature sets and columns, standardized with the
    scalers found there); lyrics are needed by ``multimodal`` and ``hybrid``. Returns the
    latents table (``segment_id, song_id, split, seed, z_..`` [+ ``cluster``]) and the
    :class:`ClipData` (whose ``skipped`` counts clips that could not be encoded).
    """
    inputs = checkpoint["inputs"]
    data = load_clip_data(
        segments,
        features_dir,
        x_kind=inputs["x_kind"],
        needs=type(model).needs,
        feature_sets=inputs.get("feature_sets", ()),
        lyrics=lyrics,
        condition=(inputs.get("condition") or {}).get("column"),
        condition_values=(inputs.get("condition") or {}).get("values"),
        expected_columns=inputs.get("columns"),
    )
    mu, cluster = encode_data(model, data, device)
    return latents_frame(data.clips, mu, cluster, int(checkpoint.get("seed", 0))), data
