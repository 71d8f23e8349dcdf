"""``musiclust assign``: place new audio files among a trained model's clusters.

The files go through exactly the pipeline's own path: decode + loudness normalization +
windowing (:func:`musiclust.audio.segment.prepare_song`), the featurizer
(:func:`musiclust.features.pipeline.featurize_segments`) standardized with the pipeline's
train-split scalers, the lyrics encoder when the model reads lyrics, and the trained model's
encoder (:func:`musiclust.training.encode.encode_clips`). A song's latent is the mean of its
non-silent clips' latents, the same song-level vector the cluster stage clusters at level
``song_mean``; the song joins the cluster whose centroid (mean of that cluster's training
songs) is nearest, which is what K-Means' ``predict`` does with the fitted centroids.

Before any of that, the command checks that the checkpoint, the pipeline's outputs and the
current ``params.yaml`` agree (sample rate, window, feature columns, tensor shapes, scalers)
and refuses with a message naming the mismatch otherwise: a model fed differently computed
features would place songs at random without any error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.clustering.representations import Units, song_means
from musiclust.contracts import clusters as cluster_contract
from musiclust.contracts.features import scalers_path
from musiclust.contracts.models import checkpoint_path
from musiclust.contracts.raw import read_songs
from musiclust.contracts.segments import read_report as read_segment_report
from musiclust.contracts.segments import read_segments, segment_id
from musiclust.fileio import read_json, safe_id

log = logging.getLogger(__name__)


class AssignError(RuntimeError):
    """The command cannot run as asked; the message says why and what to do."""


@dataclass
class SongPlacement:
    """Where one input file landed."""

    file: str
    song_id: str
    status: str  # "ok" | "skipped"
    reason: str | None = None
    n_clips: int = 0
    cluster: int | None = None
    distance: float | None = None
    makeup: dict[str, dict[str, float]] = field(default_factory=dict)
    cluster_size: int = 0
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    #: the song's vector (mean of its clips' latents) and an excerpt ``(samples, rate, start_s)``,
    #: kept for ``--explore``; not printed
    vector: np.ndarray | None = field(default=None, repr=False)
    excerpt: tuple[np.ndarray, int, float] | None = field(default=None, repr=False)

    def printable(self) -> dict[str, Any]:
        """The placement as JSON-ready values (without the vector and the audio)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("vector", "excerpt")}


