"""``data/clusters/<rep>/``: what the ``cluster`` stage writes for one representation.

One folder per representation (a model key or a baseline), so that changing one model
re-clusters (and re-maps) only that model:

- ``info.json``: what the representation is (:data:`INFO_KEYS`), ``applicable`` and ``reason``;
- ``assignments.parquet``: one row per unit per clustering run (:data:`ASSIGNMENT_COLUMNS`);
- ``runs.parquet``: one row per clustering run (:data:`RUN_COLUMNS`), no timings;
- ``vectors.parquet``: the clustered vectors at clip and song_mean level (:data:`VECTOR_META` + columns);
- ``maps.parquet``: 2-D maps of the song vectors for the report (:data:`MAP_COLUMNS`);
- ``scores.parquet``: every run scored against every label it serves, per seed and scope
  (:data:`SCORE_COLUMNS`), by :mod:`musiclust.evaluation.scores`;
- ``boot.parquet``: per test-scope score row, the metric under each shared bootstrap resample of
  the test songs (:data:`BOOT_COLUMNS`; ``values`` is a list of ``evaluate.bootstrap`` floats, NaN
  where a resample holds a single class of the label);
- ``leakage.parquet``: the single-column leakage audit of the clustered columns (:data:`LEAKAGE_COLUMNS`);
- ``disentanglement.parquet``: a model's Mutual Information Gap against each label, per seed
  (:data:`DISENTANGLEMENT_COLUMNS`, by :mod:`musiclust.evaluation.disentanglement`; empty for baselines).

Scoring lives beside the clustering so that an experiment that changes one model re-scores only
that model; the ``evaluate`` stage only aggregates, ranks and writes the metrics.

A representation that is not applicable (a model whose inputs are absent, the lyrics baseline of
an instrumental collection) has ``applicable: false`` with a reason and empty tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.fileio import read_json, write_json, write_parquet
from musiclust.params import ALGORITHMS, BASELINES, MAP_METHODS  # noqa: F401  (the vocabularies live in params)

log = logging.getLogger(__name__)

#: ``algorithm`` of a model's own mixture assignments (VaDE); the others are params.ALGORITHMS
OWN = "own"
#: units that get clustered: clips, each song's mean clip vector, and a majority vote of clip clusters
LEVELS = ("clip", "song_mean", "song_vote")
#: ``seed`` of a representation that no training seed changes (baselines)
SEED_INDEPENDENT = -1

ASSIGNMENT_COLUMNS = [
    "run_id",
    "representation",
    "algorithm",
    "seed",
    "level",
    "fit_on",
    "k_mode",
    "k",
    "for_labels",
    "unit_id",
    "song_id",
    "split",
    "cluster",
]
RUN_COLUMNS = [
    "run_id",
    "representation",
    "kind",
    "algorithm",
    "seed",
    "level",
    "fit_on",
    "k_mode",
    "k",
    "for_labels",
    "n_units",
    "n_fit",
    "n_clusters",
    "noise_fraction",
    "info",
]
VECTOR_META = ["seed", "level", "unit_id", "song_id", "split"]
MAP_COLUMNS = ["representation", "seed", "method", "unit_id", "song_id", "split", "x", "y", "note"]
SCORE_COLUMNS = [
    "representation",
    "kind",
    "modality",
    "conditioned",
    "algorithm",
    "level",
    "scope",
    "k_mode",
    "k",
    "label",
    "seed",
    "n_songs",
    "n_units",
    "n_clusters",
    "noise_fraction",
    "nmi",
    "ami",
    "ari",
    "v_measure",
    "homogeneity",
    "completeness",
    "purity",
    "accuracy",
    "silhouette",
    "silhouette_n",
    "calinski_harabasz",
    "davies_bouldin",
    "note",
    "run_id",
]
BOOT_COLUMNS = ["representation", "algorithm", "level", "k_mode", "k", "label", "seed", "metric", "values"]
LEAKAGE_COLUMNS = ["representation", "seed", "label", "column", "balanced_accuracy"]
DISENTANGLEMENT_COLUMNS = [
    "representation",
    "seed",
    "label",
    "mig",
    "top_dim",
    "second_dim",
    "top_mi",
    "second_mi",
    "label_entropy",
    "n_units",
    "n_bins",
]
TABLES = ("assignments", "runs", "vectors", "maps", "scores", "boot", "leakage", "disentanglement")
INFO_KEYS = (
    "representation",
    "kind",
    "modality",
    "vector_level",
    "applicable",
    "reason",
    "description",
    "columns",
    "dim",
    "seeds",
    "conditioned_on",
    "has_own_clusters",
    "counts",
    "label_classes",
    "k_plan",
    "skipped_runs",
    "protocol",
    "training",
)


@dataclass
class ClusterOutput:
    """Everything the ``cluster`` stage writes for one representation."""

    info: dict[str, Any]
    assignments: pd.DataFrame
    runs: pd.DataFrame
    vectors: pd.DataFrame
    maps: pd.DataFrame
    scores: pd.DataFrame | None = None
    boot: pd.DataFrame | None = None
    leakage: pd.DataFrame | None = None
    disentanglement: pd.DataFrame | None = None
    #: a model's clip latents before ``cluster.reduce`` (VECTOR_META + latent columns), kept in
    #: memory for the disentanglement score and never written; None for baselines
    latents: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return str(self.info["representation"])

    @property
    def applicable(self) -> bool:
        return bool(self.info.get("applicable", False))


def empty_tables() -> dict[str, pd.DataFrame]:
    """Empty tables with the contract's columns (for a representation that is not applicable)."""
    return {
        "assignments": pd.DataFrame(columns=ASSIGNMENT_COLUMNS),
        "runs": pd.DataFrame(columns=RUN_COLUMNS),
        "vectors": pd.DataFrame(columns=VECTOR_META),
        "maps": pd.DataFrame(columns=MAP_COLUMNS),
        "scores": pd.DataFrame(columns=SCORE_COLUMNS),
        "boot": pd.DataFrame(columns=BOOT_COLUMNS),
        "leakage": pd.DataFrame(columns=LEAKAGE_COLUMNS),
        "disentanglement": pd.DataFrame(columns=DISENTANGLEMENT_COLUMNS),
    }


