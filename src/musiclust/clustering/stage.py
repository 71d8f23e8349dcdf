"""The ``cluster`` stage's library side: every representation clustered, or copied from the store.

For each representation of params.yaml (the models of ``train.models``, then the baselines of
``cluster.baselines``) it writes ``<out>/<rep>/`` (:mod:`musiclust.contracts.clusters`): clustered,
mapped and scored (:func:`cluster_one`), or copied from the content-addressed store
(:mod:`musiclust.clustering.store`) when its inputs, params and code are those of an earlier run.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from musiclust.clustering.pipeline import READS_FEATURES, READS_LYRICS, cluster_representation
from musiclust.clustering.store import PARAM_KEYS, ClusterStore
from musiclust.contracts import clusters as contract
from musiclust.contracts.segments import read_segments, table_path
from musiclust.evaluation.scores import score_output
from musiclust.log import setup_logging
from musiclust.params import ClusterParams, EvaluateParams, Params

log = logging.getLogger(__name__)


def _param_values(params: Params) -> dict[str, object]:
    """The values of :data:`PARAM_KEYS`, part of every store key (a change of any of them is a miss)."""
    out: dict[str, object] = {}
    for dotted in PARAM_KEYS:
        v: object = params
        for part in dotted.split("."):
            v = getattr(v, part)
        out[dotted] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
    # which baselines run, and how many at once, is not part of how one is computed: dropping a
    # baseline or changing cluster.workers must not miss the others
    drop = {"baselines", "workers"}
    out["cluster"] = {k: v for k, v in out["cluster"].items() if k not in drop}  # type: ignore[union-attr]
    return out


@dataclass(frozen=True)
class ClusterSettings:
    """What clustering one representation reads from params.yaml (picklable: sent to worker processes)."""

    cluster: ClusterParams
    seeds: tuple[int, ...]
    label_columns: tuple[str, ...]
    evaluate: EvaluateParams
    raw_sets: tuple[str, ...]

    @classmethod
    def of(cls, params: Params) -> ClusterSettings:
        return cls(
            params.cluster,
            tuple(params.seeds),
            tuple(params.data.label_columns),
            params.evaluate,
            tuple(params.train.features),
        )


def cluster_one(
    rep: str,
    segments: pd.DataFrame,
    settings: ClusterSettings,
    out: Path,
    model_dir: str | Path | None = None,
    features_dir: str | Path | None = None,
    lyrics_path: str | Path | None = None,
) -> contract.ClusterOutput:
    """Cluster, map and score ``rep`` into ``out`` (rewritten whole)."""
    output = cluster_representation(
        rep,
        segments,
        settings.cluster,
        settings.seeds,
        settings.label_columns,
        model_dir=model_dir,
        features_dir=features_dir,
        lyrics_path=lyrics_path,
        raw_sets=settings.raw_sets,
    )
    output = score_output(output, segments, settings.label_columns, settings.evaluate)
    contract.write(out, output)
    log.info(
        "cluster %s: %s -> %s",
        rep,
        f"{len(output.runs)} runs" if output.applicable else f"not applicable ({output.info['reason']})",
        out,
    )
    return output


def cluster_all(
    params: Params,
    segments_dir: str | Path,
    models_dir: str | Path,
    features_dir: str | Path | None,
    lyrics_path: str | Path | None,
    out_dir: str | Path,
    store: ClusterStore,
) -> dict[str, str]:
    """Every representation of ``params`` into ``out_dir/<rep>/`` (``out_dir`` rewritten whole).

    Returns rep -> ``"clustered"`` or ``"reused"`` (copied from ``store``).
    """
    out = Path(out_dir)
    reps = list(params.representations)
    values = _param_values(params)
    settings = ClusterSettings.of(params)
    seg_file = table_path(segments_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.iterdir()):  # the output is rewritten whole: no folder of a dropped representation
        if old.name not in set(reps):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    done: dict[str, str] = {}
    todo: list[tuple[str, str | None, Path, Path | None, str | Path | None, str | Path | None]] = []
    for rep in reps:
        is_model = rep in params.train.models
        model_dir = Path(models_dir) / rep if is_model else None
        features = features_dir if not is_model and rep in READS_FEATURES else None
        lyrics = lyrics_path if not is_model and rep in READS_LYRICS else None
        inputs = [seg_file, *(p for p in (model_dir, features, lyrics) if p is not None)]
        key = store.key(rep, [Path(p) for p in inputs], values)
        if store.restore(key, out / rep):
            done[rep] = "reused"
        else:
            todo.append((rep, key, out / rep, model_dir, features, lyrics))
    workers = min(params.cluster.workers or os.cpu_count() or 1, len(todo))
    if todo:
        log.info("cluster: %d to compute, %d at a time (cluster.workers)", len(todo), max(workers, 1))
    bar = tqdm(total=len(todo), desc="cluster", unit="representation")
    if workers > 1:
        # each representation alone in a process (single BLAS thread): the same files as one by one
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {}
            for rep, key, folder, *inputs in todo:
                paths = (None if x is None else str(x) for x in inputs)
                job = pool.submit(_cluster_in_process, rep, str(segments_dir), settings, str(folder), *paths)
                futures[job] = (rep, key, folder)
            for fut in as_completed(futures):
                rep, key, folder = futures[fut]
                fut.result()
                store.save(key, folder)
                done[rep] = "clustered"
                bar.update()
    elif todo:
        segments = read_segments(segments_dir)
        for rep, key, folder, model_dir, features, lyrics in todo:
            cluster_one(rep, segments, settings, folder, model_dir, features, lyrics)
            store.save(key, folder)
            done[rep] = "clustered"
            bar.update()
    bar.close()
    done = {rep: done[rep] for rep in reps}
    store.prune()
    log.info(
        "cluster: %d representation(s) -> %s (%d clustered, %d reused from the store)",
        len(done),
        out,
        sum(v == "clustered" for v in done.values()),
        sum(v == "reused" for v in done.values()),
    )
    return done


def _cluster_in_process(
    rep: str,
    segments_dir: str,
    settings: ClusterSettings,
    out: str,
    model_dir: str | None,
    features_dir: str | None,
    lyrics_path: str | None,
) -> None:
    """The body of a worker process: :func:`cluster_one` on its own read of the segments."""
    setup_logging()
    cluster_one(rep, read_segments(segments_dir), settings, Path(out), model_dir, features_dir, lyrics_path)