@dataclass
class ClusterSpace:
    """A model's song-level clustering: known song vectors, their clusters, the centroids."""

    columns: list[str]
    song_ids: np.ndarray
    x: np.ndarray  # (n_songs, d)
    clusters: np.ndarray  # (n_songs,)
    centroid_ids: np.ndarray  # (k,)
    centroids: np.ndarray  # (k, d)
    run: str

    def nearest_centroid(self, z: np.ndarray) -> tuple[int, float]:
        """``(cluster id, distance)`` of the centroid nearest to ``z`` (d,)."""
        d = np.linalg.norm(self.centroids - z[None, :], axis=1)
        i = int(np.argmin(d))
        return int(self.centroid_ids[i]), float(d[i])

    def neighbours(self, z: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The ``n`` known songs nearest to ``z``."""
        d = np.linalg.norm(self.x - z[None, :], axis=1)
        order = np.argsort(d, kind="stable")[:n]
        return [(str(self.song_ids[i]), float(d[i])) for i in order]


# --------------------------------------------------------------------------- checks


def check_compatibility(
    ckpt: dict[str, Any], params: Any, segment_report: dict[str, Any] | None, scalers: dict[str, Any] | None
) -> list[str]:
    """Every way the checkpoint, the pipeline's outputs and ``params`` disagree (empty: all agree).

    ``segment_report`` is ``data/segments/report.json`` (what the training clips were cut
    with); ``scalers`` is ``data/features/scalers.json``.
    """
    problems: list[str] = []
    inputs = ckpt.get("inputs") or {}
    sr = int(params.audio.sample_rate)
    if segment_report:
        problems += _clip_problems(segment_report, params, sr)
    sets = list(inputs.get("feature_sets") or [])
    if not sets:
        problems.append("the checkpoint does not record its feature sets (inputs.feature_sets); retrain it")
        return problems
    problems += _column_problems(inputs, sets, params, sr, scalers)
    if inputs.get("shape") is not None and "logmel" in sets:
        want = [int(params.features.n_mels), int(params.features.logmel_frames)]
        if [int(v) for v in inputs["shape"]] != want:
            problems.append(
                f"the checkpoint expects logmel patches of {inputs['shape']}, params give {want} "
                "(features.n_mels, features.logmel_frames)"
            )
    return problems


def _clip_problems(segment_report: dict[str, Any], params: Any, sr: int) -> list[str]:
    """How the training clips were cut (segment report) differs from ``params.audio``/``params.segment``."""
    problems: list[str] = []
    audio = segment_report.get("audio") or {}
    if audio.get("sample_rate") not in (None, sr):
        problems.append(
            f"the model's clips were cut at {audio['sample_rate']} Hz but audio.sample_rate is {sr}"
        )
    if audio.get("loudness_normalize") not in (None, params.audio.loudness_normalize):
        problems.append(
            f"the model's clips used audio.loudness_normalize={audio['loudness_normalize']}, "
            f"params say {params.audio.loudness_normalize}"
        )
    seg = segment_report.get("params") or {}
    for key in ("window_s", "hop_s", "silence_db"):
        if key in seg and float(seg[key]) != float(getattr(params.segment, key)):
            problems.append(
                f"the model's clips used segment.{key}={seg[key]}, params say {getattr(params.segment, key)}"
            )
    return problems


def _column_problems(
    inputs: dict[str, Any], sets: list[str], params: Any, sr: int, scalers: dict[str, Any] | None
) -> list[str]:
    """How the checkpoint's feature columns (and the scalers') differ from what ``params`` computes."""
    from musiclust.contracts.features import MODEL_SETS
    from musiclust.features.extract import FeatureConfig, feature_columns

    cfg = FeatureConfig.from_params(sr, dataclasses.replace(params.features, sets=tuple(sets)))
    if not (inputs.get("x_kind") == "vector" or inputs.get("columns")):
        return []
    problems: list[str] = []
    cols = feature_columns(cfg)
    have = list(inputs.get("columns") or [])
    for s in sets:
        if s in MODEL_SETS:  # a model's width is known once it is loaded: the pipeline's scaler has it
            known = (scalers or {}).get(s, {}).get("columns")
            cols[s] = list(known) if known else [c for c in have if c.startswith(f"{s}_")]
    expected = [c for s in sets for c in cols.get(s, [])]
    if have != expected:
        diff = next(
            (f"{a!r} vs {b!r}" for a, b in zip(have, expected) if a != b),
            f"{len(have)} vs {len(expected)} columns",
        )
        problems.append(
            f"feature columns differ between the checkpoint and the current features params "
            f"(features.n_mfcc={params.features.n_mfcc}, ...): {diff}"
        )
    if scalers is not None:
        for s in sets:
            if s not in scalers:
                problems.append(f"data/features/scalers.json has no scaler for {s!r}")
            elif list(scalers[s].get("columns", [])) != cols.get(s, []):
                problems.append(
                    f"data/features/scalers.json columns of {s!r} do not match the current params"
                )
    return problems


# --------------------------------------------------------------------------- steps


def segment_files(
    files: Sequence[Path], params: Any, out_dir: Path
) -> tuple[pd.DataFrame, list[SongPlacement]]:
    """Decode and window each file like the segment stage; write clips as int16 shards in ``out_dir``.

    Returns ``(segments table, one placement per file)``; undecodable or too-short files get
    ``status="skipped"`` with the reason and do not stop the others.
    """
    from musiclust.audio.io import AudioDecodeError, load_audio
    from musiclust.audio.segment import SkipSong, prepare_song
    from musiclust.contracts import segments as segments_contract
    from musiclust.contracts.shards import ShardWriter, to_pcm16

    sr = int(params.audio.sample_rate)
    window = int(round(params.segment.window_s * sr))
    rows, placements, used = [], [], set()
    with ShardWriter(out_dir, segments_contract.AUDIO_PREFIX, (window,), np.int16) as writer:
        for f in files:
            sid = safe_id(Path(f).stem)
            while sid in used:  # two files with one stem: keep both
                sid = f"{sid}_"
            used.add(sid)
            p = SongPlacement(file=str(f), song_id=sid, status="ok")
            placements.append(p)
            try:
                # download.max_duration_s: the longest song the pipeline takes in, so the longest one
                # placed among its songs; checked from the header before anything is decoded
                y = load_audio(f, sr, max_duration_s=params.download.max_duration_s)
                w, _gain = prepare_song(y, sr, params.audio, params.segment)
            except AudioDecodeError as exc:
                p.status, p.reason = "skipped", f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason
                continue
            except SkipSong as exc:
                p.status, p.reason = "skipped", f"{exc.reason} ({exc.detail})"
                continue
            where = writer.add(to_pcm16(w.audio))
            p.n_clips = len(where)
            rows += _clip_rows(sid, w, where)
    seg = pd.DataFrame(rows, columns=segments_contract.CLIP_COLUMNS)
    report = {"audio": {"sample_rate": sr, "prefix": segments_contract.AUDIO_PREFIX}}
    segments_contract.write(out_dir, seg, report)
    return seg, placements


def _clip_rows(song_id: str, w: Any, where: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Segment-table rows of one song's windows ``w`` (from ``prepare_song``) stored at ``where`` (shard, row)."""
    return [
        {
            "segment_id": segment_id(song_id, w.window_index[j]),
            "song_id": song_id,
            "clip_index": int(w.window_index[j]),
            "start_s": float(w.start_s[j]),
            "end_s": float(w.end_s[j]),
            "split": "new",
            "is_silent": bool(w.is_silent[j]),
            "shard": int(shard),
            "row": int(row),
        }
        for j, (shard, row) in enumerate(where)
    ]


