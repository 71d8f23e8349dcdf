"""The self-contained comparison page: experiments and their maps in, one HTML string out.

Figures are inline PNG (``data:`` URIs) and the style sheet is inline, so the page loads nothing
over the network. The markup lives in ``templates/compare.html.j2`` (Jinja2, autoescaped).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader

from musiclust.compare import figures, frames

TEMPLATES = Path(__file__).with_name("templates")
MAX_CURVE_REPS = 6  # lines per curve figure when the caller does not choose


@dataclass(frozen=True)
class Maps:
    """Latent maps to show: representation -> experiment -> ``maps.parquet`` rows (None: unavailable)."""

    frames: Mapping[str, Mapping[str, pd.DataFrame | None]] = field(default_factory=dict)
    method: str = "tsne"
    notes: Sequence[str] = ()
    colour: Mapping[str, str] | None = None  # song_id -> label value
    colour_name: str = ""


def _b64(fig) -> str:
    return base64.b64encode(figures.png_bytes(fig)).decode("ascii")


def _cell(value) -> dict:
    if isinstance(value, float):
        return {"text": "-" if math.isnan(value) else f"{value:.4g}", "num": True}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"text": str(value), "num": True}
    return {"text": "-" if value is None else str(value), "num": False}


def table_context(frame: pd.DataFrame, index: bool = False) -> dict:
    """A frame as ``{"header": [...], "rows": [[{"text", "num"}, ...], ...]}`` for the template."""
    if index:
        frame = frame.reset_index()
    return {
        "header": [str(c) for c in frame.columns],
        "rows": [[_cell(v) for v in row] for row in frame.itertuples(index=False)],
    }


def choose_method(maps: Mapping[str, Mapping[str, pd.DataFrame | None]], preferred: str) -> str:
    """``preferred`` if any map has it, else the first of tsne, umap, pca that one has."""
    have = {
        m
        for per_exp in maps.values()
        for f in per_exp.values()
        if f is not None
        for m in f["method"].unique()
    }
    for m in (preferred, "tsne", "umap", "pca"):
        if m in have:
            return m
    return preferred


def curve_representations(headline: pd.DataFrame, chosen: Sequence[str] = ()) -> list[str]:
    """Representations drawn in the curves: ``chosen``, else those the sweep moved (at most MAX_CURVE_REPS)."""
    if chosen:
        return list(chosen)
    return frames.varying_representations(headline)[:MAX_CURVE_REPS]


def render_page(
    experiments: Sequence[frames.Experiment],
    maps: Maps | None = None,
    representations: Sequence[str] = (),
    table_reps: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The comparison page (HTML text) for ``experiments`` in the given order.

    ``representations``: the ones drawn in the curves (default: those the experiments moved);
    ``table_reps``: the ones given their own NMI columns in the table.
    """
    params = frames.params_frame(experiments)
    headline = frames.headline_frame(experiments)
    labels = frames.labels_of(headline)
    names = [e.name for e in experiments]
    changed = frames.changed_params(params)
    summary = frames.format_table(frames.summary_table(params, headline, table_reps))

    curves = _curves(params, headline, changed, labels, curve_representations(headline, representations))
    if not changed:
        curves_note = "No param differs between the experiments."
    else:
        curves_note = "No representation's headline numbers differ between the experiments."
    map_figs, map_notes = _maps(maps)
    rankings, losses = _rankings(headline, labels, names)

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, keep_trailing_newline=True)
    return env.get_template("compare.html.j2").render(
        experiments=names,
        notes=list(notes),
        summary=table_context(summary),
        curves=curves,
        curves_note=curves_note,
        maps=map_figs,
        maps_notes=map_notes,
        rankings=rankings,
        losses=losses,
    )


def _curves(
    params: pd.DataFrame,
    headline: pd.DataFrame,
    changed: Sequence[str],
    labels: Sequence[str],
    reps: Sequence[str],
) -> list[dict]:
    """One curve figure (NMI of ``reps`` against the param) per changed param and label with data."""
    curves = []
    for param in changed:
        for label in labels:
            parts = [
                frames.metric_vs_param(params, headline, param, rep, label).assign(representation=rep)
                for rep in reps
            ]
            data = (
                pd.concat([p for p in parts if not p.empty], ignore_index=True) if parts else pd.DataFrame()
            )
            if data.empty:
                continue
            curves.append(
                {
                    "id": f"curve-{param}-{label}",
                    "title": f"NMI on {label} against {param}",
                    "png": _b64(figures.curve_figure(data, param, label)),
                    "flat": flat_note(data, param, label),
                }
            )
    return curves


def flat_note(data: pd.DataFrame, param: str, label: str) -> str:
    """A sentence naming the drawn representations whose NMI on ``label`` is the same at every value of
    ``param`` (a flat line is a result, said in words, not left for the reader to spot); "" if none."""
    flat = [
        f"{rep} ({g['metric'].iloc[0]:.3f})"
        for rep, g in data.groupby("representation", sort=True)
        if g["value"].nunique() > 1 and g["metric"].nunique(dropna=False) == 1
    ]
    if not flat:
        return ""
    verb, whose = ("scores", "its") if len(flat) == 1 else ("score", "their")
    return (
        f"No effect on {label} NMI: {', '.join(flat)} {verb} the same at every value of {param} "
        f"(drawn because another of {whose} headline numbers moved)."
    )


def _maps(maps: Maps | None) -> tuple[list[dict], list[str]]:
    """The latent-map figure (at most one: a grid of representations by experiments) and notes."""
    map_figs, map_notes = [], list(maps.notes) if maps else ["Latent maps were not requested."]
    if maps and maps.frames:
        method = choose_method(maps.frames, maps.method)
        grid = {rep: frames.map_grid(per_exp, rep, method) for rep, per_exp in maps.frames.items()}
        grid = {rep: g for rep, g in grid.items() if g}
        if grid:
            map_figs.append(
                {
                    "id": "maps",
                    "title": f"{method} maps of song vectors, one column per experiment"
                    + (f", colour = {maps.colour_name}" if maps.colour else ""),
                    "png": _b64(figures.maps_figure(grid, method, maps.colour, maps.colour_name)),
                }
            )
        else:
            map_notes.append("No experiment has a readable maps.parquet for the chosen representations.")
    return map_figs, map_notes


def _rankings(
    headline: pd.DataFrame, labels: Sequence[str], names: Sequence[str]
) -> tuple[list[dict], list[dict]]:
    """Per label: the ranking of experiments (table and figure) and, where known, loss against NMI."""
    rankings, losses = [], []
    for label in labels:
        ranking = frames.ranking_frame(headline, label, names)
        rankings.append(
            {
                "label": label,
                "table": table_context(ranking[[*[n for n in names if n in ranking], "mean"]], index=True),
                "title": f"Headline NMI on {label} with interval, per experiment",
                "png": _b64(figures.ranking_figure(headline, ranking, label)),
            }
        )
        lv = frames.loss_vs_nmi(headline, label)
        if not lv.empty:
            losses.append(
                {
                    "title": f"Best validation loss against NMI on {label}",
                    "png": _b64(figures.loss_nmi_figure(lv, label)),
                    "table": table_context(lv),
                }
            )
    return rankings, losses
