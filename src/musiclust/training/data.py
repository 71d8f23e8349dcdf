"""Assemble a model's inputs for every clip: audio features, lyrics embedding, condition.

Reads the featurize/embed_lyrics outputs through their contracts (docs/pipeline.md) and
aligns them to ``segments.parquet`` by ``segment_id`` / ``song_id``. Nothing is dropped
silently: every clip that cannot be used is counted under a reason in ``ClipData.skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import lyrics as lyrics_contract
from musiclust.contracts import segments as segments_contract
from musiclust.contracts.features import load_vectors
from musiclust.training.streaming import ShardedArray, chunks, open_tensor_set, subset

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The inputs a model needs are missing or inconsistent."""


@dataclass
class ClipData:
    """One model's inputs for every usable clip.

    ``clips`` (``segment_id``, ``song_id``, ``split``, ``is_silent``) is row-aligned with every
    array in ``arrays``: ``x`` (audio: ``(N, F)`` standardized vector, or ``(N, n_mels, frames)``
    log-mel as a memory-mapped :class:`~musiclust.training.streaming.ShardedArray` read per
    batch), and where the model needs them ``text`` ``(N, E)``, ``has_text`` ``(N,)``,
    ``cond`` ``(N, C)`` one-hot.
    """

    clips: pd.DataFrame
    arrays: dict[str, np.ndarray]
    dims: dict[str, Any]
    inputs: dict[str, Any]
    n_in: int
    skipped: dict[str, int] = field(default_factory=dict)

    def select(self, mask: np.ndarray) -> dict[str, Any]:
        """Arrays for the rows where ``mask`` is true (sharded ones stay lazy views)."""
        return {k: subset(v, mask) for k, v in self.arrays.items()}

    def split_mask(self, split: str, include_silent: bool = False) -> np.ndarray:
        """Rows of ``split`` (``train``/``val``/``test``), silent clips excluded unless asked."""
        m = (self.clips["split"] == split).to_numpy().copy()
        if not include_silent:
            m &= ~self.clips["is_silent"].to_numpy(bool)
        return m


def load_clip_data(
    segments: pd.DataFrame,
    features_dir: str | Path,
    *,
    x_kind: str,
    needs: Sequence[str] = (),
    feature_sets: Sequence[str] = ("mfcc_stats",),
    lyrics: pd.DataFrame | None = None,
    condition: str | None = None,
    condition_values: Sequence[str] | None = None,
    expected_columns: Sequence[str] | None = None,
) -> ClipData:
    """Build a model's inputs for the clips of ``segments``.

    ``x_kind`` is ``"vector"`` (``feature_sets`` through the train-only scalers) or
    ``"logmel"`` / ``"mfcc_seq"`` (raw tensors, streamed from their shards). ``needs`` may add ``"text"`` (requires ``lyrics``),
    ``"song"`` (each clip's song code) and ``"cond"`` (one-hot of the metadata column ``condition``; the values are taken from the
    data unless ``condition_values`` fixes them, as when re-encoding with a trained model).
    ``expected_columns`` checks that the feature columns match a trained model's.
    """
    segments = segments.reset_index(drop=True)
    n_in = len(segments)
    skipped: dict[str, int] = {}
    keep = np.ones(n_in, dtype=bool)
    ids, x, inputs, dims = _read_audio(features_dir, x_kind, feature_sets, expected_columns)
    x_all = _align_x(segments, features_dir, ids, x, inputs["feature_sets"], skipped, keep)
    arrays: dict[str, Any] = {"x": x_all}
    if "text" in needs:
        if lyrics is None:
            raise TrainingDataError("this model needs lyrics embeddings but no lyrics table was given")
        arrays["text"], arrays["has_text"], dims["text_dim"], inputs["text"] = _text_inputs(segments, lyrics)
    if "cond" in needs:
        arrays["cond"], dims["condition_values"], inputs["condition"] = _condition_inputs(
            segments, condition, condition_values
        )
    if "song" in needs:
        arrays["song"] = song_codes(segments["song_id"])
    clips = segments[list(segments_contract.KEY_COLUMNS)].copy()
    clips["is_silent"] = (
        segments["is_silent"].fillna(False).astype(bool) if "is_silent" in segments else False
    )
    if skipped:
        log.warning("%d of %d clips cannot be used: %s", n_in - keep.sum(), n_in, skipped)
    return ClipData(
        clips=clips[keep].reset_index(drop=True),
        arrays={k: subset(v, keep) for k, v in arrays.items()},
        dims=dims,
        inputs=inputs,
        n_in=n_in,
        skipped=skipped,
    )