COLUMNS = {
    "assignments": ASSIGNMENT_COLUMNS,
    "runs": RUN_COLUMNS,
    "maps": MAP_COLUMNS,
    "scores": SCORE_COLUMNS,
    "boot": BOOT_COLUMNS,
    "leakage": LEAKAGE_COLUMNS,
    "disentanglement": DISENTANGLEMENT_COLUMNS,
}


def write(out_dir: str | Path, output: ClusterOutput) -> None:
    """Rewrite ``out_dir`` whole with ``output`` (stale files of an earlier run are removed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    missing = [k for k in INFO_KEYS if k not in output.info]
    if missing:
        raise ValueError(f"cluster info for {output.name!r} lacks {missing}")
    write_json(out / "info.json", output.info)
    for name in TABLES:
        frame = getattr(output, name)
        if frame is None:
            raise ValueError(
                f"cluster output for {output.name!r} has no {name} table (score it before writing)"
            )
        write_parquet(frame[COLUMNS[name]] if name in COLUMNS else frame, out / f"{name}.parquet")


def read(
    rep_dir: str | Path,
    tables: Sequence[str] = TABLES,
    filters: Mapping[str, list[tuple[str, str, Any]]] | None = None,
) -> ClusterOutput:
    """Read one ``data/clusters/<rep>/`` folder: info.json and the named ``tables`` (others empty).

    ``filters``: table name -> row filters in pyarrow's form (``[("level", "=", "song_mean")]``),
    applied while reading, for a reader that needs a few rows of a large table.
    """
    d = Path(rep_dir)
    info_path = d / "info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path}: missing; run `dvc repro cluster`")
    info = read_json(info_path)
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise ValueError(f"{info_path}: missing keys {missing}; run `dvc repro cluster`")
    frames = empty_tables()
    for name in tables:
        path = d / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run `dvc repro cluster`")
        frame = pd.read_parquet(path, filters=(filters or {}).get(name))
        lacking = [c for c in COLUMNS.get(name, VECTOR_META) if c not in frame.columns]
        if lacking:
            raise ValueError(f"{path}: missing columns {lacking}; run `dvc repro cluster`")
        frames[name] = frame
    return ClusterOutput(info, **frames)


def read_all(
    clusters_dir: str | Path, names: Sequence[str], tables: Sequence[str] = TABLES
) -> list[ClusterOutput]:
    """The folders of representations ``names`` under ``clusters_dir``, sorted by name.

    Other folders (a representation removed from the pipeline, whose old output DVC leaves
    behind) are ignored with a warning rather than scored.
    """
    root = Path(clusters_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no clusters folder; run the cluster stage first")
    stale = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in set(names))
    if stale:
        log.warning(
            "%s: ignoring folder(s) of representations not in the pipeline: %s", root, ", ".join(stale)
        )
    return [read(root / n, tables) for n in sorted(set(names))]
