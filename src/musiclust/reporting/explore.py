"""The explorer: one interactive 2-D map of every song (report section ``explore``, ``musiclust assign --explore``).

Everything it draws was written by the cluster stage: the 2-D maps (``maps.parquet``), the headline
clustering of each label (K-Means at song level with k = the label's number of classes: the run the
Listen section plays, from ``assignments.parquet``) and the song vectors (``vectors.parquet``).
Computed here, for presentation only (see docs/report.md):

- each song's distance to its cluster's centre, as the Listen section shows it
  (:func:`musiclust.reporting.excerpts.centre_distances`);
- the majority label of each cluster, and which songs disagree with it (:func:`majority_labels`).

The page draws with vega-lite through vega-embed, taken from the offline ``dvc plots`` template
(``.dvc/plots/offline.html``, :func:`read_vega`), so the project vendors one copy of them. Every
song gets an inline Opus excerpt (``report.explore_kbps``); a large collection gets shorter ones so
that all of them fit ``report.explore_audio_mb`` (:func:`excerpt_seconds`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup
from tqdm import tqdm

from musiclust.contracts.clusters import SEED_INDEPENDENT
from musiclust.params import ReportParams
from musiclust.reporting.cache import ArtefactCache
from musiclust.reporting.excerpts import ExcerptError, centre_distances, data_uri, encode_opus, song_excerpt
from musiclust.reporting.figures import METHOD_NAMES, natural_key
from musiclust.reporting.inputs import ReportInputError, ReportInputs, first_seed_maps, winner_clusters
from musiclust.workspace import file_digest

log = logging.getLogger(__name__)

#: The three libraries the explorer needs from the template, in load order.
VEGA_LIBRARIES = ("vega", "vega-lite", "vega-embed")
VEGA_GLOBALS = {"vega": "vega", "vega-lite": "vegaLite", "vega-embed": "vegaEmbed"}
#: The shortest excerpt worth playing; a collection too large for the budget at this length
#: still gets it (the page and the log say that the budget was exceeded).
MIN_EXCERPT_S = 1.0
#: Bytes an Ogg/Opus excerpt carries besides its audio (headers, tags), and how far above the
#: asked bitrate its audio runs (page framing, variable bitrate): measured on real songs, with room.
OPUS_OVERHEAD_BYTES = 1000
OPUS_RATE_HEADROOM = 1.1
#: Threads that cut and encode excerpts (the result does not depend on it).
EXCERPT_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Digits kept of map coordinates and distances in the page (presentation; the files keep all).
COORD_DIGITS = 4
DISTANCE_DIGITS = 3

_SCRIPT = re.compile(r'<script type="text/javascript">\n(.*?)\n</script>', re.S)
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)


@dataclass(frozen=True)
class VegaLibraries:
    """The minified vega, vega-lite and vega-embed builds and the template's licence notice."""

    notice: str
    scripts: tuple[str, ...]


def read_vega(template: Path) -> VegaLibraries:
    """The three inlined libraries of the offline plots template (``make plots-template`` writes it)."""
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportInputError(
            f"{template}: cannot read the offline vega template ({exc.strerror}); run `make plots-template`"
        ) from None
    scripts = tuple(_SCRIPT.findall(text))
    if len(scripts) != len(VEGA_LIBRARIES):
        raise ReportInputError(
            f"{template}: expected {len(VEGA_LIBRARIES)} inline scripts ({', '.join(VEGA_LIBRARIES)}), "
            f"found {len(scripts)}; rebuild it with `make plots-template`"
        )
    for name, js in zip(VEGA_LIBRARIES, scripts):
        # each UMD build defines its global near its start: vega, vegaLite, vegaEmbed
        if f").{VEGA_GLOBALS[name]}=" not in js[:1000]:
            raise ReportInputError(
                f"{template}: the inline scripts are not {', '.join(VEGA_LIBRARIES)} in that order; "
                "rebuild it with `make plots-template`"
            )
    comment = _COMMENT.search(text)
    notice = comment.group(1).strip() if comment else ""
    return VegaLibraries(notice.replace("--", "- -"), scripts)


def excerpt_seconds(n_songs: int, params: ReportParams) -> tuple[float, str | None]:
    """Seconds of excerpt per song so that ``n_songs`` inline excerpts fit ``report.explore_audio_mb``.

    ``report.excerpt_s`` when they fit; shorter (to 0.1 s) when they do not; never under
    :data:`MIN_EXCERPT_S`, which the returned note then says (None when the budget holds).
    Sizes are estimated from the bitrate: base64 text of ``overhead + headroom * kbps/8 * seconds`` bytes.
    """
    if n_songs <= 0:
        return float(params.excerpt_s), None
    bytes_per_s = params.explore_kbps * 1000 / 8 * OPUS_RATE_HEADROOM
    per_song = params.explore_audio_mb * 1e6 / n_songs * 3 / 4  # base64 makes 4 characters of 3 bytes
    fits = (per_song - OPUS_OVERHEAD_BYTES) / bytes_per_s
    if fits >= params.excerpt_s:
        return float(params.excerpt_s), None
    if fits >= MIN_EXCERPT_S:
        return float(np.floor(fits * 10) / 10), None
    return MIN_EXCERPT_S, (
        f"{n_songs} excerpts of {MIN_EXCERPT_S:g} s at {params.explore_kbps:g} kbps exceed "
        f"report.explore_audio_mb = {params.explore_audio_mb:g}"
    )


