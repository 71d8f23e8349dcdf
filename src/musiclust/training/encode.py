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
from musiclust.training.streaming import batches, sequential


@torch.no_grad()
def encode_arrays(
    model: LatentModel,
    arrays: Mapping[str, Any],
    device: str | torch.device = "cpu",
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means ``(N, D)`` of input arrays (keys as in a training batch; numpy or
    sharded, read in batches) and the model's own cluster assignments ``(N,)``
    (:meth:`LatentModel.assign`; ``None`` when it has none)."""
    model.eval()
    device = torch.device(device)
    model.to(device)
    mus, clusters = [], []
    for batch in batches(arrays, sequential(len(arrays["x"]), EVAL_BATCH), device, workers):
        mus.append(model.latent(batch).float().cpu().numpy())
        own = model.assign(batch)
        if own is not None:
            clusters.append(own.cpu().numpy())
    mu = np.concatenate(mus) if mus else np.zeros((0, model.latent_dim), np.float32)
    cluster = np.concatenate(clusters).astype(np.int64) if clusters else None
    return mu.astype(np.float32), cluster


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
    mu, cluster = encode_arrays(model, data.arrays, device)
    return latents_frame(data.clips, mu, cluster, int(checkpoint.get("seed", 0))), data