def featurize_new(
    seg_dir: Path, feat_dir: Path, params: Any, sets: Sequence[str], pipeline_features: Path
) -> None:
    """Featurize the new clips, then standardize with the pipeline's train-split scalers."""
    from musiclust.features.pipeline import featurize_segments

    feats = dataclasses.replace(params.features, sets=tuple(sets), workers=1)
    # new clips are never "train": the featurizer warns that it fits scalers on all of them,
    # which does not matter here because they are replaced by the corpus's scalers below
    flog = logging.getLogger("musiclust.features.pipeline")
    level = flog.level
    flog.setLevel(logging.ERROR)
    try:
        featurize_segments(seg_dir, feat_dir, int(params.audio.sample_rate), feats)
    finally:
        flog.setLevel(level)
    # featurize_segments fits scalers on the new clips; the model was trained with the corpus's
    shutil.copyfile(scalers_path(pipeline_features), scalers_path(feat_dir))


def embed_new_lyrics(
    root: Path, placements: Sequence[SongPlacement], lyrics_files: Sequence[Path | None], params: Any
) -> pd.DataFrame:
    """Lyrics embeddings of the new songs, with the encoder fit exactly as the pipeline fits it.

    Encoders that learn from text (``tfidf-char``) are fit on the corpus's training songs only,
    so they are refit here on the same songs (deterministic) with the new songs added as
    non-training rows. Songs without a lyrics file get the zero vector and ``has_lyrics`` False.
    """
    from musiclust.text.embed import embed_songs

    known = read_songs(root / "data" / "raw", columns=["song_id", "lyrics", "has_lyrics"])
    seg = read_segments(root / "data" / "segments", columns=["song_id", "split"], require=())
    splits = seg.drop_duplicates("song_id").set_index("song_id")["split"]
    new_rows = []
    for p, lf in zip(placements, lyrics_files):
        text = Path(lf).read_text(encoding="utf-8") if lf is not None else None
        new_rows.append(
            {"song_id": f"new::{p.song_id}", "lyrics": text, "has_lyrics": bool(text and text.strip())}
        )
    songs = pd.concat([known, pd.DataFrame(new_rows)], ignore_index=True)
    all_splits = pd.concat([splits, pd.Series({r["song_id"]: "new" for r in new_rows})])
    table, _ = embed_songs(songs, all_splits, params.lyrics)
    out = table[table["song_id"].str.startswith("new::")].copy()
    out["song_id"] = out["song_id"].str.slice(len("new::"))
    return out.reset_index(drop=True)


