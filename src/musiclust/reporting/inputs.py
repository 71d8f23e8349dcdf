"""Read everything the report shows, tolerating what is absent.

The report is the last stage and the one a user opens when something went wrong, so a missing
or unreadable input never stops it: each loader returns ``None`` (or an empty mapping) and adds a
line to :attr:`ReportInputs.problems`, which the report prints in a "missing inputs" box.
Formats follow docs/pipeline.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.fileio import read_json

log = logging.getLogger(__name__)

#: Names of clustering algorithms, used to recognise them in file names.
ALGORITHMS = ("kmeans", "agglomerative", "gmm", "dbscan", "spectral", "vade")
#: Id-like columns of the metrics table (everything numeric that is not one of these is a metric).
METRIC_ID_COLUMNS = (
    "representation", "algorithm", "label", "level", "subset", "split", "eval_on", "scope",
    "seed", "seeds", "k", "n", "n_songs", "n_clips", "n_points", "source", "kind", "metric", "value",
    "sample_size", "silhouette_sample", "silhouette_n", "flag", "flags", "note", "fit_on", "k_mode",
    "n_clusters", "n_units", "n_unlabelled", "n_seeds", "unsupervised", "leakage_flag", "run_id",
)


@dataclass
class ModelRun:
    """What one ``train@<key>`` stage left in ``models/<key>/`` and ``plots/train/<key>.csv``."""

    key: str
    latents: pd.DataFrame | None = None
    song_latents: pd.DataFrame | None = None
    recon: dict[str, np.ndarray] | None = None
    info: dict[str, Any] | None = None
    curves: pd.DataFrame | None = None
    checkpoints: list[Path] = field(default_factory=list)

    def latent_columns(self, frame: pd.DataFrame | None = None) -> list[str]:
        """The ``z_*`` columns of ``frame`` (default: the song latents)."""
        frame = self.song_latents if frame is None else frame
        return [] if frame is None else [c for c in frame.columns if str(c).startswith("z_")]


@dataclass
class ReportInputs:
    """Everything the report reads; ``None`` where an input was absent."""

    songs: pd.DataFrame | None = None
    download_report: dict[str, Any] | None = None
    segments: pd.DataFrame | None = None
    segment_report: dict[str, Any] | None = None
    lyrics: pd.DataFrame | None = None
    models: dict[str, ModelRun] = field(default_factory=dict)
    clusters: pd.DataFrame | None = None
    cluster_manifest: dict[str, Any] | None = None
    clusters_dir: Path | None = None
    metrics_table: pd.DataFrame | None = None
    metrics_means: pd.DataFrame | None = None
    metrics_json: dict[str, Any] = field(default_factory=dict)
    segments_dir: Path | None = None
    problems: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        """Record (and log) an input that could not be used."""
        log.warning("%s", message)
        self.problems.append(message)


def _read_parquet(path: Path, inputs: ReportInputs, what: str) -> pd.DataFrame | None:
    if not path.exists():
        inputs.note(f"{path}: missing ({what}); the sections that need it are left out")
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a truncated / foreign file
        inputs.note(f"{path}: unreadable ({exc}); re-run the stage that writes it")
        return None


def _read_json(path: Path, inputs: ReportInputs, what: str) -> dict[str, Any] | None:
    if not path.exists():
        inputs.note(f"{path}: missing ({what})")
        return None
    try:
        obj = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        inputs.note(f"{path}: not valid JSON ({exc}); re-run the stage that writes it")
        return None
    return obj if isinstance(obj, dict) else {"value": obj}


def load_model_run(models_dir: Path, key: str, train_plots_dir: Path | None, inputs: ReportInputs) -> ModelRun:
    """Load one model's outputs; absent pieces stay ``None``."""
    d = models_dir / key
    run = ModelRun(key=key)
    run.checkpoints = sorted(d.glob("seed_*.pt"))
    if (d / "latents.parquet").exists():
        run.latents = _read_parquet(d / "latents.parquet", inputs, f"clip latents of {key}")
    if (d / "song_latents.parquet").exists():
        run.song_latents = _read_parquet(d / "song_latents.parquet", inputs, f"song latents of {key}")
    elif run.latents is not None:
        run.song_latents = song_means(run.latents)
    if run.latents is None and run.song_latents is None:
        inputs.note(f"{d}: no latents.parquet / song_latents.parquet; model {key} is left out of the maps")
    if (d / "recon.npz").exists():
        try:
            with np.load(d / "recon.npz", allow_pickle=False) as z:  # no pickles: data only
                run.recon = {k: z[k] for k in z.files}
        except Exception as exc:
            inputs.note(f"{d / 'recon.npz'}: unreadable ({exc})")
    if (d / "info.json").exists():
        run.info = _read_json(d / "info.json", inputs, f"training info of {key}")
    if train_plots_dir is not None:
        csv = train_plots_dir / f"{key}.csv"
        if csv.exists():
            try:
                run.curves = pd.read_csv(csv)
            except Exception as exc:
                inputs.note(f"{csv}: unreadable training curve ({exc})")
    return run


