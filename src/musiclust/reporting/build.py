"""Assemble the self-contained HTML report and its PNG figures.

:func:`make_report` takes everything already loaded (:class:`ReportInputs`, :class:`Provenance`)
plus a :class:`ReportConfig`, writes every figure to ``figures_dir`` and returns the page as
one string in which every image, sound and style is inline.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from musiclust.fileio import atomic_write_bytes, safe_id
from musiclust.reporting import figures as F
from musiclust.reporting import tables as T
from musiclust.reporting.excerpts import ExcerptError, encode_ogg, song_excerpt
from musiclust.reporting.html import audio, esc, image, page, table
from musiclust.reporting.inputs import ModelRun, ReportInputs
from musiclust.reporting.provenance import Provenance
from musiclust.reporting.style import fig_to_png

log = logging.getLogger(__name__)

#: Label-dependent metrics shown in the main tables (when the evaluation wrote them).
MAIN_METRICS = ("nmi", "ari", "v_measure", "purity", "accuracy")
#: Internal (label-free) metrics.
INTERNAL_METRICS = ("silhouette", "calinski_harabasz", "davies_bouldin", "noise_fraction")
#: Above this many points a map is subsampled (t-SNE on 600 points takes ~2 s on one core).
MAX_MAP_POINTS = 600
#: Below this many songs the maps show clips, so a 10-song corpus still has a picture.
MIN_SONGS_FOR_SONG_MAP = 40


@dataclass(frozen=True)
class ReportConfig:
    """What the report stage reads from params (``report`` and ``data.label_columns``)."""

    label_columns: tuple[str, ...] = ("language", "genre")
    n_central_songs: int = 3
    excerpt_s: float = 4.0
    seed: int = 0
    ci: float = 0.95
    projections: tuple[str, ...] = ("pca", "tsne", "umap")


@dataclass
class _View:
    """Which slice of the metrics the main tables show (the evaluation writes many)."""

    algorithm: str
    level: str
    subset: str


@dataclass
class _Ctx:
    inputs: ReportInputs
    cfg: ReportConfig
    figures_dir: Path
    figure_names: list[str] = field(default_factory=list)
    tidy: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None
    marks_source: str = ""
    view: _View | None = None
    baselines: set[str] = field(default_factory=lambda: set(T.BASELINES))
    view_note: str = ""
    alpha: float = 0.05

    def figure(self, fig: Any, name: str, alt: str, caption: str = "") -> str:
        """Save a figure as ``<figures_dir>/<name>.png`` and return its inline ``<figure>``."""
        png = fig_to_png(fig)
        stem = safe_id(name)
        atomic_write_bytes(self.figures_dir / f"{stem}.png", png)
        self.figure_names.append(stem)
        return image(png, alt, caption)


# --------------------------------------------------------------------------- helpers


def _labels(inp: ReportInputs) -> pd.DataFrame | None:
    """One row per song with its label columns (from songs.parquet, else segments)."""
    for frame in (inp.songs, inp.segments):
        if frame is not None and "song_id" in frame.columns:
            return frame.drop_duplicates("song_id").set_index("song_id")
    return None


def _first(options: Sequence[str], present: Sequence[str]) -> str:
    for o in options:
        if o in present:
            return o
    return sorted(present)[0]


def _fmt_count(counts: pd.Series) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(float(v)) else f"{float(v):.4g}"
    return str(v)


# --------------------------------------------------------------------------- sections


def _section_inputs(ctx: _Ctx) -> str:
    if not ctx.inputs.problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in ctx.inputs.problems)
    return (f'<div class="warn"><b>Some inputs were missing or unreadable</b>; the sections that need them '
            f"are left out or marked.<ul>{items}</ul></div>")


def _section_summary(ctx: _Ctx) -> str:
    """The headline in five lines: corpus, best per label, models vs baselines, leakage."""
    inp = ctx.inputs
    items = []
    if inp.songs is not None:
        n_clips = len(inp.segments) if inp.segments is not None else "?"
        src = (inp.download_report or {}).get("source", "?")
        labs = [f"{lab} ({inp.songs[lab].nunique()})" for lab in ctx.cfg.label_columns if lab in inp.songs.columns]
        items.append(f"{len(inp.songs)} songs ({esc(src)}), {n_clips} clips; labels: {esc(', '.join(labs))}.")
    s, v = ctx.summary, ctx.view
    if s is not None and v is not None:
        head = s[(s["metric"] == "nmi") & (s["algorithm"] == v.algorithm) & (s["level"] == v.level)
                 & (s["subset"] == v.subset)]
        for lab in [lab for lab in ctx.cfg.label_columns if lab in set(head["label"])]:
            g = head[head["label"] == lab].sort_values("mean", ascending=False)
            best = g.iloc[0]
            base = g[g["representation"].isin(ctx.baselines)]
            btxt = (f"; best baseline {esc(base.iloc[0]['representation'])} "
                    f"{T.fmt_interval(base.iloc[0]['mean'], base.iloc[0]['lo'], base.iloc[0]['hi'])}"
                    if len(base) and base.iloc[0]["representation"] != best["representation"] else "")
            items.append(f"<b>{esc(lab)}</b>: best NMI {esc(best['representation'])} "
                         f"{T.fmt_interval(best['mean'], best['lo'], best['hi'])}{btxt} "
                         f"({esc(v.algorithm)}, {esc(v.level)} level, {esc(v.subset)} songs).")
        m = ctx.marks
        if m is not None and not m.empty:
            sel = m[(m["algorithm"] == v.algorithm) & (m["level"] == v.level) & (m["subset"] == v.subset)
                    & (m["metric"] == "nmi") & m["p_value"].notna()]
            if len(sel):
                up, down = int((sel["better"] == True).sum()), int((sel["better"] == False).sum())  # noqa: E712
                items.append(f"Model vs best baseline (NMI, paired over seeds): {up} significantly better, "
                             f"{down} worse, {len(sel) - up - down} not significantly different, of {len(sel)}.")
    leak = (inp.metrics_json.get("summary.json") or {}).get("leakage")
    if isinstance(leak, dict):
        flagged = leak.get("flagged") or []
        items.append("Leakage audit: " + (f"<b>flagged</b> {esc(', '.join(flagged))}." if flagged
                                          else "nothing flagged."))
    if not items:
        return ""
    return '<h2 id="summary">Summary</h2><ul>' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _section_dataset(ctx: _Ctx) -> str:
    inp, cfg = ctx.inputs, ctx.cfg
    out = ['<h2 id="dataset">Dataset</h2>']
    cards = []
    songs, segs = inp.songs, inp.segments
    if songs is not None:
        cards.append((len(songs), "songs"))
        if "duration_s" in songs.columns:
            cards.append((f"{songs['duration_s'].sum() / 60:.1f}", "minutes of audio"))
    if segs is not None:
        cards.append((len(segs), "clips"))
        if "is_silent" in segs.columns:
            cards.append((int(segs["is_silent"].astype(bool).sum()), "silent clips (flagged)"))
    has_lyr = None
    if songs is not None and "has_lyrics" in songs.columns:
        has_lyr = songs["has_lyrics"].astype(bool)
    elif inp.lyrics is not None and "has_lyrics" in inp.lyrics.columns:
        has_lyr = inp.lyrics["has_lyrics"].astype(bool)
    if has_lyr is not None and len(has_lyr):
        cards.append((f"{int(has_lyr.sum())}/{len(has_lyr)}", f"songs with lyrics ({has_lyr.mean():.0%})"))
    rep = inp.download_report
    if rep:
        cards.append((rep.get("ok", "?"), f"acquired of {rep.get('rows_in', '?')} requested"))
        cards.append((rep.get("skipped", "?"), "skipped (reasons below)"))
    out.append('<div class="cards">' + "".join(
        f"<div class=\"card\"><b>{esc(v)}</b><span>{esc(t)}</span></div>" for v, t in cards) + "</div>")
    if rep:
        src = rep.get("source", "?")
        rows_in, ok, skipped = rep.get("rows_in"), rep.get("ok"), rep.get("skipped")
        out.append(f"<p>Source: <code>{esc(src)}</code>. Requested {esc(rows_in)}, acquired {esc(ok)}, "
                   f"skipped {esc(skipped)}.</p>")
        if all(isinstance(x, int) for x in (rows_in, ok, skipped)) and rows_in != ok + skipped:
            out.append(f'<div class="warn">The download report does not add up: {rows_in} requested but '
                       f"{ok} acquired + {skipped} skipped.</div>")
        reasons = rep.get("reasons") or {}
        if reasons:
            out.append("<h3>Why songs were skipped</h3>")
            out.append(table(["reason", "songs"], sorted(reasons.items(), key=lambda kv: -kv[1]), [False, True]))
        skipped_rows = [r for r in rep.get("rows") or [] if r.get("status") != "ok"]
        if skipped_rows:
            body = table(["row", "track", "reason", "detail"],
                         [(r.get("row"), r.get("track_id") or r.get("song_id"), r.get("reason"),
                           str(r.get("detail") or "")[:160]) for r in skipped_rows])
            out.append(f"<details><summary>All {len(skipped_rows)} skipped rows</summary>"
                       f'<div class="scroll">{body}</div></details>')
    if songs is not None:
        rows = []
        for col in cfg.label_columns:
            if col in songs.columns:
                vc = songs[col].fillna("unknown").astype(str).value_counts().sort_index()
                rows.append((col, len(vc), _fmt_count(vc)))
        if rows:
            out.append("<h3>Labels (evaluation only, never model inputs)</h3>")
            out.append(table(["label", "values", "songs per value"], rows, [False, True, False]))
        fig = F.dataset_figure(songs, cfg.label_columns)
        if fig is not None:
            out.append(ctx.figure(fig, "dataset_labels", "songs per label",
                                  "Songs per label value (from data/raw/songs.parquet)."))
    if segs is not None and "split" in segs.columns:
        g = segs.groupby("split")
        order = [s for s in ("train", "val", "test") if s in g.groups] + sorted(
            s for s in g.groups if s not in ("train", "val", "test"))
        rows = [(s, g.get_group(s)["song_id"].nunique(), len(g.get_group(s))) for s in order]
        out.append("<h3>Song-level split</h3>")
        out.append(table(["split", "songs", "clips"], rows, [False, True, True]))
        shared = segs.groupby("song_id")["split"].nunique()
        if (shared > 1).any():
            out.append(f'<div class="warn">{int((shared > 1).sum())} songs have clips in more than one '
                       "split (leakage between train and test).</div>")
        else:
            out.append('<p class="note">Every song\'s clips are in exactly one split.</p>')
    if inp.segment_report:
        flat = {k: v for k, v in _flatten(inp.segment_report).items() if not isinstance(v, list)}
        if flat:
            body = table(["key", "value"], [(k, _num(v)) for k, v in sorted(flat.items())][:60])
            out.append(f"<details><summary>Segment stage report</summary>{body}</details>")
    return "".join(out)


def _prepare_metrics(ctx: _Ctx) -> None:
    """Per-seed rows, means with intervals and significance marks, from the evaluation's files.

    Prefers what the evaluation computed (``means.csv``, ``summary.json`` comparisons) and only
    recomputes from ``all.csv`` what it did not write.
    """
    inp = ctx.inputs
    table_ = inp.metrics_table
    if table_ is not None and not table_.empty:
        try:
            ctx.tidy = T.tidy_metrics(table_)
        except Exception as exc:  # an unexpected layout must not cost the rest of the report
            inp.note(f"metrics table: could not be read as per-seed metrics ({exc})")
        if "kind" in table_.columns and "representation" in table_.columns:
            ctx.baselines = set(table_.loc[table_["kind"] == "baseline", "representation"].astype(str))
    man = inp.cluster_manifest or {}
    for rep, entry in (man.get("representations") or {}).items():
        if entry.get("kind") == "baseline":
            ctx.baselines.add(rep)
    if inp.metrics_means is not None and not inp.metrics_means.empty:
        ctx.summary = T.summary_from_means(inp.metrics_means)
    elif ctx.tidy is not None and not ctx.tidy.empty:
        ctx.summary = T.summarize(ctx.tidy, ctx.cfg.ci)
    if ctx.summary is None or ctx.summary.empty:
        ctx.summary = None
        return
    summ = inp.metrics_json.get("summary.json") or {}
    if summ.get("comparisons"):
        ctx.marks = T.marks_from_comparisons(summ["comparisons"])
        ctx.marks_source = "the evaluation's paired t-test over seeds on NMI (metrics/summary.json)"
    elif ctx.tidy is not None:
        ctx.marks = T.paired_marks(ctx.tidy, ctx.alpha)
        ctx.marks_source = "paired t-test over seeds against the best baseline, computed by the report"
    s_ = ctx.summary
    algorithm = _first(("kmeans", "gmm", "agglomerative"), list(s_["algorithm"].unique()))
    # the evaluation's headline (metrics/evaluate.json) is clip level on test songs
    level = _first(("clip", "song_mean", "song_vote", "song", "all"), list(s_["level"].unique()))
    scored = s_[(s_["metric"] == "nmi") & (s_["algorithm"] == algorithm) & (s_["level"] == level)]
    # prefer test songs; e.g. a 10-song corpus whose test split holds one song has no label
    # scores there (NMI is undefined with one class), so the tables fall back to all songs
    subset = _first(("test", "all"), list((scored if len(scored) else s_)["subset"].unique()))
    if subset != "test":
        ctx.view_note = (f"No label scores exist on test songs (too few songs or classes there); "
                         f"the tables use {subset} songs instead.")
    ctx.view = _View(algorithm=algorithm, level=level, subset=subset)


def _mark(ctx: _Ctx, rep: str, label: str, metric: str) -> str:
    m, v = ctx.marks, ctx.view
    if m is None or m.empty or v is None or rep in ctx.baselines:
        return ""
    sel = m[(m["representation"] == rep) & (m["label"] == label) & (m["metric"] == metric)
            & (m["algorithm"] == v.algorithm) & (m["level"] == v.level) & (m["subset"] == v.subset)]
    if sel.empty:
        return ""
    r = sel.iloc[0]
    if not np.isfinite(r["p_value"]):
        return ""  # no test was possible (fewer than two shared seeds)
    p = f"p={r['p_value']:.3f}"
    if r["better"] is True:
        return f' <span class="up" title="better than {esc(r["baseline"])}, {p}">&#9650;</span>'
    if r["better"] is False:
        return f' <span class="down" title="worse than {esc(r["baseline"])}, {p}">&#9660;</span>'
    return f' <span class="ns" title="not significant vs {esc(r["baseline"])} {p}">=</span>'


def best_model(ctx: _Ctx) -> tuple[str | None, str | None, str]:
    """(representation, algorithm, why): the trained model with the highest mean NMI over labels."""
    models = set(ctx.inputs.models) - ctx.baselines
    s, v = ctx.summary, ctx.view
    if s is not None and v is not None:
        sel = s[(s["metric"] == "nmi") & (s["level"] == v.level) & (s["subset"] == v.subset)
                & (s["algorithm"] == v.algorithm) & (s["representation"].isin(models))]
        if not sel.empty:
            means = sel.groupby("representation")["mean"].mean().sort_values(ascending=False)
            labs = ", ".join(sorted(sel["label"].unique()))
            return (means.index[0], v.algorithm,
                    f"highest NMI averaged over {labs} ({means.iloc[0]:.3f}; {v.algorithm}, "
                    f"{v.level} level, {v.subset} songs)")
    clusters = ctx.inputs.clusters
    if clusters is not None:
        reps = [r for r in T.order_representations(clusters["representation"].unique()) if r in models]
        if reps:
            return reps[0], _first(("kmeans", "gmm"), list(clusters["algorithm"].unique())), \
                "no metrics available: first model with cluster assignments"
    return None, None, "no trained model with cluster assignments"


def _section_metrics(ctx: _Ctx) -> str:
    out = ['<h2 id="metrics">How well each representation clusters</h2>']
    if ctx.summary is None or ctx.view is None:
        out.append('<p class="note">No metrics table (metrics/all.csv) was available.</p>')
        return "".join(out)
    s, v, cfg = ctx.summary, ctx.view, ctx.cfg
    n_seeds = int(ctx.tidy["seed"].nunique()) if ctx.tidy is not None else int(np.nanmax(s["n_seeds"]))
    summ = ctx.inputs.metrics_json.get("summary.json") or {}
    interval = (summ.get("protocol") or {}).get("interval") or f"{cfg.ci:.0%} t interval over seeds"
    seeds_txt = (f"Values are means over {n_seeds} seeds; brackets: {esc(interval)}."
                 if n_seeds > 1 else "Values come from a single seed: there are no intervals and no "
                 "significance tests (set <code>seeds</code> to several values for both).")
    out.append(f"<p>{seeds_txt} Main view: <b>{esc(v.algorithm)}</b>, "
               f"<b>{esc(v.level)}</b> level, scored on <b>{esc(v.subset)}</b> songs. Marks: "
               '<span class="up">&#9650;</span> significantly better / <span class="down">&#9660;</span> '
               'worse than the best baseline, <span class="ns">=</span> no significant difference '
               f"({esc(ctx.marks_source)}; &alpha;={ctx.alpha:g}). "
               f"Baselines: {esc(', '.join(T.order_representations(ctx.baselines, ctx.baselines)))}.</p>")
    if ctx.view_note:
        out.append(f'<div class="warn">{esc(ctx.view_note)}</div>')
    best = summ.get("best_unsupervised_headline") or {}
    if best:
        items = "".join(f"<li><b>{esc(lab)}</b>: {esc(b.get('method'))}, NMI "
                        f"{esc(T.fmt_interval(b.get('nmi') or math.nan, b.get('nmi_low') or math.nan, b.get('nmi_high') or math.nan))}</li>"
                        for lab, b in best.items())
        out.append(f"<p>Best unsupervised method per label (evaluation headline):</p><ul>{items}</ul>")
    cond = summ.get("not_unsupervised") or []
    if cond:
        out.append(f'<div class="warn">Not unsupervised (the model saw this label as its condition): '
                   f"{esc(', '.join(cond))}. Their scores on that label are not comparable.</div>")
    view = s[(s["algorithm"] == v.algorithm) & (s["level"] == v.level) & (s["subset"] == v.subset)]
    labels = [lab for lab in cfg.label_columns if lab in set(view["label"])] + sorted(
        lab for lab in set(view["label"]) if lab not in cfg.label_columns and lab != "-")
    heat_cols: dict[str, pd.Series] = {}
    for lab in labels:
        lv = view[view["label"] == lab]
        metrics = [m for m in T.order_metrics(lv["metric"].unique()) if m in MAIN_METRICS]
        if not metrics:
            continue
        reps = T.order_representations(lv["representation"].unique(), ctx.baselines)
        rows, classes = [], []
        for rep in reps:
            row: list[str] = [esc(rep) + (" <small>(baseline)</small>" if rep in ctx.baselines else "")]
            for m in metrics:
                r = lv[(lv["representation"] == rep) & (lv["metric"] == m)]
                cell = "-" if r.empty else esc(T.fmt_interval(r["mean"].iloc[0], r["lo"].iloc[0], r["hi"].iloc[0]))
                row.append(cell + _mark(ctx, rep, lab, m))
            rows.append(row)
            classes.append(rep)
        nmi = lv[lv["metric"] == "nmi"].set_index("representation")["mean"]
        top = nmi.max() if len(nmi) and nmi.notna().any() else math.nan
        classes = ["best" if np.isfinite(top) and nmi.get(c, -np.inf) >= top - 1e-9 else "" for c in classes]
        out.append(f"<h3>Against <code>{esc(lab)}</code></h3>"
                   '<p class="note">Highlighted: the highest NMI on this label.</p>')
        out.append(table(["representation", *[m.upper() if len(m) <= 3 else m.replace("_", " ")
                                              for m in metrics]],
                         rows, [False] + [True] * len(metrics), classes, raw=True))
        for m in ("nmi", "ari"):
            sub = lv[lv["metric"] == m].set_index("representation")["mean"]
            if not sub.empty:
                heat_cols[f"{lab} {m.upper()}"] = sub
    internal = view[view["metric"].isin(INTERNAL_METRICS)]
    if not internal.empty:
        # internal scores do not depend on the label: the evaluation repeats them per label row
        internal = internal.drop_duplicates(["representation", "metric"])
        metrics = T.order_metrics(internal["metric"].unique())
        reps = T.order_representations(internal["representation"].unique(), ctx.baselines)
        rows = []
        for rep in reps:
            row = [rep]
            for m in metrics:
                r = internal[(internal["representation"] == rep) & (internal["metric"] == m)]
                row.append("-" if r.empty else T.fmt_interval(r["mean"].iloc[0], r["lo"].iloc[0], r["hi"].iloc[0]))
            rows.append(row)
        out.append("<h3>Cluster quality without labels</h3>")
        out.append(table(["representation", *[m.replace("_", " ") for m in metrics]], rows,
                         [False] + [True] * len(metrics)))
        sil = internal[internal["metric"] == "silhouette"].drop_duplicates("representation")
        if not sil.empty:
            heat_cols["silhouette"] = sil.set_index("representation")["mean"]
    if heat_cols:
        mat = pd.DataFrame(heat_cols)
        mat = mat.loc[T.order_representations(mat.index, ctx.baselines)]
        out.append(ctx.figure(F.metric_heatmap(mat, f"Representation x metric ({v.algorithm}, {v.level}, "
                                                    f"{v.subset})"),
                              "metric_heatmap", "representation by metric heatmap",
                              "Mean over seeds. NMI/ARI: agreement with the label (1 = perfect, 0 = chance); "
                              "silhouette: separation of the clusters themselves."))
    skips = summ.get("skipped_runs") or []
    if skips:
        body = table(["representation", "algorithm", "level", "reason", "seeds"],
                     [(k.get("representation"), k.get("algorithm"), k.get("level"), k.get("reason"),
                       k.get("n_seeds")) for k in skips], [False, False, False, False, True])
        out.append(f"<details><summary>{len(skips)} kinds of clustering runs were skipped (with reasons)"
                   f'</summary><div class="scroll">{body}</div></details>')
    # every slice the evaluation wrote, for readers who want the other algorithms / levels
    keys = ["representation", "algorithm", "label", "level", "subset"]
    wanted = [m for m in ("nmi", "ari", "purity", "silhouette") if m in set(s["metric"])]
    wide = s[s["metric"].isin(wanted)].copy()
    if not wide.empty:
        wide["cell"] = [T.fmt_interval(a, b, c) for a, b, c in zip(wide["mean"], wide["lo"], wide["hi"])]
        piv = wide.pivot_table(index=keys, columns="metric", values="cell", aggfunc="first").reset_index()
        piv = piv.sort_values(keys)
        cols = [c for c in wanted if c in piv.columns]
        body = table([*keys, *cols], piv[[*keys, *cols]].fillna("-").itertuples(index=False),
                     [False] * len(keys) + [True] * len(cols))
        out.append(f"<details><summary>All {len(piv)} metric rows (every algorithm, level and subset)"
                   f'</summary><div class="scroll">{body}</div></details>')
    return "".join(out)


def _section_leakage(ctx: _Ctx) -> str:
    out = ['<h2 id="leakage">Leakage audit</h2>']
    summ = ctx.inputs.metrics_json.get("summary.json") or {}
    leak = summ.get("leakage")
    if isinstance(leak, dict):
        proto = (summ.get("protocol") or {}).get("leakage")
        if proto:
            out.append(f'<p class="note">Method: {esc(proto)}.</p>')
        flagged = leak.get("flagged") or []
        if flagged:
            out.append(f'<div class="warn"><b>Leakage flagged</b> for {esc(", ".join(flagged))}: a single input '
                       f"column predicts the label almost perfectly ({leak.get('n_flagged_columns', '?')} columns at "
                       f"balanced accuracy &ge; {esc(leak.get('threshold'))}). Scores on these labels may reflect "
                       "that column, not learned structure.</div>")
            cols = leak.get("flagged_columns") or []
            if cols:
                body = table(["representation", "seed", "label", "column", "balanced accuracy"],
                             [(c.get("representation"), c.get("seed"), c.get("label"), c.get("column"),
                               _num(c.get("balanced_accuracy"))) for c in cols],
                             [False, True, False, False, True])
                out.append(body if len(cols) <= 8 else
                           f"<details><summary>The {len(cols)} flagged columns</summary>"
                           f'<div class="scroll">{body}</div></details>')
        else:
            out.append(f'<div class="ok">No single input column predicts a label at balanced accuracy '
                       f"&ge; {esc(leak.get('threshold'))}.</div>")
        worst = leak.get("max_by_representation") or []
        if worst:
            out.append("<details><summary>Most predictive single column of every representation</summary>"
                       + table(["representation", "label", "column", "balanced accuracy"],
                               [(w.get("representation"), w.get("label"), w.get("column"),
                                 _num(w.get("balanced_accuracy"))) for w in worst], [False, False, False, True])
                       + "</details>")
        return "".join(out)
    found = []  # another layout: show whatever the evaluation wrote about leakage
    for name, obj in ctx.inputs.metrics_json.items():
        for k, v in _flatten(obj).items():
            if "leak" in k.lower() or "leak" in name.lower():
                found.append((name, k, v))
    if not found:
        out.append('<p class="note">The evaluation wrote no leakage audit into metrics/.</p>')
        return "".join(out)
    out.append(table(["file", "key", "value"], [(n, k, _num(v) if not isinstance(v, list) else
                                                 ", ".join(map(str, v)) or "none") for n, k, v in found]))
    return "".join(out)


_VECTOR_META = ("seed", "level", "unit_id", "song_id", "split", "segment_id")


def _map_points(ctx: _Ctx, rep: str, n_songs: int) -> tuple[pd.DataFrame, list[str], str, int] | None:
    """Points to map for one representation: ``(frame, vector columns, level, seed)``.

    Uses the cluster stage's ``vectors/<rep>.parquet`` (the exact vectors that were clustered,
    baselines included); falls back to a model's own latents. Song level (mean of clips) for
    corpora of at least :data:`MIN_SONGS_FOR_SONG_MAP` songs, clips (subsampled) otherwise.
    """
    from musiclust.reporting.inputs import load_vectors_of

    want_songs = n_songs >= MIN_SONGS_FOR_SONG_MAP
    vec = load_vectors_of(ctx.inputs, rep)
    if vec is not None and not vec.empty:
        levels = set(vec["level"].astype(str))
        level = "song_mean" if want_songs and "song_mean" in levels else ("clip" if "clip" in levels else sorted(levels)[0])
        frame = vec[vec["level"].astype(str) == level]
        seeds = sorted(frame["seed"].unique())
        seed = ctx.cfg.seed if ctx.cfg.seed in seeds else int(seeds[0])
        frame = frame[frame["seed"] == seed].copy()
        if level == "clip":
            frame["segment_id"] = frame["unit_id"]
        cols = [c for c in frame.columns if c not in _VECTOR_META]
    elif rep in ctx.inputs.models:
        run = ctx.inputs.models[rep]
        use_songs = run.song_latents is not None and (want_songs or run.latents is None)
        frame = run.song_latents if use_songs else run.latents
        if frame is None:
            return None
        level = "song_mean" if use_songs else "clip"
        seeds = sorted(frame["seed"].unique()) if "seed" in frame.columns else [ctx.cfg.seed]
        seed = ctx.cfg.seed if ctx.cfg.seed in seeds else int(seeds[0])
        if "seed" in frame.columns:
            frame = frame[frame["seed"] == seed]
        cols = run.latent_columns(frame)
    else:
        return None
    if len(frame) > MAX_MAP_POINTS:
        frame = frame.sample(MAX_MAP_POINTS, random_state=ctx.cfg.seed)
    return frame.reset_index(drop=True), cols, level, int(seed)


def _cluster_lookup(ctx: _Ctx, rep: str, algorithm: str | None, level: str, seed: int,
                    label: str | None = None) -> pd.Series | None:
    """Cluster id per song (``level`` song*) or per clip (``clip``) for one clustering run.

    Picks the run of ``rep`` with ``algorithm`` (else the first algorithm it has), ``seed``
    (else its smallest seed), whose k was chosen for ``label`` (``for_labels``), at ``level``;
    song level prefers ``song_mean``, then ``song_vote``, then a majority vote of clip clusters.
    """
    c = ctx.inputs.clusters
    if c is None:
        return None
    c = c[c["representation"] == rep]
    if c.empty:
        return None
    algos = list(c["algorithm"].unique())
    c = c[c["algorithm"] == (algorithm if algorithm in algos else _first(("kmeans", "gmm"), algos))]
    c = c[c["seed"] == (seed if (c["seed"] == seed).any() else c["seed"].min())]
    if label is not None:
        serves = c["for_labels"].map(lambda f: f == "*" or label in str(f).split(","))
        if serves.any():
            c = c[serves]
    if c["k"].nunique() > 1:  # several k for other labels: keep the largest (the finest grouping)
        c = c[c["k"] == c["k"].max()]
    if level == "clip":
        cc = c[(c["level"] == "clip") & c["segment_id"].notna()]
        return None if cc.empty else cc.drop_duplicates("segment_id").set_index("segment_id")["cluster"]
    for song_level in (level, "song_mean", "song_vote", "song"):
        cs = c[c["level"] == song_level]
        if not cs.empty:
            return cs.drop_duplicates("song_id").set_index("song_id")["cluster"]
    clips = c[c["level"] == "clip"]
    if clips.empty:
        return None
    # clip-level only: a song's cluster is the majority vote of its clips (ties: smallest id)
    return clips.groupby("song_id")["cluster"].agg(lambda s: s.value_counts().sort_index().idxmax())


def _map_representations(ctx: _Ctx) -> list[str]:
    man = ctx.inputs.cluster_manifest or {}
    reps = list((man.get("representations") or {}).keys())
    reps += [k for k, r in ctx.inputs.models.items() if k not in reps and
             (r.song_latents is not None or r.latents is not None)]
    return T.order_representations(reps, ctx.baselines)


def _section_maps(ctx: _Ctx) -> str:
    inp, cfg = ctx.inputs, ctx.cfg
    out = ['<h2 id="maps">Latent spaces in 2-D</h2>']
    labels = _labels(inp)
    n_songs = len(labels) if labels is not None else 0
    methods = [m for m in cfg.projections if m != "umap" or F.umap_available()]
    umap_note = ""
    if "umap" in cfg.projections and "umap" not in methods:
        umap_note = " (UMAP was asked for in report.projections but umap-learn is not installed)"
    if not methods:
        out.append('<p class="note">No projection selected (report.projections is empty).</p>')
        return "".join(out)
    names = ", ".join("t-SNE" if m == "tsne" else m.upper() for m in methods)
    song_maps = n_songs >= MIN_SONGS_FOR_SONG_MAP
    out.append(f"<p>Every clustered representation (baselines and model latents, exactly the vectors the "
               f"cluster stage used) projected to two dimensions with {names}"
               f"{umap_note} (<code>report.projections</code>). "
               f"Points are {'songs (mean of their clips)' if song_maps else 'clips'}"
               f"{'' if song_maps else f' (at most {MAX_MAP_POINTS}, sampled)'}; one seed per model. "
               "Colours: the cluster found by the main algorithm (k chosen for "
               f"<code>{esc(cfg.label_columns[-1] if cfg.label_columns else '-')}</code>), and the labels the "
               "representation never saw.</p>")
    algo = ctx.view.algorithm if ctx.view else None
    reps = _map_representations(ctx)
    for rep in tqdm(reps, desc="latent maps", unit="representation", disable=None):
        got = _map_points(ctx, rep, n_songs)
        if got is None:
            continue
        frame, cols, level, seed = got
        if not cols or len(frame) < 3:
            continue
        x = frame[cols].to_numpy(np.float64)
        ok = np.isfinite(x).all(axis=1)
        if not ok.all():
            inp.note(f"{rep}: {int((~ok).sum())} non-finite vectors left out of its map")
            frame, x = frame[ok].reset_index(drop=True), x[ok]
        colourings: dict[str, Sequence[object]] = {}
        cl = _cluster_lookup(ctx, rep, algo, level, cfg.seed if seed < 0 else seed,
                             cfg.label_columns[-1] if cfg.label_columns else None)
        idcol = "segment_id" if level == "clip" else "song_id"
        if cl is not None:
            colourings["cluster"] = frame[idcol].map(cl).tolist()
        if labels is not None:
            for lab in cfg.label_columns:
                if lab in labels.columns:
                    colourings[lab] = frame["song_id"].map(labels[lab]).tolist()
        if not colourings:
            colourings["split"] = frame.get("split", pd.Series(["?"] * len(frame))).tolist()
        proj = {m: F.embed_2d(x, m, cfg.seed) for m in methods}
        kind = "baseline" if rep in ctx.baselines else "model"
        seed_txt = "" if seed < 0 else f", seed {seed}"
        unit = "songs" if level != "clip" else "clips"
        fig = F.latent_map(proj, colourings, f"{rep} ({kind}): {len(frame)} {unit}, {len(cols)}-d{seed_txt}")
        out.append(ctx.figure(fig, f"latent_{rep}", f"2-D map of {rep}"))
    if not reps:
        out.append('<p class="note">No representation vectors were available.</p>')
    return "".join(out)


def _central_songs(run: ModelRun, clusters: pd.Series, seed: int, n: int) -> dict[object, list[tuple[str, float]]]:
    """For each cluster, the ``n`` songs nearest its centroid in the model's song-latent space."""
    sl = run.song_latents
    if sl is None:
        return {}
    if "seed" in sl.columns and sl["seed"].nunique() > 1:
        sl = sl[sl["seed"] == (seed if seed in set(sl["seed"]) else sl["seed"].min())]
    zcols = run.latent_columns(sl)
    sl = sl[sl["song_id"].isin(clusters.index)]
    out: dict[object, list[tuple[str, float]]] = {}
    for c, g in sl.groupby(sl["song_id"].map(clusters)):
        x = g[zcols].to_numpy(np.float64)
        d = np.linalg.norm(x - x.mean(axis=0), axis=1)
        order = np.argsort(d, kind="stable")[:n]
        out[c] = [(g["song_id"].iloc[i], float(d[i])) for i in order]
    return out


