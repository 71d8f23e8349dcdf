"""The cluster step end to end: read inputs, build representations, cluster, write ``data/clusters``.

Output layout (documented in docs/pipeline.md):
- ``assignments.parquet``: one row per unit per run: ``run_id``, ``representation``,
  ``algorithm``, ``seed``, ``level``, ``fit_on``, ``k_mode``, ``k``, ``for_labels``,
  ``unit_id``, ``song_id``, ``split``, ``cluster`` (``-1`` = noise);
- ``runs.parquet``: one row per run (``n_units``, ``n_fit``, ``n_clusters``,
  ``noise_fraction``, ``seconds``, ``info`` JSON);
- ``vectors/<representation>.parquet``: the input vectors of each representation
  (``seed`` (-1 = seed-independent), ``level``, ``unit_id``, ``song_id``, ``split``,
  then its named columns) for the evaluate step's silhouette and leakage audit;
  ``fed/<representation>.parquet`` the same after ``cluster.reduce`` when it is not ``none``;
- ``manifest.json``: protocol, representations (kind, description, columns,
  seeds, ``conditioned_on``, counts), label classes, k plan, skips.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.clustering import run as run_mod
from musiclust.clustering.representations import (
    Representation,
    baseline_representation,
    lyrics_representation,
    model_representation,
    pca_representation,
    reduce_representation,
    usable_clips,
)
from musiclust.features.store import load_vectors
from musiclust.fileio import read_json, safe_id, write_json, write_parquet
from musiclust.params import ClusterParams

log = logging.getLogger(__name__)


def discover_models(models_dir: str | Path) -> list[Path]:
    """Sub-directories of ``models_dir`` that hold a ``latents.parquet``, sorted by name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        log.warning("%s: no models directory; clustering baselines only", models_dir)
        return []
    found = sorted(d for d in models_dir.iterdir() if d.is_dir() and (d / "latents.parquet").is_file())
    others = sorted(d.name for d in models_dir.iterdir() if d.is_dir() and d not in found)
    log.info("models with latents under %s: %s", models_dir, ", ".join(d.name for d in found) or "none")
    if others:
        log.warning("model folders without latents.parquet (not clustered): %s", ", ".join(others))
    return found


def load_model_representation(model_dir: Path, clips: pd.DataFrame) -> Representation:
    """A model folder's latents and ``info.json`` as a representation."""
    latents = pd.read_parquet(model_dir / "latents.parquet")
    missing = {"segment_id", "seed"} - set(latents.columns)
    if missing:
        raise ValueError(f"{model_dir}/latents.parquet lacks column(s) {sorted(missing)} (see docs/pipeline.md)")
    info_path = model_dir / "info.json"
    info: dict[str, Any] = {}
    if info_path.is_file():
        info = read_json(info_path)
    else:
        log.warning("%s: no info.json; cannot tell which labels the model was conditioned on", model_dir)
    key = str(info.get("model_key") or model_dir.name)
    if key != model_dir.name:
        log.warning("%s: info.json says model_key=%r; using the folder name", model_dir, key)
        key = model_dir.name
    return model_representation(key, clips, latents, info)


def build_representations(
    clips: pd.DataFrame,
    features_dir: str | Path,
    lyrics_path: str | Path | None,
    models_dir: str | Path,
    baselines: Sequence[str],
    raw_sets: Sequence[str],
    default_dim: int,
) -> tuple[list[Representation], list[dict[str, str]]]:
    """Every model representation plus the requested baselines; unusable inputs are skipped with a reason."""
    reps: list[Representation] = []
    skipped: list[dict[str, str]] = []
    for d in discover_models(models_dir):
        try:
            reps.append(load_model_representation(d, clips))
        except (OSError, ValueError, KeyError) as exc:
            log.error("model %s not clustered: %s", d.name, exc)
            skipped.append({"representation": d.name, "reason": str(exc)})
    dims = Counter(r.dim for r in reps)
    pca_dim = dims.most_common(1)[0][0] if dims else default_dim

    raw: Representation | None = None
    if "raw" in baselines or "pca" in baselines:
        try:
            ids, x, cols = load_vectors(features_dir, list(raw_sets), standardize=True)
            raw = baseline_representation(
                "raw", clips, ids, x, cols, f"standardized {'+'.join(raw_sets)} ({len(cols)} columns, train-only scaler)"
            )
        except (OSError, ValueError, KeyError) as exc:
            log.error("raw/pca baselines not built: %s", exc)
            skipped += [{"representation": b, "reason": str(exc)} for b in ("raw", "pca") if b in baselines]
    if raw is not None and "raw" in baselines:
        reps.append(raw)
    if raw is not None and "pca" in baselines:
        reps.append(pca_representation(raw, pca_dim))
    if "spectral_features" in baselines:
        try:
            ids, x, cols = load_vectors(features_dir, ["spectral"], standardize=True)
            reps.append(baseline_representation(
                "spectral_features", clips, ids, x, cols, f"standardized spectral set ({len(cols)} columns)"))
        except (OSError, ValueError, KeyError) as exc:
            log.error("spectral_features baseline not built: %s", exc)
            skipped.append({"representation": "spectral_features", "reason": str(exc)})
    if "lyrics" in baselines:
        try:
            if lyrics_path is None or not Path(lyrics_path).is_file():
                raise FileNotFoundError(f"{lyrics_path}: no lyrics table (run embed_lyrics)")
            rep = lyrics_representation(clips, pd.read_parquet(lyrics_path))
            if len(rep.units(-1)) == 0:
                # an instrumental collection (e.g. GTZAN) is normal, not an error
                log.warning("lyrics baseline not built: no song has lyrics")
                skipped.append({"representation": "lyrics", "reason": "no song has lyrics"})
            else:
                reps.append(rep)
        except (OSError, ValueError, KeyError) as exc:
            log.error("lyrics baseline not built: %s", exc)
            skipped.append({"representation": "lyrics", "reason": str(exc)})
    return reps, skipped