def song_means(latents: pd.DataFrame) -> pd.DataFrame:
    """Per-song mean of clip latents (the contract's ``song_latents`` when a model did not write it)."""
    zcols = [c for c in latents.columns if str(c).startswith("z_")]
    keys = [c for c in ("song_id", "split", "seed") if c in latents.columns]
    return latents.groupby(keys, sort=False, dropna=False)[zcols].mean().reset_index()


def load_clusters(clusters_dir: Path, inputs: ReportInputs) -> pd.DataFrame | None:
    """All cluster assignments under ``clusters_dir`` as one tidy frame.

    Columns: ``representation``, ``algorithm``, ``seed``, ``level`` (``clip``, ``song_mean``,
    ``song_vote``, ...), ``for_labels`` (labels a run's k was chosen for, ``*`` for any),
    ``k``, ``song_id``, ``segment_id`` (clip level only), ``split``, ``cluster``.

    The cluster stage writes ``runs.parquet`` (one row per clustering run) and
    ``assignments.parquet`` (``run_id``, ``unit_id``, ``song_id``, ``split``, ``cluster``);
    they are joined on ``run_id``. Other layouts (per-representation files that carry the
    cluster column directly) are read too, with missing keys taken from the file path.
    """
    if not clusters_dir.is_dir():
        inputs.note(f"{clusters_dir}: missing (cluster assignments); composition figures are left out")
        return None
    runs_p, assign_p = clusters_dir / "runs.parquet", clusters_dir / "assignments.parquet"
    if runs_p.exists() and assign_p.exists():
        try:
            runs = pd.read_parquet(runs_p)
            assign = pd.read_parquet(assign_p)
        except Exception as exc:
            inputs.note(f"{clusters_dir}: unreadable runs/assignments ({exc}); re-run the cluster stage")
            return None
        # assignments may already carry the run's keys; take only what it lacks from runs
        keep = ["run_id"] + [c for c in ("representation", "algorithm", "seed", "level", "for_labels", "k", "kind")
                             if c in runs.columns and c not in assign.columns]
        out = assign.merge(runs[keep], on="run_id", how="left", validate="many_to_one")
        lost = int(out["representation"].isna().sum())
        if lost:
            inputs.note(f"{assign_p}: {lost} assignment rows name a run_id missing from runs.parquet")
            out = out.dropna(subset=["representation"])
        out["level"] = out["level"].astype(str)
        is_clip = out["level"] == "clip"
        out["segment_id"] = out["unit_id"].where(is_clip)
        return _finish_clusters(out)
    frames = []
    for path in sorted(clusters_dir.rglob("*.parquet")):
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            inputs.note(f"{path}: unreadable ({exc})")
            continue
        if "cluster" not in df.columns or not ({"song_id", "segment_id"} & set(df.columns)):
            continue  # centroids, scores or other side tables
        df = df.copy()
        parts = list(path.relative_to(clusters_dir).with_suffix("").parts)
        if "algorithm" not in df.columns:
            df["algorithm"] = next((a for p in reversed(parts) for a in ALGORITHMS if a in p.lower()), "kmeans")
        if "representation" not in df.columns:
            rest = [p for p in parts if p.lower() not in ALGORITHMS]
            df["representation"] = rest[0] if rest else parts[0]
        if "level" not in df.columns:
            df["level"] = "clip" if "segment_id" in df.columns else "song"
        frames.append(df)
    if not frames:
        inputs.note(f"{clusters_dir}: no cluster assignment tables (Parquet with a 'cluster' column)")
        return None
    return _finish_clusters(pd.concat(frames, ignore_index=True, sort=False))