def _section_clusters(ctx: _Ctx) -> str:
    inp, cfg = ctx.inputs, ctx.cfg
    out = ['<h2 id="clusters">What the best model grouped together</h2>']
    rep, algo, why = best_model(ctx)
    if rep is None or inp.clusters is None:
        out.append(f'<p class="note">{esc(why)}.</p>')
        return "".join(out)
    run = inp.models[rep]
    seeds = sorted(inp.clusters.loc[inp.clusters["representation"] == rep, "seed"].unique())
    seed = cfg.seed if cfg.seed in seeds else (int(seeds[0]) if seeds else cfg.seed)
    level = ctx.view.level if ctx.view and ctx.view.level.startswith("song") else "song_mean"
    main_label = cfg.label_columns[-1] if cfg.label_columns else None
    cl = _cluster_lookup(ctx, rep, algo, level, seed, main_label)
    out.append(f"<p>Best model: <b>{esc(rep)}</b> with {esc(algo)} ({esc(why)}). Clusters of seed {seed}, "
               f"per song ({esc(level)}).</p>")
    if cl is None or cl.empty:
        out.append('<p class="note">No song-level cluster assignments for it.</p>')
        return "".join(out)
    labels = _labels(inp)
    if labels is not None:
        for lab in cfg.label_columns:
            cl_lab = _cluster_lookup(ctx, rep, algo, level, seed, lab)
            if lab in labels.columns and cl_lab is not None:
                lv = cl_lab.index.map(labels[lab])
                fig = F.composition_figure(cl_lab.tolist(), list(lv), lab,
                                           f"{rep} / {algo}, k={cl_lab.nunique()}: clusters x {lab}")
                out.append(ctx.figure(fig, f"composition_{rep}_{lab}", f"cluster composition by {lab}",
                                      f"Left: share of each {lab} in every cluster. Right: song counts "
                                      f"(contingency table)."))
    central = _central_songs(run, cl, seed, cfg.n_central_songs)
    if not central:
        out.append('<p class="note">No song latents to find central songs.</p>')
        return "".join(out)
    out.append(f"<h3>Listen: the {cfg.n_central_songs} most central songs of each cluster</h3>"
               f'<p class="note">Songs nearest the cluster centroid in the latent space; a {cfg.excerpt_s:g} s '
               "excerpt from the middle of each (Ogg Vorbis, inline).</p>")
    segs = inp.segments
    n_bad = 0
    items = sorted(central.items(), key=lambda kv: F._natural(str(kv[0])))
    for c, songs in tqdm(items, desc="cluster excerpts", unit="cluster", disable=None):
        size = int((cl == c).sum())
        makeup = ""
        if labels is not None:
            parts = []
            for lab in cfg.label_columns:
                if lab in labels.columns:
                    vc = cl[cl == c].index.map(labels[lab]).fillna("unknown").value_counts()
                    parts.append(f"{lab}: " + ", ".join(f"{k} {v / size:.0%}" for k, v in vc.head(3).items()))
            makeup = " &middot; ".join(esc(p) for p in parts)
        out.append(f"<h3>Cluster {esc(c)} <small>({size} songs{'; ' if makeup else ''}{makeup})</small></h3>"
                   '<div class="songs">')
        for song_id, dist in songs:
            meta = labels.loc[song_id] if labels is not None and song_id in labels.index else pd.Series(dtype=object)
            title = meta.get("title") or song_id
            artist = meta.get("artist") or ""
            tags = " / ".join(str(meta.get(lab)) for lab in cfg.label_columns if pd.notna(meta.get(lab, None)))
            player = ""
            if segs is not None and inp.segments_dir is not None:
                try:
                    y, sr, start = song_excerpt(segs, inp.segments_dir, song_id, cfg.excerpt_s)
                    player = audio(encode_ogg(y, sr), f"excerpt of {title}")
                    player += f'<div class="m">excerpt from {start:.0f} s</div>'
                except (ExcerptError, OSError, ValueError, RuntimeError) as exc:
                    n_bad += 1
                    log.warning("excerpt of %s: %s", song_id, exc)
                    player = f'<div class="m">no excerpt: {esc(exc)}</div>'
            out.append(f'<div class="song"><div class="t">{esc(title)}</div><div class="m">{esc(artist)}'
                       f"{' &middot; ' if artist and tags else ''}{esc(tags)} &middot; distance {dist:.2f}"
                       f"</div>{player}</div>")
        out.append("</div>")
    if n_bad:
        inp.note(f"{n_bad} audio excerpts could not be made (see the log)")
    return "".join(out)