def _align_x(
    segments: pd.DataFrame,
    features_dir: str | Path,
    ids: pd.Series,
    x: Any,
    feature_sets: Any,
    skipped: dict[str, int],
    keep: np.ndarray,
) -> Any:
    """``x`` rows in the order of ``segments`` (row 0 where a clip has none).

    Clips without feature rows or with non-finite features are marked in ``keep`` and counted in
    ``skipped`` (both updated in place); a duplicated ``segment_id`` in the features is an error.
    """
    pos = pd.Series(np.arange(len(ids)), index=pd.Index(ids.astype(str)))
    if pos.index.has_duplicates:
        raise TrainingDataError(f"{features_dir}: duplicate segment_id rows in the {feature_sets} features")
    rows = pos.reindex(segments["segment_id"].astype(str)).to_numpy()
    no_feat = np.isnan(rows)
    _skip(skipped, keep, no_feat, "no_features")
    rows_i = np.where(no_feat, 0, rows).astype(np.int64)
    x_all = subset(x, rows_i) if isinstance(x, ShardedArray) else np.asarray(x)[rows_i].astype(np.float32)
    if len(segments):  # chunk by chunk: a sharded x is never read whole
        finite = np.concatenate([np.isfinite(c.reshape(len(c), -1)).all(axis=1) for c in chunks(x_all)])
        _skip(skipped, keep, ~finite & keep, "non_finite_features")
    return x_all


def _read_audio(
    features_dir: str | Path,
    x_kind: str,
    feature_sets: Sequence[str],
    expected_columns: Sequence[str] | None,
) -> tuple[pd.Series, Any, dict[str, Any], dict[str, Any]]:
    """``(segment_ids, x, inputs description, dims)`` of the audio input kind ``x_kind``
    (``x``: float32 array for vectors, a lazy :class:`ShardedArray` for log-mel patches)."""
    inputs: dict[str, Any] = {"x_kind": x_kind}
    if x_kind == "vector":
        ids, x, columns = load_vectors(features_dir, list(feature_sets), standardize=True)
        if expected_columns is not None and list(expected_columns) != list(columns):
            raise TrainingDataError(
                f"{features_dir}: feature columns differ from the ones the model was trained on "
                f"({len(columns)} vs {len(expected_columns)}); featurize with the same features params"
            )
        inputs.update(
            feature_sets=list(feature_sets), columns=list(columns), standardized="scalers.json (train split)"
        )
        dims: dict[str, Any] = {"audio_dim": int(np.asarray(x).shape[1])}
    elif x_kind in ("logmel", "mfcc_seq"):
        index, x = open_tensor_set(features_dir, x_kind)
        ids = index["segment_id"]
        if x.ndim != 3:
            raise TrainingDataError(
                f"{features_dir}/{x_kind}: expected (n, n_bands, frames) tensors, got {x.shape}"
            )
        inputs.update(feature_sets=[x_kind], shape=[int(x.shape[1]), int(x.shape[2])])
        dims = {f"{x_kind}_shape": inputs["shape"]}  # logmel_shape | mfcc_seq_shape
    else:
        raise TrainingDataError(f"unknown input kind {x_kind!r}")
    if len(ids) == 0:
        raise TrainingDataError(
            f"{features_dir}: the {inputs['feature_sets']} features have no rows; re-run featurize"
        )
    return ids, x, inputs, dims


#: song codes travel as float32 (every batch array does); above this they would not be exact
MAX_SONGS = 2**24


def song_codes(song_id: pd.Series) -> np.ndarray:
    """Each clip's song as an integer code (order of first appearance) stored as float32 ``(N,)``:
    the ``"song"`` input of a song-level model, which groups a batch's clips by it."""
    codes, songs = pd.factorize(song_id.astype(str), sort=False)
    if len(songs) > MAX_SONGS:
        raise TrainingDataError(f"{len(songs)} songs: song-level models support at most {MAX_SONGS}")
    return codes.astype(np.float32)