def run_cluster_step(
    segments_path: str | Path,
    features_dir: str | Path,
    lyrics_path: str | Path | None,
    models_dir: str | Path,
    out_dir: str | Path,
    params: ClusterParams,
    seeds: Sequence[int],
    label_columns: Sequence[str],
    raw_sets: Sequence[str],
) -> dict[str, Any]:
    """Cluster everything and rewrite ``out_dir`` whole. Returns the manifest."""
    segments_path = Path(segments_path)
    if segments_path.is_dir():
        segments_path = segments_path / "segments.parquet"
    segments = pd.read_parquet(segments_path)
    need = {"segment_id", "song_id", "split"} - set(segments.columns)
    if need:
        raise ValueError(f"{segments_path}: missing column(s) {sorted(need)} (see docs/pipeline.md)")
    clips, clip_counts = usable_clips(segments)
    log.info("clips: %s", clip_counts)
    classes = run_mod.label_classes(segments, label_columns)
    log.info("label classes: %s", {k: len(v) for k, v in classes.items()})

    reps, skipped_reps = build_representations(
        clips, features_dir, lyrics_path, models_dir, params.baselines, raw_sets, params.reduce_dim
    )
    if not reps:
        raise RuntimeError(f"nothing to cluster: no model latents under {models_dir} and no baseline could be built")
    fed = [reduce_representation(r, params.reduce, params.reduce_dim, seed=seeds[0] if seeds else 0) for r in reps]
    log.info("representations: %s", ", ".join(f"{r.name}({r.dim}d)" for r in fed))

    settings = run_mod.ClusterSettings(
        algorithms=tuple(params.algorithms),
        k=params.k,
        k_range=(int(params.k_range[0]), int(params.k_range[-1])),
        seeds=tuple(int(s) for s in seeds),
        min_samples=params.hdbscan_min_samples,
        spectral_max_units=params.spectral_max_units,
    )
    result = run_mod.cluster_representations(fed, classes, settings)

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)  # outputs are rewritten whole: no stale representation survives
    out.mkdir(parents=True)
    keys = ["run_id", "representation", "algorithm", "seed", "level", "fit_on", "k_mode", "k", "for_labels"]
    assignments = result.assignments.merge(result.runs[keys], on="run_id", how="left")
    assignments = assignments[keys + ["unit_id", "song_id", "split", "cluster"]]
    for col in ("run_id", "representation", "algorithm", "level", "fit_on", "k_mode", "for_labels", "split"):
        assignments[col] = assignments[col].astype("category")
    write_parquet(assignments, out / "assignments.parquet")
    write_parquet(result.runs, out / "runs.parquet")
    for rep, rep_fed in zip(reps, fed):
        write_parquet(run_mod.representation_table(rep), out / "vectors" / f"{safe_id(rep.name)}.parquet")
        if rep_fed is not rep:
            write_parquet(run_mod.representation_table(rep_fed), out / "fed" / f"{safe_id(rep.name)}.parquet")

    manifest = {
        "protocol": _protocol_text(params),
        "reduce": {"method": params.reduce, "dim": params.reduce_dim},
        "seeds": [int(s) for s in seeds],
        "label_classes": classes,
        "k_plan": result.k_plan,
        "clips": clip_counts,
        "representations": {
            r.name: {
                "kind": r.kind,
                "modality": r.modality,
                "description": f.description,
                "file": f"vectors/{safe_id(r.name)}.parquet",
                "fed_file": f"fed/{safe_id(r.name)}.parquet" if f is not r else None,
                "columns": r.columns,
                "dim": r.dim,
                "fed_dim": f.dim,
                "seeds": "all" if r.seed_independent else sorted(r.clips),
                "conditioned_on": list(r.conditioned_on),
                "has_own_clusters": bool(r.own_clusters),
                "counts": r.counts,
            }
            for r, f in zip(reps, fed)
        },
        "skipped_representations": skipped_reps,
        "skipped_runs": result.skipped,
        "n_runs": len(result.runs),
    }
    write_json(out / "manifest.json", manifest)
    n_skip = len(result.skipped)
    log.info("wrote %d clustering runs of %d representations to %s (%d run(s) skipped, see manifest.json)",
             len(result.runs), len(reps), out, n_skip)
    return manifest


def _protocol_text(params: ClusterParams) -> dict[str, str]:
    return {
        "fit": "kmeans, gmm: fit on train units, predict all; agglomerative (ward), hdbscan, spectral: fit on all units; "
               "own (VaDE): the model's mixture assignments (model trained on train songs)",
        "levels": "clip: clip vectors; song_mean: mean of each song's clip vectors; "
                  "song_vote: majority cluster of the song's clips in the clip-level run (ties: smallest id)",
        "k": {"per_label": "one run per distinct class count; for_labels names the labels it serves",
              "auto": f"k in {list(params.k_range)} chosen by silhouette on fit units (BIC for gmm)",
              }.get(str(params.k), f"fixed k = {params.k}"),
        "seeds": "model latents of seed s clustered with random_state s; baselines clustered once per seed",
        "silent_clips": "left out (is_silent)",
        "spectral": f"skipped on levels with more than {params.spectral_max_units} units",
        "hdbscan": f"sklearn HDBSCAN, min_cluster_size = min_samples = {params.hdbscan_min_samples}; noise = cluster -1",
        "vectors_written": "input vectors before reduction (vectors/) and after (fed/, only if reduce != none)",
    }