def recon_pairs(recon: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, original, reconstruction)`` for every ``<name>`` / ``<name>_recon`` pair in a recon.npz.

    Multimodal models reconstruct several inputs (audio features and lyrics embedding), so
    there can be more than one pair; shapes must match and values be numeric.
    """
    out = []
    for name in recon:
        partner = f"{name}_recon"
        if partner in recon:
            a, b = np.asarray(recon[name]), np.asarray(recon[partner])
            if a.shape == b.shape and a.size and a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
                out.append((name, a, b))
    if not out:  # other spellings: original / reconstruction
        orig = next((k for k in recon if k in ("x", "original", "input")), None)
        rec = next((k for k in recon if k in ("reconstruction", "recon", "x_hat")), None)
        if orig and rec and np.shape(recon[orig]) == np.shape(recon[rec]):
            out.append((orig, np.asarray(recon[orig]), np.asarray(recon[rec])))
    return out


def _section_recon(ctx: _Ctx) -> str:
    out = ['<h2 id="recon">Reconstructions</h2>',
           '<p class="note">Test clips (one per song): what the model was given and what its decoder '
           "produced, in the model's own (standardized) input space.</p>"]
    n = 0
    for key, run in ctx.inputs.models.items():
        if not run.recon:
            continue
        pairs = recon_pairs(run.recon)
        if not pairs:
            ctx.inputs.note(f"models/{key}/recon.npz: no '<name>' / '<name>_recon' array pairs "
                            f"(have {', '.join(run.recon)})")
            continue
        ids = run.recon.get("segment_id")
        names = [str(s) for s in ids] if ids is not None else None
        for name, a, b in pairs:
            a, b = a[:3], b[:3]  # three clips are enough to judge; more only lengthen the page
            err = float(np.mean((a.astype(np.float64) - b) ** 2))
            what = "" if len(pairs) == 1 else f" ({name})"
            fig = F.reconstruction_figure(a, b, f"{key}{what}: original vs reconstructed (MSE {err:.3f})", names)
            out.append(ctx.figure(fig, f"recon_{key}" + (f"_{name}" if len(pairs) > 1 else ""),
                                  f"reconstructions of {key}{what}"))
            n += 1
    if n == 0:
        out.append('<p class="note">No model wrote reconstruction samples (models/&lt;key&gt;/recon.npz).</p>')
        return "".join(out)
    return out[0] + out[1] + '<div class="grid2">' + "".join(out[2:]) + "</div>"


def _models_table(ctx: _Ctx) -> str:
    rows = []
    for key, run in sorted(ctx.inputs.models.items()):
        info = run.info or {}
        inputs = info.get("inputs") or {}
        feats = "+".join(inputs.get("feature_sets") or []) or str(inputs.get("x_kind", "?"))
        if inputs.get("text"):
            feats += " + lyrics"
        per_seed = list((info.get("per_seed") or {}).values())

        def mean(field_: str, per_seed: list = per_seed) -> float:
            vals = [float(p[field_]) for p in per_seed if isinstance(p.get(field_), (int, float))]
            return float(np.mean(vals)) if vals else math.nan

        cond = ", ".join(info.get("conditioned_on") or []) or "-"
        rows.append((key, feats, info.get("latent_dim", "?"), cond, len(per_seed) or len(run.checkpoints),
                     _num(mean("first_val_loss")), _num(mean("best_val_loss")), _num(mean("epochs")),
                     sum(bool(p.get("stopped_early")) for p in per_seed), _num(mean("seconds"))))
    if not rows:
        return ""
    return ("<h3>Models (models/&lt;key&gt;/info.json, means over seeds)</h3>"
            + table(["model", "inputs", "latent dim", "conditioned on (not unsupervised)", "seeds",
                     "val loss, epoch 0", "best val loss", "epochs", "seeds stopped early", "seconds per seed"],
                    rows, [False, False, True, False, True, True, True, True, True, True]))


def _section_training(ctx: _Ctx) -> str:
    out = ['<h2 id="training">Training</h2>']
    curves = {k: r.curves for k, r in ctx.inputs.models.items() if r.curves is not None and not r.curves.empty}
    if curves:
        out.append(ctx.figure(F.training_curves(curves), "training_curves", "training curves",
                              "Per-epoch loss per clip, each model on its own scale; solid: validation songs, "
                              "dashed: training songs; line: mean over seeds, band: range over seeds."))
    else:
        out.append('<p class="note">No training curves (plots/train/&lt;model&gt;.csv) were available.</p>')
    out.append(_models_table(ctx))
    out.append('<p class="note">Metric against beta: the report sees only this workspace, which holds one '
               "beta. Compare beta runs with <code>dvc exp run -S beta=8</code>, then "
               "<code>dvc exp show</code> and <code>dvc plots diff</code>.</p>")
    return "".join(out)


def _footer(prov: Provenance, figure_names: Sequence[str]) -> str:
    parts = []
    if prov.commit:
        parts.append(f"Made from git commit <code>{esc(prov.commit)}</code>"
                     f"{' with uncommitted changes to code or params' if prov.dirty else ''}.")
    for n in prov.notes:
        parts.append(esc(n) + ".")
    if prov.params_text is not None:
        parts.append(f"<details><summary>params.yaml</summary><pre>{esc(prov.params_text)}</pre></details>")
    if prov.lock_rows:
        body = table(["stage", "dep/out", "path", "md5"],
                     [(r["stage"], r["kind"], r["path"], r["md5"]) for r in prov.lock_rows])
        parts.append(f"<details><summary>dvc.lock hashes ({len(prov.lock_rows)} entries)</summary>"
                     f'<div class="scroll">{body}</div></details>')
    parts.append(f"<p>Figures also saved as PNG: {esc(', '.join(figure_names))}.</p>")
    return " ".join(parts)


SECTIONS: tuple[tuple[str, str, Callable[[_Ctx], str]], ...] = (
    ("summary", "Summary", _section_summary),
    ("dataset", "Dataset", _section_dataset),
    ("metrics", "Metrics", _section_metrics),
    ("leakage", "Leakage audit", _section_leakage),
    ("maps", "Latent maps", _section_maps),
    ("clusters", "Listen to the clusters", _section_clusters),
    ("recon", "Reconstructions", _section_recon),
    ("training", "Training", _section_training),
)


def make_report(inputs: ReportInputs, prov: Provenance, cfg: ReportConfig, figures_dir: Path) -> str:
    """Build the page (and write ``figures_dir/*.png``); returns the HTML text.

    A section that fails on unexpected data is replaced by a note naming the error, so one bad
    input costs one section, not the report.
    """
    figures_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(inputs, cfg, figures_dir)
    _prepare_metrics(ctx)
    bodies = []
    # many small t-SNE/PCA jobs: OpenMP/BLAS threads only contend (10x slower on a busy 2-core box)
    with threadpool_limits(limits=1):
        for anchor, title, fn in SECTIONS:
            bodies.append(_run_section(ctx, anchor, title, fn))
    body = _section_inputs(ctx) + "".join(bodies)  # problems gathered while building show at the top
    return _assemble(ctx, prov, body)


def _run_section(ctx: _Ctx, anchor: str, title: str, fn: Callable[[_Ctx], str]) -> str:
    """One section's HTML, or a note naming the error when it failed."""
    t0 = time.perf_counter()
    try:
        return fn(ctx)
    except Exception as exc:  # keep the rest of the report; the note says what broke
        log.exception("report section %s failed", anchor)
        ctx.inputs.note(f"section '{title}' failed: {type(exc).__name__}: {exc}")
        return (f'<h2 id="{anchor}">{esc(title)}</h2><div class="warn">This section could not be '
                f"built: {esc(type(exc).__name__)}: {esc(exc)}</div>")
    finally:
        log.info("section %-9s %.1f s", anchor, time.perf_counter() - t0)


def _assemble(ctx: _Ctx, prov: Provenance, body: str) -> str:
    inputs = ctx.inputs
    src = (inputs.download_report or {}).get("source", "unknown source")
    n_songs = len(inputs.songs) if inputs.songs is not None else "?"
    sub = (f"{n_songs} songs from {src}; {len(inputs.models)} trained models"
           + (f"; commit {prov.commit[:10]}" if prov.commit else ""))
    toc = [(a, t) for a, t, _ in SECTIONS] + [("provenance", "Provenance")]
    footer = f'<h2 id="provenance">Provenance</h2>{_footer(prov, ctx.figure_names)}'
    return page("musiclust report", sub, toc, body, footer)


def write_report(
    raw_dir: Path,
    segments_dir: Path,
    lyrics_path: Path,
    models_dir: Path,
    clusters_dir: Path,
    metrics_dir: Path,
    train_plots_dir: Path | None,
    out_html: Path,
    figures_dir: Path,
    cfg: ReportConfig,
    params_path: Path,
    root: Path,
) -> Path:
    """Load every input, build the report and write ``out_html`` (atomically) plus the PNGs.

    ``figures_dir`` is emptied of old PNGs first: outputs are rewritten whole.
    """
    from musiclust.reporting.inputs import load_inputs
    from musiclust.reporting.provenance import collect

    t0 = time.perf_counter()
    figures_dir.mkdir(parents=True, exist_ok=True)
    for old in figures_dir.glob("*.png"):
        old.unlink()
    inputs = load_inputs(raw_dir, segments_dir, lyrics_path, models_dir, clusters_dir, metrics_dir,
                         train_plots_dir)
    prov = collect(root, params_path)
    text = make_report(inputs, prov, cfg, figures_dir)
    atomic_write_bytes(out_html, text.encode("utf-8"))
    log.info("wrote %s (%.0f kB, %d figures, %d input problems) in %.1f s", out_html, len(text) / 1024,
             len(list(figures_dir.glob("*.png"))), len(inputs.problems), time.perf_counter() - t0)
    return out_html
