"""One representation end to end, as the ``cluster`` stage runs it: build it, cluster it, map it.

Each representation (a model key or a baseline) has its own output folder
(:mod:`musiclust.contracts.clusters`); the stage (:mod:`musiclust.clustering.stage`) computes only
those whose inputs changed, so an experiment that retrains one model re-clusters and re-maps only
that model, and copies the rest from its store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from musiclust.clustering import run as run_mod
from musiclust.clustering.maps import song_maps
from musiclust.clustering.metadata import NoMetadata, metadata_vectors
from musiclust.clustering.representations import (
    Representation,
    baseline_representation,
    fused_representation,
    lyrics_representation,
    model_representation,
    pca_representation,
    reduce_representation,
    song_level_representation,
    usable_clips,
)
from musiclust.contracts import clusters as contract
from musiclust.contracts import lyrics as lyrics_contract
from musiclust.contracts import models as models_contract
from musiclust.contracts.features import load_vectors
from musiclust.params import BASELINES, ClusterParams

log = logging.getLogger(__name__)


class NotApplicable(Exception):
    """The representation's inputs are absent (reported with its reason, never clustered or ranked)."""


def model_input(model_dir: Path, clips: pd.DataFrame) -> tuple[Representation, dict[str, Any]]:
    """A trained model's latents as a representation, plus its training summary.

    Raises :class:`NotApplicable` when the train stage recorded that the model's inputs are absent.
    """
    info = models_contract.read_info(model_dir)
    if info.get("applicable") is False:
        raise NotApplicable(str(info.get("reason") or "the train stage marked it not applicable"))
    metrics = models_contract.read_metrics(model_dir)
    training = {k: metrics[k] for k in ("best_val_loss_mean",) if k in metrics}
    latents = models_contract.read_latents(model_dir)
    return model_representation(model_dir.name, clips, latents, info), training


#: the baselines :func:`baseline_input` builds from ``features_dir`` / from ``lyrics_path`` (every
#: baseline also reads the clips; ``metadata`` nothing else)
READS_FEATURES = frozenset({"raw", "pca", "spectral_features", "raw_lyrics"})
READS_LYRICS = frozenset({"lyrics", "raw_lyrics"})


def baseline_input(
    name: str,
    clips: pd.DataFrame,
    features_dir: str | Path,
    lyrics_path: str | Path | None,
    raw_sets: Sequence[str],
    pca_dim: int,
    metadata_columns: Sequence[str] = (),
) -> Representation:
    """Baseline ``name`` (see :mod:`musiclust.clustering.representations`; ``metadata``:
    :mod:`musiclust.clustering.metadata`, from the song metadata columns of ``clips``)."""
    if name in ("raw", "pca", "raw_lyrics"):
        ids, x, cols = load_vectors(features_dir, list(raw_sets), standardize=True)
        raw = baseline_representation(
            "raw",
            clips,
            ids,
            x,
            cols,
            f"standardized {'+'.join(raw_sets)} ({len(cols)} columns, train-only scaler)",
        )
        if name == "raw_lyrics":
            text = baseline_input("lyrics", clips, features_dir, lyrics_path, (), pca_dim)
            units = text.units(contract.SEED_INDEPENDENT)
            if len(set(units.song_id[units.split == "train"])) < 2:
                raise NotApplicable("fewer than two training songs have lyrics: no lyrics PCA to fit")
            return fused_representation(raw, text, pca_dim)
        if name == "pca":
            n_train = int((raw.units(contract.SEED_INDEPENDENT).split == "train").sum())
            if n_train < 2:
                raise NotApplicable(
                    f"{n_train} usable training clip(s), PCA needs two to fit on: add songs or raise segment.split.train"
                )
        return raw if name == "raw" else pca_representation(raw, pca_dim)
    if name == "spectral_features":
        ids, x, cols = load_vectors(features_dir, ["spectral"], standardize=True)
        return baseline_representation(
            name, clips, ids, x, cols, f"standardized spectral set ({len(cols)} columns)"
        )
    if name == "lyrics":
        if lyrics_path is None:
            raise FileNotFoundError("no lyrics table given; run `dvc repro embed_lyrics` and pass --lyrics")
        rep = lyrics_representation(clips, lyrics_contract.read(lyrics_path))
        if len(rep.units(contract.SEED_INDEPENDENT)) == 0:
            raise NotApplicable("no song has lyrics")
        return rep
    if name == "metadata":
        try:
            songs, x, cols, description = metadata_vectors(clips, metadata_columns)
        except NoMetadata as exc:
            raise NotApplicable(str(exc)) from None
        return song_level_representation(name, clips, songs["song_id"], x, cols, description, "metadata")
    raise ValueError(f"unknown baseline {name!r} (have {', '.join(BASELINES)})")


