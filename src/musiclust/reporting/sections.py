"""The report's sections: each takes the loaded inputs and returns plain data for its template.

No section computes a statistic: scores, intervals, winners and separability come from
``metrics/summary.json`` / ``metrics/means.csv`` as the evaluation wrote them, 2-D maps from the
cluster stage. Figures are drawn here and handed to the template as ``data:`` URIs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from musiclust.fileio import atomic_write_bytes, safe_id
from musiclust.params import ReportParams
from musiclust.reporting import figures as F
from musiclust.reporting.cache import ArtefactCache
from musiclust.reporting.excerpts import central_songs, data_uri, encode_ogg, song_excerpt
from musiclust.reporting.explore import explore_data, read_vega, section_data
from musiclust.reporting.inputs import ReportInputError, ReportInputs, first_seed_maps, winner_clusters
from musiclust.reporting.style import fig_to_png

#: Scores shown per row of the detailed table.
DETAIL_METRICS = ("nmi", "ami", "ari", "v_measure", "purity", "accuracy")
#: The scores means.csv carries bootstrap intervals for (``_low`` / ``_high``; AMI on song-level runs at k).
DETAIL_INTERVALS = ("nmi", "ami")
#: Key columns of means.csv, in display order.
DETAIL_KEYS = ("representation", "algorithm", "level", "k_mode", "k")
#: Projection methods the cluster stage writes, in display order.
METHOD_ORDER = ("pca", "tsne", "umap")
#: Reconstructed clips shown per model.
N_RECON = 3


@dataclass
class Ctx:
    """What every section gets: the inputs, the report params and where figures go."""

    inp: ReportInputs
    params: ReportParams
    label_columns: tuple[str, ...]
    figures_dir: Path
    figure_names: list[str] = field(default_factory=list)
    excerpts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: drawn figures and encoded excerpts of earlier reports (off: ``ArtefactCache(None)``)
    cache: ArtefactCache = field(default_factory=lambda: ArtefactCache(None))

    def figure(
        self, draw: Callable[..., Figure], args: tuple, name: str, alt: str, caption: str = ""
    ) -> dict[str, str]:
        """``draw(*args)`` as ``<figures_dir>/<name>.png``, returned for a template (``uri``, ``alt``,
        ``caption``). The PNG comes from the cache when the same figure was drawn before."""
        png = self.cache.get(_png, draw, args)
        stem = safe_id(name)
        if stem in self.figure_names:
            raise ValueError(f"two figures named {stem}")
        atomic_write_bytes(self.figures_dir / f"{stem}.png", png)
        self.figure_names.append(stem)
        return {"uri": data_uri(png, "image/png"), "alt": alt, "caption": caption, "name": stem}


def _png(draw: Callable[..., Figure], args: tuple) -> bytes:
    return fig_to_png(draw(*args))


def _winner_of(ctx: Ctx, label: str) -> str | None:
    """The representation evaluate named winner for ``label``; None where it ranked nothing (too few
    test songs or classes: ``not_ranked`` says why)."""
    w = ctx.inp.summary["winner"][label]
    if w is None:
        if label not in ctx.inp.summary["not_ranked"]:
            raise ValueError(f"summary.json names no winner for '{label}' and no reason under not_ranked")
        return None
    return str(w["representation"])


def summary(ctx: Ctx) -> dict[str, Any]:
    """The headline: one winner per label (or why there is none), the ranking rule, the protocol, what
    was not applicable."""
    s = ctx.inp.summary
    labels = list(s["labels"])
    for lab in labels:  # a consistency check of what evaluate wrote, not a statistic
        if _winner_of(ctx, lab) in s["not_applicable"]:
            raise ValueError(
                f"summary.json names '{_winner_of(ctx, lab)}' winner for '{lab}' but also not applicable"
            )
    return {
        "labels": labels,
        "n_test_songs": int(s["n_test_songs"]),
        "n_test_clips": int(s["n_test_clips"]),
        "interval": s["interval"],
        "ranking_rule": s["ranking_rule"],
        "headline_protocol": s["headline_protocol"],
        "winners": [{"label": lab, **s["winner"][lab]} for lab in labels if _winner_of(ctx, lab)],
        "not_ranked": [{"label": lab, **s["not_ranked"][lab]} for lab in labels if not _winner_of(ctx, lab)],
        "not_applicable": sorted(s["not_applicable"].items()),
        "conditioned": sorted(s["conditioned"].items()),
        # representation/label pairs with a flagged column (the evaluation lists each pair's strongest)
        "n_leakage_flagged": len({(f["representation"], f["label"]) for f in s["leakage"]["flagged"]}),
        "label_notes": list(s["label_notes"]),
        "notes": list(s["notes"]),
    }


def dataset(ctx: Ctx) -> dict[str, Any]:
    """Songs, clips, label values, the song-level split and what the download skipped."""
    songs, segs, dl = ctx.inp.songs, ctx.inp.segments, ctx.inp.download
    labels = []
    for lab in ctx.label_columns:
        if lab not in songs.columns:
            raise ReportInputError(f"{ctx.inp.paths.raw / 'songs.parquet'}: no label column '{lab}'")
        vc = songs[lab].astype(object).where(songs[lab].notna(), "unknown").astype(str).value_counts()
        labels.append({"label": lab, "counts": sorted(vc.items(), key=lambda kv: F.natural_key(kv[0]))})
    split_order = {"train": 0, "val": 1, "test": 2}
    splits = [
        {"split": sp, "songs": int(g["song_id"].nunique()), "clips": len(g)}
        for sp, g in sorted(segs.groupby("split"), key=lambda kv: split_order[kv[0]])
    ]
    return {
        "n_songs": len(songs),
        "n_clips": len(segs),
        "labels": labels,
        "splits": splits,
        "download": {
            "source": dl["source"],
            "rows_in": dl["rows_in"],
            "ok": dl["ok"],
            "skipped": dl["skipped"],
            "reasons": sorted(dl["reasons"].items()),
        },
        # label spellings the download stage merged (case, spaces): classes the user may not expect
        "label_notes": list(dl["label_notes"]),
    }


def ranking(ctx: Ctx) -> dict[str, Any]:
    """Per label: the evaluation's ranking with intervals, separability and a bar chart."""
    s = ctx.inp.summary
    ci = float(s["interval"]["ci"])
    per_label = []
    for lab in s["labels"]:
        rows = list(s["ranking"][lab])
        winner = _winner_of(ctx, lab)
        if winner is not None and winner not in {r["representation"] for r in rows}:
            raise ValueError(f"winner '{winner}' for '{lab}' is not in summary.json ranking['{lab}']")
        caption = (
            f"NMI with {lab} on {s['n_test_songs']} test songs; whiskers: {ci:.0%} interval "
            "(metrics/summary.json). "
        ) + ("Dark: the winner; light: not separable from it." if winner else "Not ranked: no winner.")
        fig = (
            ctx.figure(F.ranking_bars, (rows, lab, ci), f"ranking_{lab}", f"NMI ranking for {lab}", caption)
            if rows
            else None
        )
        per_label.append(
            {
                "label": lab,
                "winner": winner,
                "not_ranked": s["not_ranked"].get(lab),
                "rows": [{**r, "is_winner": r["representation"] == winner} for r in rows],
                "best_per_modality": sorted(s["best_per_modality"].get(lab, {}).items()),
                "figure": fig,
            }
        )
    return {
        "n_test_songs": int(s["n_test_songs"]),
        "ci": ci,
        "labels": per_label,
        "not_applicable": sorted(s["not_applicable"].items()),
    }