def load_cluster_space(
    clusters_dir: Path, key: str, seed: int, algorithm: str, label: str | None
) -> ClusterSpace:
    """The model's song-level (``song_mean``) clustering at ``seed`` with ``algorithm``.

    Reads ``data/clusters/<key>/`` through :mod:`musiclust.contracts.clusters`. Among runs with
    several k (``cluster.k: per_label``), the one chosen for ``label`` is used.
    """
    out = _cluster_output(clusters_dir, key)
    vec = out.vectors
    run = _song_run(out.runs, clusters_dir, key, seed, algorithm, label)
    assign = out.assignments[out.assignments["run_id"] == run["run_id"]]
    songs = vec[(vec["level"] == "song_mean") & (vec["seed"] == seed)]
    cols = [c for c in vec.columns if c not in cluster_contract.VECTOR_META]
    songs = songs.merge(assign[["unit_id", "cluster"]], on="unit_id", how="inner")
    if songs.empty:
        raise AssignError(f"{clusters_dir / key}: run {run['run_id']} has no song vectors to compare with")
    if not np.isfinite(songs[cols].to_numpy(np.float64)).all():
        raise AssignError(
            f"{clusters_dir / key}: song vectors of run {run['run_id']} hold NaN or inf values, so no distance "
            "to them means anything; re-run the pipeline (dvc repro)"
        )
    return cluster_space(songs, cols, str(run.get("fit_on", "train")) == "train", str(run["run_id"]))


def cluster_space(songs: pd.DataFrame, cols: list[str], fit_on_train: bool, run: str) -> ClusterSpace:
    """A :class:`ClusterSpace` from one row per song (``song_id``, ``split``, ``cluster``, ``cols``).

    Each centroid is the mean of its cluster's training songs when the clustering was fit on them
    (``fit_on_train``: what K-Means' fitted centres are), of all its songs otherwise or when a
    cluster has no training song.
    """
    x = songs[cols].to_numpy(np.float64)
    clusters = songs["cluster"].to_numpy(np.int64)
    fit = songs["split"].to_numpy() == "train" if fit_on_train else np.ones(len(songs), bool)
    ids, cents = [], []
    for c in sorted(set(clusters.tolist()) - {-1}):
        m = (clusters == c) & fit
        if not m.any():
            m = clusters == c
        ids.append(c)
        cents.append(x[m].mean(axis=0))
    return ClusterSpace(
        cols, songs["song_id"].to_numpy(), x, clusters, np.asarray(ids), np.vstack(cents), run
    )


def _cluster_output(clusters_dir: Path, key: str) -> cluster_contract.ClusterOutput:
    """``data/clusters/<key>/`` as the cluster stage wrote it; refused when not usable for new songs."""
    if not (clusters_dir / key / "info.json").exists():
        have = sorted(p.name for p in clusters_dir.iterdir() if p.is_dir()) if clusters_dir.is_dir() else []
        raise AssignError(
            f"{clusters_dir / key}: model {key!r} was not clustered (have: {', '.join(have) or 'none'}); "
            "run the pipeline (dvc repro) before assigning songs"
        )
    out = cluster_contract.read(clusters_dir / key, tables=("assignments", "runs", "vectors"))
    if not out.applicable:
        raise AssignError(f"{clusters_dir / key}: model {key!r} is not applicable: {out.info.get('reason')}")
    reduce = str((out.info.get("protocol") or {}).get("reduce", "none"))
    if reduce != "none":
        raise AssignError(
            f"{clusters_dir / key}: clusters were made on cluster.reduce={reduce} vectors, which cannot be "
            "applied to new songs; re-run the pipeline with cluster.reduce: none to use assign"
        )
    return out


def _song_run(
    runs: pd.DataFrame, clusters_dir: Path, key: str, seed: int, algorithm: str, label: str | None
) -> pd.Series:
    """The ``song_mean`` run of ``key`` to join: the largest k among those serving ``label``."""
    sel = runs[
        (runs["representation"] == key)
        & (runs["algorithm"] == algorithm)
        & (runs["level"] == "song_mean")
        & (runs["seed"] == seed)
    ]
    if sel.empty:
        have = runs.loc[runs["representation"] == key, ["algorithm", "level", "seed"]].drop_duplicates()
        raise AssignError(
            f"no {algorithm} song_mean clustering of {key} at seed {seed} in {clusters_dir} "
            f"(have: {have.to_dict('records')[:6]}); pass --algorithm/--seed"
        )
    if label is not None and "for_labels" in sel.columns:
        serves = sel["for_labels"].astype(str).map(lambda f: f == "*" or label in f.split(","))
        if serves.any():
            sel = sel[serves]
    return sel.sort_values("k").iloc[-1]