def _finish_clusters(df: pd.DataFrame) -> pd.DataFrame:
    for col, default in (("seed", 0), ("for_labels", "*"), ("k", -1), ("split", "?")):
        if col not in df.columns:
            df[col] = default
    if "segment_id" not in df.columns:
        df["segment_id"] = None
    df["level"] = df["level"].astype(str)
    df["for_labels"] = df["for_labels"].fillna("*").astype(str)
    return df.reset_index(drop=True)


def load_metrics(metrics_dir: Path, inputs: ReportInputs) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """``metrics/all.csv`` (or ``all.parquet``) and every JSON file under ``metrics/`` by relative name.

    The evaluation's seed means with intervals (``means.csv``) go to ``inputs.metrics_means``.
    """
    if (metrics_dir / "means.csv").exists():
        try:
            inputs.metrics_means = pd.read_csv(metrics_dir / "means.csv")
        except Exception as exc:
            inputs.note(f"{metrics_dir / 'means.csv'}: unreadable ({exc}); intervals are recomputed from all.csv")
    table = None
    for name in ("all.parquet", "all.csv"):
        p = metrics_dir / name
        if p.exists():
            try:
                table = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
            except Exception as exc:
                inputs.note(f"{p}: unreadable metrics table ({exc})")
            break
    else:
        inputs.note(f"{metrics_dir}/all.csv: missing (per-seed metrics); the metrics tables are left out")
    jsons: dict[str, Any] = {}
    if metrics_dir.is_dir():
        for p in sorted(metrics_dir.rglob("*.json")):
            try:
                jsons[str(p.relative_to(metrics_dir))] = read_json(p)
            except (OSError, json.JSONDecodeError) as exc:
                inputs.note(f"{p}: not valid JSON ({exc})")
    return table, jsons


def load_inputs(
    raw_dir: Path,
    segments_dir: Path,
    lyrics_path: Path,
    models_dir: Path,
    clusters_dir: Path,
    metrics_dir: Path,
    train_plots_dir: Path | None,
    model_keys: list[str] | None = None,
) -> ReportInputs:
    """Load every input of the report (see module docstring for the failure policy)."""
    inp = ReportInputs(segments_dir=segments_dir)
    inp.songs = _read_parquet(raw_dir / "songs.parquet", inp, "song table")
    inp.download_report = _read_json(raw_dir / "report.json", inp, "download counts")
    inp.segments = _read_parquet(segments_dir / "segments.parquet", inp, "clip table")
    if (segments_dir / "report.json").exists():
        inp.segment_report = _read_json(segments_dir / "report.json", inp, "segment counts")
    inp.lyrics = _read_parquet(lyrics_path, inp, "lyrics embeddings") if lyrics_path else None
    if model_keys is None:
        model_keys = sorted(p.name for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []
    if not models_dir.is_dir():
        inp.note(f"{models_dir}: missing (trained models)")
    for key in model_keys:
        if (models_dir / key).is_dir():
            inp.models[key] = load_model_run(models_dir, key, train_plots_dir, inp)
        else:
            inp.note(f"{models_dir / key}: missing; model {key} was not trained")
    inp.clusters = load_clusters(clusters_dir, inp)
    inp.clusters_dir = clusters_dir
    if (clusters_dir / "manifest.json").exists():
        inp.cluster_manifest = _read_json(clusters_dir / "manifest.json", inp, "cluster manifest")
    inp.metrics_table, inp.metrics_json = load_metrics(metrics_dir, inp)
    return inp


def load_vectors_of(inputs: ReportInputs, representation: str) -> pd.DataFrame | None:
    """The cluster stage's input vectors of one representation (``vectors/<rep>.parquet``), or None.

    Columns: ``seed`` (-1: seed-independent), ``level`` (``clip``/``song_mean``), ``unit_id``,
    ``song_id``, ``split``, then the representation's own named columns.
    """
    man, d = inputs.cluster_manifest, inputs.clusters_dir
    if man is None or d is None:
        return None
    entry = (man.get("representations") or {}).get(representation) or {}
    rel = entry.get("file")
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        return None
    path = d / rel
    if not path.exists():
        inputs.note(f"{path}: missing (vectors of {representation}); its map is left out")
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        inputs.note(f"{path}: unreadable ({exc})")
        return None
