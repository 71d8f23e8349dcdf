"""Encode clips with a trained model: per-clip latents (posterior means)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from musiclust.contracts.models import latents_frame
from musiclust.models.base import LatentModel
from musiclust.training.data import ClipData, load_clip_data
from musiclust.training.loop import EVAL_BATCH
from musiclust.training.streaming import batches, eval_order


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
    of them when every clip is silent) and gives that latent to every clip of the song, silent
    ones included: the song mean of its clip latents (the cluster stage's, which leaves silent
    clips out) is then exactly the song embedding.
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