def _text_inputs(
    segments: pd.DataFrame, lyrics: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
    """Per-clip lyrics embedding ``(N, E)`` (zero without text), ``has_text`` ``(N,)``, ``E``, description.

    A song has text where its ``text_source`` is not ``none`` (``lyrics`` or an
    ``audio_description``); tables without that column fall back to ``has_lyrics``.
    """
    emb_cols = lyrics_contract.embedding_columns(lyrics)
    first = lyrics.drop_duplicates("song_id")
    joined = first.set_index(first["song_id"].astype(str)).reindex(segments["song_id"].astype(str))
    text = joined[emb_cols].to_numpy(np.float32)
    if "text_source" in joined:
        present = joined["text_source"].fillna("none").astype(str).ne("none").to_numpy()
    elif "has_lyrics" in joined:
        present = joined["has_lyrics"].fillna(False).to_numpy(bool)
    else:
        present = ~np.isnan(text).any(1)
    no_row = joined[emb_cols[0]].isna().to_numpy()
    bad = ~np.isfinite(text).all(axis=1) & ~no_row
    if no_row.any():
        log.warning(
            "%d clips belong to songs missing from the lyrics table: treated as without lyrics", no_row.sum()
        )
    if bad.any():
        log.warning("%d clips have non-finite lyrics embeddings: treated as without lyrics", bad.sum())
    has_text = present & ~no_row & ~bad
    description = {
        "table": "lyrics.parquet",
        "columns": emb_cols,
        "encoder": str(lyrics["encoder"].iloc[0]) if "encoder" in lyrics.columns and len(lyrics) else None,
        "clips_with_lyrics": int(has_text.sum()),
        "clips_without_lyrics": int((~has_text).sum()),
    }
    text = np.where(has_text[:, None], np.nan_to_num(text), 0.0).astype(np.float32)
    return text, has_text.astype(np.float32), len(emb_cols), description


def _condition_inputs(
    segments: pd.DataFrame, condition: str | None, condition_values: Sequence[str] | None
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """One-hot ``(N, C)`` of the metadata column ``condition``, its values, and a description."""
    if not condition or condition not in segments.columns:
        raise TrainingDataError(
            f"condition column {condition!r} is not in segments.parquet (have {sorted(segments.columns)}); "
            "the cvae_<column> models need that column in data.label_columns"
        )
    values = segments[condition]
    known = (
        sorted({str(v) for v in values.dropna()})
        if condition_values is None
        else [str(v) for v in condition_values]
    )
    lookup = {v: i for i, v in enumerate(known)}
    idx = np.array([lookup.get(str(v), -1) if pd.notna(v) else -1 for v in values], dtype=np.int64)
    n = len(segments)
    cond = np.zeros((n, len(known)), np.float32)
    cond[np.arange(n)[idx >= 0], idx[idx >= 0]] = 1.0
    if (idx < 0).any():
        log.warning(
            "%d clips have a missing or unseen %r value: all-zero condition", (idx < 0).sum(), condition
        )
    description = {"column": condition, "values": known, "clips_unconditioned": int((idx < 0).sum())}
    return cond, known, description


def not_applicable_reason(data: ClipData, needs: Sequence[str], condition: str | None = None) -> str | None:
    """Why a model with these ``needs`` cannot be trained on ``data`` (one line), or ``None``.

    A text model needs at least one clip whose song has a text (not all ``text_source`` none);
    a conditional model needs a condition with at least two classes among the TRAIN clips.
    Training on all-zero inputs instead would give numbers that look like results.
    """
    if "text" in needs and not (data.arrays["has_text"] > 0.5).any():
        return "no song has lyrics (lyrics.parquet: has_lyrics false / text_source none for every song)"
    if "cond" in needs:
        values = data.dims.get("condition_values") or []
        if not values:
            return f"condition column {condition!r} is empty for every clip"
        train = data.split_mask("train")
        n_classes = int((data.arrays["cond"][train].sum(axis=0) > 0).sum())
        if n_classes < 2:
            return f"condition column {condition!r} has {n_classes} class(es) in the train split; need at least 2"
    return None


def _skip(skipped: dict[str, int], keep: np.ndarray, mask: np.ndarray, reason: str) -> None:
    n = int((mask & keep).sum())
    if n:
        skipped[reason] = skipped.get(reason, 0) + n
        keep &= ~mask