def detail(ctx: Ctx) -> dict[str, Any]:
    """Every algorithm / level / k choice on test songs, from metrics/means.csv (as written)."""
    m = ctx.inp.means
    test = m[m["scope"] == "test"]
    per_label = []
    for lab in ctx.inp.summary["labels"]:
        rows = test[test["label"] == lab].sort_values(list(DETAIL_KEYS), kind="stable", na_position="first")
        per_label.append(
            {
                "label": lab,
                "winner": _winner_of(ctx, lab),
                "rows": [
                    {k: r[k] for k in (*DETAIL_KEYS, "n_seeds", "n_songs")}
                    | {
                        "scores": [
                            (
                                r[x],
                                *((r[f"{x}_low"], r[f"{x}_high"]) if x in DETAIL_INTERVALS else (None, None)),
                            )
                            for x in DETAIL_METRICS
                        ]
                    }
                    for r in rows.to_dict("records")
                ],
            }
        )
    return {
        "metrics": DETAIL_METRICS,
        "labels": per_label,
        "n_test_songs": int(ctx.inp.summary["n_test_songs"]),
        # each clip carries its song's vector: their clip-level rows are song-level, not clip evidence
        "song_vectors": sorted(
            n for n, r in ctx.inp.reps.items() if r.applicable and r.info["vector_level"] == "song"
        ),
    }