def cluster_representation(
    name: str,
    segments: pd.DataFrame,
    params: ClusterParams,
    seeds: Sequence[int],
    label_columns: Sequence[str],
    model_dir: str | Path | None = None,
    features_dir: str | Path | None = None,
    lyrics_path: str | Path | None = None,
    raw_sets: Sequence[str] = ("mfcc_stats",),
) -> contract.ClusterOutput:
    """Cluster one representation: a model (``model_dir``) or a baseline (``name`` in BASELINES)."""
    clips, clip_counts = usable_clips(segments)
    classes = run_mod.label_classes(segments, label_columns)
    kind = "model" if model_dir is not None else "baseline"
    info = _base_info(name, kind, clip_counts, classes, params)
    try:
        if model_dir is not None:
            rep, info["training"] = model_input(Path(model_dir), clips)
        else:
            rep = baseline_input(
                name, clips, features_dir, lyrics_path, raw_sets, params.pca_dim, params.metadata_columns
            )
        if not info["k_plan"]:
            raise NotApplicable(_no_k_reason(classes, clips))
    except NotApplicable as exc:
        return _not_applicable(info, str(exc))

    fed = reduce_representation(rep, params.reduce, params.reduce_dim, seed=seeds[0] if seeds else 0)
    with threadpool_limits(limits=1):  # many small problems: BLAS/OpenMP threads only contend
        result = run_mod.cluster_representations([fed], classes, params, seeds)
        if result.runs.empty:  # every level too small or degenerate (a handful of songs, identical vectors)
            info["skipped_runs"] = result.skipped
            return _not_applicable(info, _nothing_clustered_reason(result.skipped, fed))
        maps = song_maps(fed, params.maps, seed=int(seeds[0]) if seeds else 0)
    keys = ["run_id", "representation", "algorithm", "seed", "level", "fit_on", "k_mode", "k", "for_labels"]
    assignments = result.assignments.merge(result.runs[keys], on="run_id", how="left")
    info.update(
        modality=rep.modality,
        vector_level=rep.vector_level,
        description=fed.description,
        columns=fed.columns,
        dim=fed.dim,
        seeds="all" if rep.seed_independent else sorted(int(s) for s in rep.clips),
        conditioned_on=list(rep.conditioned_on),
        has_own_clusters=bool(rep.own_clusters),
        counts={**clip_counts, **rep.counts},
        k_plan=result.k_plan,
        skipped_runs=result.skipped,
    )
    log.info(
        "%s: %d clustering runs (%d skipped), maps: %s",
        name,
        len(result.runs),
        len(result.skipped),
        ", ".join(sorted(set(maps["method"]))) or "none",
    )
    output = contract.ClusterOutput(info, assignments, result.runs, run_mod.representation_table(fed), maps)
    if kind == "model":  # the latent axes themselves (before cluster.reduce), for the disentanglement score
        table = run_mod.representation_table(rep)
        output.latents = table[table["level"] == "clip"].reset_index(drop=True)
    return output