def place_songs(
    root: Path,
    files: Sequence[Path],
    key: str,
    seed: int,
    params: Any,
    algorithm: str = "kmeans",
    label: str | None = None,
    lyrics_files: Sequence[Path | None] | None = None,
    condition: str | None = None,
    n_neighbours: int = 3,
    excerpt_s: float | None = None,
) -> list[SongPlacement]:
    """Run the whole assign path for ``files`` against the pipeline under ``root``.

    With ``excerpt_s``, each placed song also keeps that many seconds of its audio (for ``--explore``).
    """
    from musiclust.training.encode import encode_clips

    model, ckpt = _checked_model(root, key, seed, params, condition)
    needs = set(type(model).needs)
    cond_col = _condition_column(ckpt)
    space = load_cluster_space(root / "data" / "clusters", key, seed, algorithm, label)
    if len(space.columns) != getattr(model, "latent_dim", len(space.columns)):
        raise AssignError(
            f"cluster vectors of {key} have {len(space.columns)} columns but the model's latent has "
            f"{model.latent_dim}; re-run the cluster stage"
        )
    sets = list(ckpt["inputs"].get("feature_sets") or [])
    with tempfile.TemporaryDirectory(prefix="musiclust-assign-") as tmp:
        seg_dir, feat_dir = Path(tmp) / "segments", Path(tmp) / "features"
        seg, placements = segment_files(files, params, seg_dir)
        if seg.empty:
            return placements
        featurize_new(seg_dir, feat_dir, params, sets, root / "data" / "features")
        lyrics = None
        if "text" in needs:
            lf = list(lyrics_files) if lyrics_files else [None] * len(placements)
            lyrics = embed_new_lyrics(root, placements, lf, params)
        if cond_col:
            seg[cond_col] = condition
        latents, data = encode_clips(model, ckpt, seg, feat_dir, lyrics)
        if excerpt_s is not None:
            _keep_excerpts(placements, seg, seg_dir, excerpt_s)
    if getattr(data, "skipped", None):
        log.warning("clips not encoded: %s", data.skipped)
    zc = [c for c in latents.columns if str(c).startswith("z_")]
    lat = latents.merge(seg[["segment_id", "is_silent"]], on="segment_id", how="left")
    meta = _song_meta(root)
    for p in placements:
        if p.status == "ok":
            _place_song(p, lat, zc, space, meta, params.data.label_columns, n_neighbours)
    return placements


def _keep_excerpts(
    placements: Sequence[SongPlacement], seg: pd.DataFrame, seg_dir: Path, seconds: float
) -> None:
    """Cut each segmented song's excerpt while its clips still exist (the folder is temporary)."""
    from musiclust.reporting.excerpts import ExcerptError, song_excerpt

    for p in placements:
        if p.status == "ok" and p.n_clips:
            try:
                p.excerpt = song_excerpt(seg, seg_dir, p.song_id, seconds)
            except ExcerptError as exc:
                log.warning("%s: no excerpt for the explorer: %s", p.file, exc)


def _place_song(
    p: SongPlacement,
    lat: pd.DataFrame,
    zc: list[str],
    space: ClusterSpace,
    meta: pd.DataFrame | None,
    label_columns: Sequence[str],
    n_neighbours: int,
) -> None:
    """Place one song from its clips' latents ``lat[zc]`` (``p`` updated in place; skipped if none usable)."""
    mine = lat[lat["song_id"] == p.song_id]
    if mine.empty:
        p.status, p.reason = "skipped", "no clip could be encoded"
        return
    loud = mine[~mine["is_silent"].fillna(False).astype(bool)]
    if loud.empty:
        p.status, p.reason = "skipped", "every clip is silent (the pipeline leaves silent clips out)"
        return
    # the song vector exactly as the cluster stage computes it (silent clips left out)
    ids = loud["segment_id"].to_numpy(object)
    songs = song_means(
        Units(
            ids,
            loud["song_id"].to_numpy(object),
            np.full(len(ids), "new", object),
            loud[zc].to_numpy(np.float32),
        )
    )
    z = songs.x[0].astype(np.float64)
    if not np.isfinite(z).all():  # a distance to NaN is NaN: every cluster would be "nearest"
        p.status, p.reason = "skipped", "the model gives this song a latent that is not finite"
        return
    p.vector = z
    _describe_placement(p, z, space, meta, label_columns, n_neighbours)