def majority_labels(clusters: pd.Series, labels: pd.Series) -> dict[int, str | None]:
    """Per cluster, the commonest known value of ``labels`` among its songs (None: no song has one).

    ``clusters`` and ``labels`` map song_id to cluster and to label value (missing = unknown, not
    counted). Ties go to the value first in natural order, so the choice is stable. A presentation
    aid (which songs to outline), not a score.
    """
    lab = labels.reindex(clusters.index)
    out: dict[int, str | None] = {}
    for c in sorted(set(clusters.astype(int))):
        counts = lab[clusters.astype(int) == c].dropna().astype(str).value_counts()
        if counts.empty:
            out[c] = None
            continue
        top = counts[counts == counts.max()].index
        out[c] = sorted(top, key=natural_key)[0]
    return out


def _rounded(values: Sequence[Any], digits: int) -> list[float | None]:
    return [None if v is None or not np.isfinite(v) else round(float(v), digits) for v in values]


def _label_value(v: Any) -> str | None:
    return None if v is None or pd.isna(v) else str(v)


def _representation(
    inp: ReportInputs, name: str, ids: list[str], labels: Sequence[str], songs: pd.DataFrame
) -> dict[str, Any]:
    """One applicable representation: its maps and, per label, its headline clusters aligned with ``ids``."""
    rep = inp.reps[name]
    seed, first = first_seed_maps(inp.paths, name, rep)
    maps = {}
    for method in sorted(first["method"].unique(), key=list(METHOD_NAMES).index):
        m = first[first["method"] == method].drop_duplicates("song_id").set_index("song_id")
        notes = sorted(m["note"].dropna().astype(str).unique())
        maps[method] = {
            "x": _rounded(m["x"].reindex(ids).to_numpy(np.float64), COORD_DIGITS),
            "y": _rounded(m["y"].reindex(ids).to_numpy(np.float64), COORD_DIGITS),
            "note": "; ".join(notes) or None,
        }
    columns = list(rep.info["columns"])
    per_label, cluster_seeds = {}, set()
    for lab in labels:
        clusters, vectors, cseed = winner_clusters(inp.paths, name, lab, columns)
        # a seed-independent representation (a baseline) is mapped once; its clusterings have seeds
        if seed not in (cseed, SEED_INDEPENDENT):
            raise ReportInputError(
                f"{inp.paths.clusters / name}: maps are of seed {seed} but the first {lab} clustering "
                f"is of seed {cseed}; re-run `dvc repro cluster`"
            )
        cluster_seeds.add(cseed)
        dist = centre_distances(vectors, columns, clusters)
        majority = majority_labels(clusters, songs[lab])
        cl = clusters.reindex(ids)
        known = songs[lab].reindex(ids)
        disagree = [
            bool(pd.notna(c) and _label_value(v) is not None and majority.get(int(c)) != _label_value(v))
            for c, v in zip(cl, known)
        ]
        per_label[lab] = {
            "k": len(majority),
            "cluster": [None if pd.isna(c) else int(c) for c in cl],
            "distance": _rounded(dist.reindex(ids).to_numpy(np.float64), DISTANCE_DIGITS),
            "majority": {str(c): v for c, v in majority.items()},
            "disagree": disagree,
        }
    return {
        "name": name,
        "kind": rep.info["kind"],
        "modality": rep.info["modality"],
        "description": rep.info["description"],
        "seed": seed,
        "cluster_seed": min(cluster_seeds) if cluster_seeds else seed,
        "maps": maps,
        "clusters": per_label,
    }


def _representation_stored(
    inp: ReportInputs,
    name: str,
    ids: list[str],
    labels: Sequence[str],
    songs: pd.DataFrame,
    cache: ArtefactCache,
) -> dict[str, Any]:
    """:func:`_representation`, from ``cache`` when the cluster files it reads, the maps, the songs'
    labels and the ids are those of an earlier report (after an experiment that re-trained one
    model, every other representation's data). JSON either way, so the page is the same bytes."""
    rep, folder = inp.reps[name], inp.paths.clusters / name
    tables = [folder / f"{table}.parquet" for table in ("assignments", "vectors")]
    key = (
        name,
        # a missing table is left to _representation, whose error says which and what to run
        [file_digest(t) if t.is_file() else None for t in tables],
        rep.maps,
        rep.info,
        ids,
        list(labels),
        songs[list(labels)],
    )
    data = cache.get_keyed(
        f"{__name__}._representation",
        key,
        lambda: json.dumps(_representation(inp, name, ids, labels, songs), allow_nan=False).encode("utf-8"),
    )
    return json.loads(data)