def leakage(ctx: Ctx) -> dict[str, Any]:
    """Label columns a linear probe could read off a representation (the evaluation's audit)."""
    leak = ctx.inp.summary["leakage"]
    return {"threshold": leak["threshold"], "flagged": list(leak["flagged"])}


def disentanglement(ctx: Ctx) -> dict[str, Any]:
    """MIG of every model's latents per label, as the evaluation wrote it (summary.json)."""
    s = ctx.inp.summary
    labels = list(s["labels"])
    rows = [
        {"representation": rep, "cells": [per_label.get(lab) for lab in labels]}
        for rep, per_label in sorted(s["disentanglement"].items())
    ]
    return {"labels": labels, "rows": rows, "method": s["disentanglement_method"]}


def maps(ctx: Ctx) -> dict[str, Any]:
    """One precomputed 2-D map per applicable representation (first seed), coloured by each label."""
    labels = {lab: ctx.inp.songs.set_index("song_id")[lab] for lab in ctx.label_columns}
    items, skipped = [], []
    for name, rep in ctx.inp.reps.items():
        if not rep.applicable:
            skipped.append((name, rep.info["reason"]))
            continue
        seed, first = first_seed_maps(ctx.inp.paths, name, rep)
        methods = sorted(first["method"].unique(), key=METHOD_ORDER.index)  # ValueError names an unknown one
        seed_text = "seed-independent" if seed == -1 else f"seed {seed}"  # -1: baselines without seeds
        points = {
            meth: first[first["method"] == meth].sort_values("song_id", kind="stable") for meth in methods
        }
        notes = [
            (F.METHOD_NAMES[meth], note)
            for meth in methods
            for note in sorted(points[meth]["note"].dropna().astype(str).unique())
        ]
        fig = ctx.figure(
            F.latent_map,
            (points, labels, f"{name} ({seed_text})"),
            f"latent_{name}",
            f"2-D maps of {name}",
            f"{name}: one point per song ({rep.info['modality']}), {seed_text}; "
            "maps computed by the cluster stage.",
        )
        items.append(
            {
                "name": name,
                "seed": seed,
                "figure": fig,
                "notes": notes,
                "description": rep.info["description"],
            }
        )
    return {"maps": items, "not_applicable": skipped}


def explore(ctx: Ctx) -> dict[str, Any]:
    """Every song on one interactive map: any representation, map and label, hover and listen.

    It opens on the first label's winner.
    """
    labels = list(ctx.inp.summary["labels"])
    payload = explore_data(ctx.inp, labels, ctx.params, ctx.cache)
    return section_data(
        payload, read_vega(ctx.inp.paths.vega), _winner_of(ctx, labels[0]) if labels else None
    )


def _excerpt(ctx: Ctx, song_id: str) -> dict[str, Any]:
    if song_id not in ctx.excerpts:  # the same song can be central for two labels
        y, sr, start = song_excerpt(ctx.inp.segments, ctx.inp.paths.segments, song_id, ctx.params.excerpt_s)
        ctx.excerpts[song_id] = {
            "uri": data_uri(ctx.cache.get(encode_ogg, y, sr), "audio/ogg"),
            "start_s": start,
        }
    return ctx.excerpts[song_id]


