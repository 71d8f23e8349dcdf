"""Read the files the report draws: what cluster, evaluate, train and the data stages wrote.

Every reader names the file and the reason when it fails (:class:`ReportInputError`). Nothing
here computes a statistic; the report displays numbers exactly as the evaluation wrote them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import models as models_contract
from musiclust.contracts import raw as raw_contract
from musiclust.contracts import segments as segments_contract
from musiclust.fileio import read_json


class ReportInputError(Exception):
    """An input of the report is missing or unreadable (the message names the file)."""


@dataclass(frozen=True)
class ReportPaths:
    """Where the report stage reads (all from the command line)."""

    raw: Path  # songs.parquet, report.json
    segments: Path  # segments.parquet + audio-NNNNN.npy
    models: Path  # models/<key>/
    clusters: Path  # data/clusters/<rep>/
    metrics: Path  # summary.json, means.csv


@dataclass
class Representation:
    """One ``data/clusters/<rep>/`` folder (and, for a trained model, ``models/<rep>/``)."""

    name: str
    info: dict[str, Any]
    maps: pd.DataFrame | None = None  # None when not applicable
    model_info: dict[str, Any] | None = None
    history: pd.DataFrame | None = None
    recon: dict[str, np.ndarray] | None = None  # None when training wrote no samples

    @property
    def applicable(self) -> bool:
        return bool(self.info["applicable"])

    @property
    def is_model(self) -> bool:
        return self.info["kind"] == "model"


@dataclass
class ReportInputs:
    """Everything the sections need, loaded once."""

    paths: ReportPaths
    summary: dict[str, Any]
    means: pd.DataFrame
    songs: pd.DataFrame
    download: dict[str, Any]
    segments: pd.DataFrame
    reps: dict[str, Representation] = field(default_factory=dict)


def _require(path: Path) -> Path:
    if not path.exists():
        raise ReportInputError(f"{path}: missing; run the stage that writes it (dvc repro)")
    return path


def read_json_file(path: Path) -> Any:
    """JSON from ``path`` or :class:`ReportInputError` naming it."""
    try:
        return read_json(_require(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from None


def read_table(path: Path, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A parquet or CSV table with at least ``columns``, or :class:`ReportInputError` naming it."""
    _require(path)
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing columns {missing}")
    return df


def _through(read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A contract reader's result, its missing-file or bad-column errors as :class:`ReportInputError`."""
    try:
        return read(*args, **kwargs)
    except (FileNotFoundError, ValueError) as exc:
        raise ReportInputError(str(exc)) from None


MAP_COLUMNS = ("representation", "seed", "method", "song_id", "x", "y", "note")
HISTORY_COLUMNS = ("epoch", "seed", "val_total")


def load_representation(name: str, paths: ReportPaths) -> Representation:
    """``data/clusters/<name>/info.json`` and, when applicable, its maps and the model's training files."""
    folder = paths.clusters / name
    rep = Representation(name, read_json_file(folder / "info.json"))
    for key in ("applicable", "kind", "reason", "modality"):
        if key not in rep.info:
            raise ReportInputError(f"{folder / 'info.json'}: missing key '{key}'")
    if not rep.applicable:
        return rep
    rep.maps = read_table(folder / "maps.parquet", MAP_COLUMNS)
    if rep.is_model:
        mdir = paths.models / name
        rep.model_info = read_json_file(mdir / models_contract.INFO_FILE)
        rep.history = read_table(mdir / models_contract.HISTORY_FILE, HISTORY_COLUMNS)
        # training writes recon.npz only when it had non-silent clips (None otherwise)
        rep.recon = models_contract.read_recon(mdir)
    return rep


def load_inputs(paths: ReportPaths) -> ReportInputs:
    """Load every input the report needs (the winners' cluster assignments are read later, lazily)."""
    names = (
        sorted(p.name for p in paths.clusters.iterdir() if (p / "info.json").exists())
        if paths.clusters.is_dir()
        else []
    )
    if not names:
        raise ReportInputError(f"{paths.clusters}: no <representation>/info.json; run the cluster stage")
    return ReportInputs(
        paths=paths,
        summary=read_json_file(paths.metrics / "summary.json"),
        means=read_table(
            paths.metrics / "means.csv",
            ("representation", "label", "scope", "nmi", "nmi_low", "nmi_high", "n_songs"),
        ),
        songs=_through(raw_contract.read_songs, paths.raw, require=("song_id", "title", "artist")),
        download=read_json_file(paths.raw / raw_contract.REPORT_FILE),
        segments=_through(
            segments_contract.read_segments,
            paths.segments,
            require=("segment_id", "song_id", "split", "start_s", "end_s", "shard", "row"),
        ),
        reps={n: load_representation(n, paths) for n in names},
    )


def winner_clusters(
    paths: ReportPaths, rep: str, label: str, columns: list[str]
) -> tuple[pd.Series, pd.DataFrame, int]:
    """The headline clustering of ``rep`` for ``label``: ``(song_id -> cluster, song vectors, seed)``.

    That is the K-Means run at song level (``song_mean``) whose k was chosen for ``label``
    (``k_mode == "per_label"``), first seed; vectors are the same seed's song-level vectors
    (seed -1 for seed-independent baselines).
    """
    folder = paths.clusters / rep
    a = read_table(
        folder / "assignments.parquet",
        ("algorithm", "level", "k_mode", "for_labels", "seed", "song_id", "cluster"),
    )
    sel = a[
        (a["algorithm"] == "kmeans")
        & (a["level"] == "song_mean")
        & (a["k_mode"] == "per_label")
        & a["for_labels"].astype(str).str.split(",").map(lambda labs: label in labs)
    ]
    if sel.empty:
        raise ReportInputError(
            f"{folder / 'assignments.parquet'}: no kmeans song_mean per_label run for '{label}'"
        )
    seed = int(sel["seed"].min())
    sel = sel[sel["seed"] == seed]
    clusters = sel.drop_duplicates("song_id").set_index("song_id")["cluster"].astype(int)
    v = read_table(folder / "vectors.parquet", ("seed", "level", "song_id", *columns))
    v = v[(v["level"] == "song_mean") & v["seed"].isin([seed, -1])]
    if v.empty:
        raise ReportInputError(f"{folder / 'vectors.parquet'}: no song_mean vectors for seed {seed} (or -1)")
    return clusters, v, seed