def _checked_model(root: Path, key: str, seed: int, params: Any, condition: str | None) -> tuple[Any, dict]:
    """``(model, checkpoint)`` of ``key`` at ``seed``, checked against the pipeline's outputs and ``params``.

    Raises :class:`AssignError` listing every mismatch, or when a conditioned model gets no ``condition``.
    """
    from musiclust.models.checkpoint import CheckpointError, load_model

    ckpt_path = checkpoint_path(root / "models" / key, seed)
    try:
        model, ckpt = load_model(ckpt_path)
    except CheckpointError as exc:
        raise AssignError(str(exc)) from None
    scalers_p = scalers_path(root / "data" / "features")
    problems = check_compatibility(
        ckpt,
        params,
        read_segment_report(root / "data" / "segments"),
        read_json(scalers_p) if scalers_p.exists() else None,
    )
    if not scalers_p.exists():
        problems.append(f"{scalers_p}: missing (the train-split scalers); run the featurize stage")
    if problems:
        raise AssignError(
            f"model {key} (seed {seed}) does not match the current settings:\n  - "
            + "\n  - ".join(problems)
            + "\nRe-run the pipeline (dvc repro) so the model is trained with these params, or "
            "restore the params it was trained with."
        )
    cond_col = _condition_column(ckpt)
    if "cond" in set(type(model).needs) and condition is None:
        raise AssignError(
            f"model {key} is conditioned on {cond_col!r}: pass --condition VALUE for the new songs"
        )
    return model, ckpt


def _condition_column(ckpt: dict) -> str | None:
    """The song-table column a conditional model is conditioned on (None: not conditional)."""
    return ((ckpt.get("inputs") or {}).get("condition") or {}).get("column")


def _describe_placement(
    p: SongPlacement,
    z: np.ndarray,
    space: ClusterSpace,
    meta: pd.DataFrame | None,
    label_columns: Sequence[str],
    n_neighbours: int,
) -> None:
    """Fill ``p`` for the song latent ``z`` (d,): nearest cluster, its make-up by label, nearest songs."""
    p.cluster, p.distance = space.nearest_centroid(z)
    members = space.song_ids[space.clusters == p.cluster]
    p.cluster_size = len(members)
    for lab in label_columns:
        if meta is not None and lab in meta.columns:
            vc = meta.reindex(members)[lab].fillna("unknown").astype(str).value_counts(normalize=True)
            p.makeup[lab] = {k: round(float(v), 3) for k, v in vc.items()}
    for sid, d in space.neighbours(z, n_neighbours):
        row = meta.loc[sid] if meta is not None and sid in meta.index else pd.Series(dtype=object)
        p.neighbours.append(
            {
                "song_id": sid,
                "distance": round(d, 3),
                "title": row.get("title"),
                "artist": row.get("artist"),
                **{lab: row.get(lab) for lab in label_columns},
            }
        )


def _song_meta(root: Path) -> pd.DataFrame | None:
    try:
        songs = read_songs(root / "data" / "raw")
    except FileNotFoundError:
        return None
    return songs.drop_duplicates("song_id").set_index("song_id")


def placements_json(placements: Sequence[SongPlacement]) -> str:
    """The placements as strict JSON: a number that is not finite is ``null`` (JSON has no NaN)."""
    import json
    import math

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    rows = [clean(p.printable()) for p in placements]
    return json.dumps(rows, indent=2, ensure_ascii=False, allow_nan=False, default=str)


