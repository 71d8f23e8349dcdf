"""Read the files the report draws: what cluster, evaluate, train and the data stages wrote.

Every reader names the file and the reason when it fails (:class:`ReportInputError`). Nothing
here computes a statistic; the report displays numbers exactly as the evaluation wrote them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclust.contracts import clusters as clusters_contract
from musiclust.contracts import metrics as metrics_contract
from musiclust.contracts import models as models_contract
from musiclust.contracts import raw as raw_contract
from musiclust.contracts import segments as segments_contract


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
    vega: Path  # .dvc/plots/offline.html: the explorer's vega, vega-lite and vega-embed


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


def _through(read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A contract reader's result, its missing-file or bad-column errors as :class:`ReportInputError`."""
    try:
        return read(*args, **kwargs)
    except (FileNotFoundError, ValueError) as exc:
        raise ReportInputError(str(exc)) from None


def load_representation(name: str, paths: ReportPaths) -> Representation:
    """``data/clusters/<name>/info.json`` and, when applicable, its maps and the model's training files."""
    out = _through(clusters_contract.read, paths.clusters / name, tables=())
    rep = Representation(name, out.info)
    if not rep.applicable:
        return rep
    rep.maps = _through(clusters_contract.read, paths.clusters / name, tables=("maps",)).maps
    if rep.is_model:
        mdir = paths.models / name
        rep.model_info = _through(models_contract.read_info, mdir)
        rep.history = _through(models_contract.read_history, mdir)
        # training writes recon.npz only when it had non-silent clips (None otherwise)
        rep.recon = models_contract.read_recon(mdir)
    return rep


def load_inputs(paths: ReportPaths, representations: Sequence[str]) -> ReportInputs:
    """Load every input the report needs (the winners' cluster assignments are read later, lazily).

    ``representations``: the ``data/clusters/<rep>/`` folders of this run, each of which must exist.
    """
    names = sorted(representations)
    missing = [n for n in names if not (paths.clusters / n / "info.json").exists()]
    if missing or not names:
        raise ReportInputError(
            f"{paths.clusters}: no {', '.join(missing) or '<representation>'}/info.json; run the cluster stage"
        )
    return ReportInputs(
        paths=paths,
        summary=_through(metrics_contract.read_summary, paths.metrics),
        means=_through(metrics_contract.read_means, paths.metrics),
        songs=_through(raw_contract.read_songs, paths.raw, require=("song_id", "title", "artist")),
        download=_through(raw_contract.read_report, paths.raw),
        segments=_through(
            segments_contract.read_segments,
            paths.segments,
            require=("segment_id", "song_id", "split", "start_s", "end_s", "shard", "row"),
        ),
        reps={n: load_representation(n, paths) for n in names},
    )


def first_seed_maps(paths: ReportPaths, name: str, rep: Representation) -> tuple[int, pd.DataFrame]:
    """An applicable representation's 2-D maps of its first seed (-1: a seed-independent baseline)."""
    mp = rep.maps
    if mp.empty:
        raise ReportInputError(
            f"{paths.clusters / name / 'maps.parquet'}: no rows for an applicable representation"
        )
    seed = int(mp["seed"].min())
    return seed, mp[mp["seed"] == seed]


def winner_clusters(
    paths: ReportPaths, rep: str, label: str, columns: list[str]
) -> tuple[pd.Series, pd.DataFrame, int]:
    """The headline clustering of ``rep`` for ``label``: ``(song_id -> cluster, song vectors, seed)``.

    That is the K-Means run at song level (``song_mean``) whose k was chosen for ``label``
    (``k_mode == "per_label"``), first seed; vectors are the same seed's song-level vectors
    (seed -1 for seed-independent baselines).
    """
    folder = paths.clusters / rep
    out = _through(
        clusters_contract.read,
        folder,
        tables=("assignments", "vectors"),
        filters={
            "assignments": [
                ("algorithm", "=", "kmeans"),
                ("level", "=", "song_mean"),
                ("k_mode", "=", "per_label"),
            ],
            "vectors": [("level", "=", "song_mean")],
        },
    )
    a = out.assignments
    # for_labels is split only on the rows the filter kept (a clip-level table is 10-100x larger)
    sel = a[a["for_labels"].astype(str).str.split(",").map(lambda labs: label in labs)]
    if sel.empty:
        raise ReportInputError(
            f"{folder / 'assignments.parquet'}: no kmeans song_mean per_label run for '{label}'"
        )
    seed = int(sel["seed"].min())
    sel = sel[sel["seed"] == seed]
    clusters = sel.drop_duplicates("song_id").set_index("song_id")["cluster"].astype(int)
    v = out.vectors
    missing = [c for c in columns if c not in v.columns]
    if missing:
        raise ReportInputError(f"{folder / 'vectors.parquet'}: missing columns {missing}")
    v = v[(v["level"] == "song_mean") & v["seed"].isin([seed, -1])]
    if v.empty:
        raise ReportInputError(f"{folder / 'vectors.parquet'}: no song_mean vectors for seed {seed} (or -1)")
    return clusters, v, seed