def listen(ctx: Ctx) -> dict[str, Any]:
    """Per label: the winner's headline clusters and their most central songs, with excerpts."""
    songs = ctx.inp.songs.set_index("song_id")
    split = ctx.inp.segments.drop_duplicates("song_id").set_index("song_id")["split"]
    n = ctx.params.n_central_songs
    per_label, not_ranked = [], []
    for lab in ctx.inp.summary["labels"]:
        winner = _winner_of(ctx, lab)
        if winner is None:  # nothing to listen to: no clustering was named the best for this label
            not_ranked.append(lab)
            continue
        rep = ctx.inp.reps[winner]
        clusters, vectors, seed = winner_clusters(ctx.inp.paths, winner, lab, list(rep.info["columns"]))
        central = central_songs(vectors, list(rep.info["columns"]), clusters, n)
        groups = []
        for c, members in central.items():
            group_songs = []
            for song_id, dist in members:
                meta = songs.loc[song_id]
                group_songs.append(
                    {
                        "song_id": song_id,
                        "title": meta["title"],
                        "artist": meta["artist"],
                        "labels": [(x, meta[x]) for x in ctx.label_columns],
                        "split": split[song_id],
                        "distance": dist,
                        **_excerpt(ctx, song_id),
                    }
                )
            groups.append({"cluster": c, "size": int((clusters == c).sum()), "songs": group_songs})
        per_label.append({"label": lab, "winner": winner, "seed": seed, "k": len(central), "groups": groups})
    return {"n": n, "excerpt_s": ctx.params.excerpt_s, "labels": per_label, "not_ranked": not_ranked}


def _recon_figures(ctx: Ctx, name: str, recon: dict) -> list[dict[str, str]]:
    """One figure per ``<input>`` / ``<input>_recon`` pair training wrote (multimodal models have two)."""
    # a song-level model (info.json level: song) reconstructs songs: its samples carry song_id
    ids = [str(x) for x in recon["segment_id" if "segment_id" in recon else "song_id"][:N_RECON]]
    pairs = [k for k in recon if f"{k}_recon" in recon]
    if not pairs:
        raise ReportInputError(
            f"{ctx.inp.paths.models / name / 'recon.npz'}: no '<input>' / "
            f"'<input>_recon' pair (has {sorted(recon)})"
        )
    out = []
    for k in pairs:
        what = "" if len(pairs) == 1 else f" ({k})"
        args = (
            recon[k][:N_RECON],
            recon[f"{k}_recon"][:N_RECON],
            f"{name}{what}: original vs reconstructed",
            ids,
        )
        out.append(
            ctx.figure(
                F.reconstruction_figure,
                args,
                f"recon_{name}" + (f"_{k}" if len(pairs) > 1 else ""),
                f"reconstructions of {name}{what}",
            )
        )
    return out


def training(ctx: Ctx) -> dict[str, Any]:
    """Validation curves (history.csv), each model's setup (info.json) and reconstructions (recon.npz)."""
    trained = {n: r for n, r in ctx.inp.reps.items() if r.is_model and r.applicable}
    best = ctx.inp.summary["training"]
    rows, recon = [], []
    for name, rep in trained.items():
        info = rep.model_info
        inputs = info["inputs"]
        rows.append(
            {
                "model": name,
                "inputs": " + ".join([*inputs["feature_sets"], *(["lyrics"] if "text" in inputs else [])]),
                "latent_dim": info["latent_dim"],
                "conditioned_on": ", ".join(info["conditioned_on"]),
                "seeds": len(info["seeds"]),
                "best_val_loss": best[name]["best_val_loss"],
            }
        )
        if rep.recon is not None:
            recon.extend(_recon_figures(ctx, name, rep.recon))
    curves = [
        ctx.figure(
            F.training_curve,
            (name, rep.history),
            f"training_curves_{name}",
            f"validation loss of {name} per optimizer step",
        )
        for name, rep in trained.items()
    ]
    return {"models": rows, "curves": curves, "recon": recon}


#: (anchor, title, function): the page in reading order.
SECTIONS: Sequence[tuple[str, str, Callable[[Ctx], dict[str, Any]]]] = (
    ("summary", "Summary", summary),
    ("dataset", "Dataset", dataset),
    ("ranking", "Ranking", ranking),
    ("detail", "All clusterings", detail),
    ("leakage", "Leakage audit", leakage),
    ("disentanglement", "Disentanglement", disentanglement),
    ("maps", "Latent maps", maps),
    ("explore", "Explore the map", explore),
    ("listen", "Listen", listen),
    ("training", "Training", training),
)