def format_placement(p: SongPlacement) -> str:
    """Human-readable lines for one file."""
    if p.status != "ok":
        return f"{p.file}: skipped ({p.reason})"
    lines = [
        f"{p.file}: cluster {p.cluster} ({p.n_clips} clips, distance to centroid {p.distance:.2f}; "
        f"{p.cluster_size} known songs in it)"
    ]
    for lab, shares in p.makeup.items():
        lines.append(f"  cluster make-up by {lab}: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    if p.neighbours:
        lines.append("  nearest known songs:")
        for n in p.neighbours:
            labs = ", ".join(
                f"{v}"
                for k, v in n.items()
                if k not in ("song_id", "distance", "title", "artist") and v is not None
            )
            lines.append(
                f"    {n.get('title') or n['song_id']}"
                + (f" - {n['artist']}" if n.get("artist") else "")
                + (f" [{labs}]" if labs else "")
                + f"  (distance {n['distance']:.2f})"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- explorer


def map_positions(
    known: pd.DataFrame, cols: list[str], maps: pd.DataFrame, z: np.ndarray, n_neighbours: int
) -> dict[str, dict[str, Any]]:
    """Where a new song vector ``z`` (d,) lands on each 2-D map of the known songs.

    ``known``: one row per known song (``song_id`` + ``cols``), the vectors the maps were drawn
    from; ``maps``: ``maps.parquet`` rows of one seed (``method``, ``song_id``, ``x``, ``y``).
    A PCA map is a linear projection, so it is refit on ``known`` and, when the refit reproduces
    the stored map, applied to ``z`` exactly. A t-SNE (or UMAP) map has no such projection: the
    song is drawn at the mean map position of its ``n_neighbours`` nearest known songs in the
    latent space, which says where it belongs, not where the method would have put it. Returns
    ``{method: {"x", "y", "how"}}``.
    """
    from sklearn.decomposition import PCA

    x = known[cols].to_numpy(np.float64)
    d = np.linalg.norm(x - z[None, :], axis=1)
    near = np.argsort(d, kind="stable")[: max(1, n_neighbours)]
    near_ids = known["song_id"].to_numpy()[near]
    out = {}
    for method, m in maps.groupby("method", sort=True):
        xy = m.drop_duplicates("song_id").set_index("song_id")[["x", "y"]].astype(np.float64)
        if method == "pca" and len(xy) >= 3:
            ids = known["song_id"].astype(str).to_numpy()
            k = min(2, x.shape[0], x.shape[1])
            pca = PCA(n_components=k, svd_solver="full").fit(x)
            refit = np.zeros((len(x), 2))
            refit[:, :k] = pca.transform(x)
            stored = xy.reindex(ids).to_numpy()
            scale = max(1.0, float(np.nanmax(np.abs(stored))))
            if np.isfinite(stored).all() and np.abs(refit - stored).max() <= 1e-3 * scale:
                pos = np.zeros(2)
                pos[:k] = pca.transform(z[None, :])[0]
                out[method] = {
                    "x": round(float(pos[0]), 4),
                    "y": round(float(pos[1]), 4),
                    "how": "exact (the PCA projection)",
                }
                continue
        pos = xy.reindex(near_ids).mean().to_numpy()
        out[method] = {
            "x": round(float(pos[0]), 4),
            "y": round(float(pos[1]), 4),
            "how": f"approximate: the mean position of its {len(near_ids)} nearest songs in the latent space",
        }
    return out


def write_explorer(
    root: Path,
    key: str,
    seed: int,
    placements: Sequence[SongPlacement],
    params: Any,
    out: Path,
    n_neighbours: int,
) -> Path:
    """The report's explorer with the placed songs drawn on ``key``'s maps, written to ``out``.

    Each new song gets, per label, the headline cluster the explorer shows (K-Means, k = the
    label's number of classes) whose centroid is nearest, and a position on every map
    (:func:`map_positions`).
    """
    from musiclust.reporting.build import write_explorer as write_page
    from musiclust.reporting.excerpts import data_uri, encode_opus
    from musiclust.reporting.explore import explore_data, read_vega
    from musiclust.reporting.inputs import ReportInputError, ReportPaths, load_inputs

    paths = ReportPaths(
        raw=root / "data" / "raw",
        segments=root / "data" / "segments",
        models=root / "models",
        clusters=root / "data" / "clusters",
        metrics=root / "metrics",
        vega=root / ".dvc" / "plots" / "offline.html",
    )
    try:
        # the representations of this params.yaml that have been clustered (a tool, not a stage:
        # it draws what exists)
        reps = [r for r in params.representations if (paths.clusters / r / "info.json").exists()]
        inp = load_inputs(paths, reps)
        vega = read_vega(paths.vega)
        payload = explore_data(inp, list(inp.summary["labels"]), params.report)
    except ReportInputError as exc:
        raise AssignError(f"cannot build the explorer: {exc}") from None
    rep = next((r for r in payload["reps"] if r["name"] == key), None)
    if rep is None:
        raise AssignError(
            f"{paths.clusters / key}: no map of {key} (not applicable); the explorer cannot show it"
        )
    if rep["seed"] != seed:
        raise AssignError(
            f"the maps of {key} are of seed {rep['seed']}: pass --seed {rep['seed']} with --explore"
        )
    out_rep = cluster_contract.read(paths.clusters / key, tables=("vectors", "maps"))
    vec = out_rep.vectors
    known = vec[(vec["level"] == "song_mean") & (vec["seed"] == seed)].reset_index(drop=True)
    cols = list(out_rep.info["columns"])
    maps = out_rep.maps[out_rep.maps["seed"] == seed]
    ids = payload["songs"]["id"]
    frame = pd.DataFrame({"song_id": ids, "split": payload["songs"]["split"]})
    spaces = {}
    for lab, cl in rep["clusters"].items():
        songs = frame.assign(cluster=cl["cluster"]).dropna(subset=["cluster"])
        songs = songs.merge(known[["song_id", *cols]], on="song_id", how="inner")
        spaces[lab] = cluster_space(songs, cols, True, f"{key} kmeans {lab}")
    new, skipped = [], []
    for p in placements:
        if p.status != "ok" or p.vector is None:
            skipped.append((Path(p.file).name, p.reason or "not placed"))
            continue
        clusters = {}
        for lab, space in spaces.items():
            c, dist = space.nearest_centroid(p.vector)
            clusters[lab] = {"cluster": c, "distance": round(dist, 3)}
        audio = start = None
        if p.excerpt is not None:
            y, sr, start = p.excerpt
            audio = data_uri(encode_opus(y, sr, params.report.explore_kbps), "audio/ogg")
        new.append(
            {
                "id": p.song_id,
                "title": Path(p.file).name,
                "artist": "",
                "maps": map_positions(known, cols, maps, p.vector, n_neighbours),
                "clusters": clusters,
                "audio": audio,
                "start_s": None if start is None else round(float(start), 1),
            }
        )
    payload["new"] = {"representation": key, "songs": new, "skipped": skipped}
    return write_page(
        payload,
        vega,
        out,
        "musiclust: where new songs land",
        f"{len(new)} new song(s) placed on {key} (seed {seed}) among the {len(ids)} songs of the collection.",
    )


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``musiclust assign``."""
    parser.add_argument("files", nargs="+", type=Path, help="audio files (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--model", required=True, help="model key (a folder under models/)")
    parser.add_argument(
        "--seed", type=int, default=None, help="which seed's checkpoint (default: first of params seeds)"
    )
    parser.add_argument(
        "--lyrics",
        type=Path,
        nargs="*",
        default=None,
        help="lyrics text files, one per audio file in the same order (models that read lyrics)",
    )
    parser.add_argument("--condition", default=None, help="condition value for a conditional model (e.g. en)")
    parser.add_argument(
        "--algorithm", default="kmeans", help="clustering to join (one that predicts: kmeans, gmm)"
    )
    parser.add_argument(
        "--label",
        default=None,
        help="with cluster.k per_label: the label whose k to use (default: last label column)",
    )
    parser.add_argument("--neighbours", type=int, default=3, help="nearest known songs to list")
    parser.add_argument(
        "--pipeline-root", type=Path, default=Path("."), help="repository with the pipeline outputs"
    )
    parser.add_argument("--params", type=Path, default=None, help="params file (default: <root>/params.yaml)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--explore",
        type=Path,
        default=None,
        metavar="OUT.html",
        help="also write the report's interactive map with the new songs on it (a self-contained page)",
    )


def run(args: argparse.Namespace) -> int:
    """Entry point; returns the exit status (0 ok, 2 refused, 1 nothing placed)."""

    from musiclust.params import ParamsError, load_params

    root = args.pipeline_root
    try:
        params = load_params(args.params or root / "params.yaml")
    except ParamsError as exc:
        log.error("%s", exc)
        return 2
    seed = args.seed if args.seed is not None else int(params.seeds[0])
    if args.lyrics is not None and len(args.lyrics) not in (0, len(args.files)):
        log.error(
            "--lyrics needs one text file per audio file (%d given for %d files)",
            len(args.lyrics),
            len(args.files),
        )
        return 2
    label = args.label or (params.data.label_columns[-1] if params.data.label_columns else None)
    try:
        placements = place_songs(
            root,
            args.files,
            args.model,
            seed,
            params,
            args.algorithm,
            label,
            args.lyrics or None,
            args.condition,
            args.neighbours,
            excerpt_s=params.report.excerpt_s if args.explore else None,
        )
        if args.explore:
            write_explorer(root, args.model, seed, placements, params, args.explore, args.neighbours)
    except AssignError as exc:
        log.error("refused: %s", exc)
        return 2
    if args.json:
        print(placements_json(placements))
    else:
        print("\n".join(format_placement(p) for p in placements))
    return 0 if any(p.status == "ok" for p in placements) else 1