def _not_applicable(info: dict[str, Any], reason: str) -> contract.ClusterOutput:
    """The output of a representation that cannot be clustered: info.json with the reason, empty tables."""
    log.warning("%s: not applicable: %s (not clustered, never ranked)", info["representation"], reason)
    info.update(applicable=False, reason=reason)
    return contract.ClusterOutput(info, **contract.empty_tables())


def _no_k_reason(classes: dict[str, list[str]], clips: pd.DataFrame) -> str:
    """Why ``cluster.k: per_label`` gives no k here, and what helps."""
    counts = ", ".join(f"{lab}: {len(v)} class(es)" for lab, v in classes.items()) or "no label column"
    return (
        f"no label column has two or more classes among the {clips['song_id'].nunique()} song(s) ({counts}), "
        "so cluster.k = per_label sets no k: add songs of another class, or set cluster.k to an integer or auto"
    )


def _nothing_clustered_reason(skipped: list[dict[str, Any]], rep: Representation) -> str:
    """Why no clustering run was possible: each level's distinct skip reasons (too few or identical vectors)."""
    by_level: dict[str, list[str]] = {}
    for s in skipped:
        reasons = by_level.setdefault(str(s["level"]), [])
        if s["reason"] not in reasons:
            reasons.append(str(s["reason"]))
    detail = "; ".join(f"{level}: {' / '.join(r)}" for level, r in by_level.items()) or "no vectors"
    songs = {s for units in rep.clips.values() for s in units.song_id}
    return f"no clustering could be run on its {len(songs)} song(s) ({detail})"


def _base_info(
    name: str, kind: str, clip_counts: dict[str, int], classes: dict[str, list[str]], params: ClusterParams
) -> dict[str, Any]:
    """info.json before the representation is built (what a not-applicable one keeps)."""
    return {
        "representation": name,
        "kind": kind,
        "modality": None,
        "vector_level": "clip",
        "applicable": True,
        "reason": None,
        "description": "",
        "columns": [],
        "dim": 0,
        "seeds": [],
        "conditioned_on": [],
        "has_own_clusters": False,
        "counts": clip_counts,
        "label_classes": classes,
        "k_plan": run_mod.k_plan(params.k, classes),
        "skipped_runs": [],
        "protocol": protocol_text(params),
        "training": {},
    }


def protocol_text(params: ClusterParams) -> dict[str, str]:
    """The clustering protocol in words (written into every info.json, shown by the report)."""
    return {
        "fit": "kmeans, gmm: fit on train units, predict all; agglomerative (ward), hdbscan, spectral: fit on all "
        "units; own (VaDE): the model's mixture assignments (model trained on train songs)",
        "levels": "clip: clip vectors; song_mean: mean of each song's clip vectors; "
        "song_vote: majority cluster of the song's clips in the clip-level run (ties: smallest id); "
        "song vectors (vector_level song) are clustered at song_mean only (clip and song_vote skipped)",
        "k": {
            "per_label": "one run per distinct class count; for_labels names the labels it serves",
            "auto": f"k in {list(params.k_range)} chosen by silhouette on fit units (BIC for gmm)",
        }.get(str(params.k), f"fixed k = {params.k}"),
        "seeds": "model latents of seed s clustered with random_state s; baselines clustered once per seed",
        "silent_clips": "left out (is_silent)",
        "large levels": f"agglomerative, hdbscan, spectral: above {params.fit_sample} units fit on a seeded "
        "sample, the rest joining the nearest centroid (fit_on = sample)",
        "hdbscan": f"sklearn HDBSCAN, min_cluster_size = min_samples = {params.hdbscan_min_samples}; noise = -1",
        "reduce": f"{params.reduce} (to {params.reduce_dim} dims, fit on train clips)"
        if params.reduce != "none"
        else "none",
        "maps": f"{', '.join(params.maps) or 'none'} of song vectors (first seed), for the report",
    }