def explore_data(
    inp: ReportInputs, labels: Sequence[str], params: ReportParams, cache: ArtefactCache | None = None
) -> dict[str, Any]:
    """The explorer's data: songs (metadata, split, labels, excerpt) and every applicable representation.

    ``cache`` supplies excerpts encoded by an earlier report (the same audio at the same bitrate).

    Songs are those on at least one map, sorted by id; every array in the result is aligned with
    ``songs["id"]`` (None where a representation has no point or cluster for a song).
    """
    songs = inp.songs.drop_duplicates("song_id").set_index("song_id")
    for lab in labels:
        if lab not in songs.columns:
            raise ReportInputError(f"{inp.paths.raw / 'songs.parquet'}: no label column '{lab}'")
    applicable = [n for n, r in inp.reps.items() if r.applicable]
    ids = sorted({str(s) for n in applicable for s in inp.reps[n].maps["song_id"]})
    split = inp.segments.drop_duplicates("song_id").set_index("song_id")["split"].astype(str)
    cache = cache or ArtefactCache(None)
    reps = [_representation_stored(inp, n, ids, labels, songs, cache) for n in applicable]
    seconds, budget_note = excerpt_seconds(len(ids), params)
    if budget_note:
        log.warning("explorer: %s; raise it or lower report.explore_kbps", budget_note)

    def excerpt(sid: str) -> tuple[str | None, float | None, str | None]:
        try:
            y, sr, start = song_excerpt(inp.segments, inp.paths.segments, sid, seconds)
        except ExcerptError as exc:  # one song without audio keeps its point, not the page from building
            return None, None, str(exc)
        opus = cache.get(encode_opus, y, sr, params.explore_kbps)
        return data_uri(opus, "audio/ogg"), round(float(start), 1), None

    # the Opus encoder (~0.1 s of CPU per 4 s excerpt) releases the GIL; map keeps the song order
    with ThreadPoolExecutor(max_workers=EXCERPT_THREADS) as pool:
        done = list(
            tqdm(pool.map(excerpt, ids), total=len(ids), desc="explorer excerpts", unit="song", leave=False)
        )
    audio = [uri for uri, _, _ in done]
    starts = [start for _, start, _ in done]
    failed = {sid: why for sid, (_, _, why) in zip(ids, done) if why is not None}
    for sid, why in failed.items():
        log.warning("explorer: no excerpt for %s: %s", sid, why)
    meta = songs.reindex(ids)
    return {
        "labels": list(labels),
        "songs": {
            "id": ids,
            "title": [_label_value(v) or sid for v, sid in zip(meta["title"], ids)],
            "artist": [_label_value(v) or "" for v in meta["artist"]],
            "split": [split.get(s, "unknown") for s in ids],
            "labels": {lab: [_label_value(v) for v in meta[lab]] for lab in labels},
            # shown on hover: a song without lyrics is one a lyrics-reading representation cannot place
            "has_lyrics": [None if pd.isna(v) else bool(v) for v in meta["has_lyrics"]]
            if "has_lyrics" in meta.columns
            else [None] * len(ids),
            "audio": audio,
            "start_s": starts,
        },
        "reps": reps,
        "method_names": {m: METHOD_NAMES[m] for m in METHOD_NAMES},
        "excerpt_s": seconds,
        "kbps": params.explore_kbps,
        "budget_note": budget_note,
        "no_excerpt": sorted(failed.items()),
        "not_applicable": sorted((n, r.info["reason"]) for n, r in inp.reps.items() if not r.applicable),
        "new": None,
    }


def page_json(payload: Mapping[str, Any]) -> Markup:
    """``payload`` as JSON safe inside ``<script type="application/json">`` (no ``</script>`` can close it)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return Markup(text)


def section_data(
    payload: Mapping[str, Any], vega: VegaLibraries, selected: str | None = None
) -> dict[str, Any]:
    """What ``explore.html.j2`` renders: the controls' choices, the notes, the data and the libraries.

    ``selected``: the representation shown first (default: the new songs' one, else the first).
    """
    reps = payload["reps"]
    methods = sorted({m for r in reps for m in r["maps"]}, key=list(METHOD_NAMES).index)
    n_audio = sum(a is not None for a in payload["songs"]["audio"])
    return {
        "n_songs": len(payload["songs"]["id"]),
        "n_test": sum(s == "test" for s in payload["songs"]["split"]),
        "n_audio": n_audio,
        "labels": list(payload["labels"]),
        "models": [(r["name"], r["description"]) for r in reps if r["kind"] == "model"],
        "baselines": [(r["name"], r["description"]) for r in reps if r["kind"] != "model"],
        "methods": [(m, METHOD_NAMES[m]) for m in methods],
        "excerpt_s": payload["excerpt_s"],
        "kbps": payload["kbps"],
        "budget_note": payload["budget_note"],
        "no_excerpt": payload["no_excerpt"],
        "not_applicable": payload["not_applicable"],
        "new": payload["new"],
        "selected": selected or (payload["new"] or {}).get("representation"),
        "json": page_json(payload),
        "vega_notice": vega.notice,
        "vega": [Markup(js) for js in vega.scripts],
    }
