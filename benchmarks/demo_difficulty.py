"""How hard the demo's genres are: headline genre NMI against each ``data.demo`` difficulty knob.

For every knob value (one knob swept at a time, the others held at ``--base``) and every corpus
seed, it runs the pipeline's own stages on a scratch folder: ``download`` renders the demo corpus
(``seed`` = the corpus seed, which also draws the song-level split), ``segment`` and ``featurize``
prepare it, ``train`` trains the models named, ``cluster`` clusters each representation (the
baselines ``raw`` = standardized mfcc_stats, ``pca``, ``spectral_features`` and the models), and
the ``evaluate`` step ranks them. Every number is the headline protocol of ``metrics/summary.json``
(K-Means, k = number of genres, fit on training songs, a song = the mean of its clip vectors,
scored on the test songs, mean over training seeds, paired percentile bootstrap interval), so
nothing here re-implements a statistic. Only what the headline does not need is switched off to
save time: the other clustering algorithms, the 2-D maps, the feature sets no model here reads.

Writes ``<out>.csv`` (one row per knob, value, corpus seed, representation and label: NMI, its
interval, rank, whether the paired difference from the winner excludes 0), ``<out>.json`` (the
mean and min-max over corpus seeds per knob value and representation), ``<out>.md`` (those
curves as tables, as docs/demo.md shows them) and ``<out>.png`` (the genre curves drawn). Finished configurations
are kept in ``--work`` and skipped when run again, so an interrupted sweep resumes. Not part of
the pipeline; how the curves of docs/demo.md were measured::

    python benchmarks/demo_difficulty.py --out docs/demo/demo_difficulty \\
        --base overlap=0.2,between_fraction=0.25,production=0.5 \\
        --sweep overlap=0,0.2,0.5,0.8 --sweep between_fraction=0,0.25,0.5 \\
        --sweep production=0,0.5,1 --point overlap=0,between_fraction=0,production=0 \\
        --corpus-seeds 0 1 --models vae beta_vae

``--point overlap=0.4,production=0.5`` measures one combination (as ``--sweep`` values do, with
the knobs it does not name at ``--base``); ``--set beta=16`` overrides any other param for every
configuration (a dotted key), e.g. to see the knobs' effect on the beta sweep.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/demo_difficulty.py` from the repository root
    sys.path.insert(0, str(REPO))

from stages import cluster as cluster_stage  # noqa: E402
from stages import configure as configure_stage  # noqa: E402
from stages import download as download_stage  # noqa: E402
from stages import featurize as featurize_stage  # noqa: E402
from stages import segment as segment_stage  # noqa: E402
from stages import train as train_stage  # noqa: E402

from musiclust.log import setup_logging  # noqa: E402
from musiclust.params import load_params  # noqa: E402
from musiclust.ranking.pipeline import run_evaluate_step  # noqa: E402

log = logging.getLogger("benchmarks.demo_difficulty")
KNOBS = ("overlap", "between_fraction", "production")
BASELINES = ("raw", "pca", "spectral_features")
#: feature sets models read beyond train.features (mfcc_stats)
MODEL_SETS = {"conv_vae": "logmel", "conv1d_vae": "mfcc_seq", "attention_mm": "mfcc_seq"}
RESULT = "result.json"


def parse_assignments(text: str) -> dict[str, float]:
    """``"overlap=0.4,production=0.5"`` -> ``{"overlap": 0.4, "production": 0.5}`` (knobs only)."""
    out: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in KNOBS or not value:
            raise SystemExit(f"error: {item!r}: expected <knob>=<value> with knob one of {', '.join(KNOBS)}")
        out[key] = float(value)
    return out


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``"overlap=0,0.25,0.5"`` -> ``("overlap", [0.0, 0.25, 0.5])``."""
    key, _, values = text.partition("=")
    if key not in KNOBS or not values:
        raise SystemExit(f"error: --sweep {text!r}: expected <knob>=<v1>,<v2>,... with knob one of {KNOBS}")
    return key, [float(v) for v in values.split(",")]


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """``tree["a"]["b"] = value`` for ``key`` ``"a.b"`` (the key must exist: a typo is an error)."""
    *parents, leaf = key.split(".")
    node = tree
    for p in parents:
        node = node[p]
    if leaf not in node:
        raise SystemExit(f"error: --set {key}: no such param in the base params file")
    node[leaf] = value


def slug(knobs: dict[str, float], corpus_seed: int, extra: dict[str, Any] | None = None) -> str:
    """Folder name of one configuration (knob values, corpus seed, other overrides)."""
    parts = [f"{k}{knobs[k]:g}" for k in KNOBS] + [f"seed{corpus_seed}"]
    parts += [f"{k}{v}" for k, v in sorted((extra or {}).items())]
    return "-".join(parts)


def write_params(
    base: dict[str, Any],
    path: Path,
    knobs: dict[str, float],
    corpus_seed: int,
    train_seeds: list[int],
    models: list[str],
    extra: dict[str, Any],
) -> None:
    """The params file of one configuration: the base with the knobs, seeds, models and overrides set."""
    p = json.loads(json.dumps(base))  # deep copy
    p["seed"] = corpus_seed
    p["seeds"] = list(train_seeds)
    p["train"]["models"] = list(models)
    for k, v in knobs.items():
        p["data"]["demo"][k] = v
    # every set the models here may read, whatever --models says: a corpus is featurized once
    # and reused by later runs with other models
    p["features"]["sets"] = list(dict.fromkeys([*p["train"]["features"], "spectral", *MODEL_SETS.values()]))
    p["cluster"]["algorithms"] = ["kmeans"]  # the headline's algorithm; the others are not ranked
    p["cluster"]["maps"] = []
    p["download"]["cache_dir"] = "download-cache"
    for key, value in extra.items():
        set_dotted(p, key, value)
    path.write_text(yaml.safe_dump(p, sort_keys=False), encoding="utf-8")


def corpus_stages(folder: Path, params: Path, keep: bool) -> None:
    """download -> segment -> featurize into ``folder`` (skipped where the output exists).

    Unless ``keep``, the audio (rendered songs, clip shards; ~400 MB a corpus) is deleted once the
    features exist: training and clustering read only the features and ``segments.parquet``.
    """
    if (folder / "features" / "report.json").is_file():
        return
    download_stage.main(["--out", str(folder / "raw"), "--params", str(params)])
    segment_stage.main(
        ["--raw", str(folder / "raw"), "--out", str(folder / "segments"), "--params", str(params)]
    )
    featurize_stage.main(
        ["--segments", str(folder / "segments"), "--out", str(folder / "features"), "--params", str(params)]
    )
    if not keep:
        shutil.rmtree(folder / "raw" / "audio", ignore_errors=True)
        for shard in (folder / "segments").glob("audio-*.npy"):
            shard.unlink()


def run_config(
    work: Path,
    base: dict[str, Any],
    knobs: dict[str, float],
    corpus_seed: int,
    train_seeds: list[int],
    models: list[str],
    extra: dict[str, Any],
    keep: bool,
) -> dict[str, Any]:
    """Measure one configuration (or read its earlier result); returns the result record."""
    corpus_dir = work / "corpus" / slug(knobs, corpus_seed)
    run_dir = work / "runs" / f"{slug(knobs, corpus_seed, extra)}-{'+'.join(sorted(models))}"
    if (run_dir / RESULT).exists():
        record = json.loads((run_dir / RESULT).read_text(encoding="utf-8"))
        if "nmi_all_songs" not in record:  # written before it was recorded: score the clusters again
            record["nmi_all_songs"] = evaluate(run_dir, corpus_dir, [*BASELINES, *models])[1]
            (run_dir / RESULT).write_text(
                json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8"
            )
        return record
    run_dir.mkdir(parents=True, exist_ok=True)
    params = run_dir / "params.yaml"
    write_params(base, params, knobs, corpus_seed, train_seeds, models, extra)
    # the corpus stages read only data.*, seed, audio, segment, features: shared by runs that
    # differ in model params (--set beta=...), so they run once per knob setting and corpus seed
    corpus_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    corpus_stages(corpus_dir, params, keep)
    t_corpus = time.perf_counter() - t0
    segments = str(corpus_dir / "segments")
    # the configure stage resolves each model's settings from the run's params (as in dvc.yaml)
    configure_stage.main(
        ["--lyrics", str(corpus_dir / "no-lyrics.parquet"), "--out", str(run_dir / "configs"), "--params", str(params)]
    )  # fmt: skip
    for m in models:
        train_stage.main(
            ["--model", m, "--config", str(run_dir / "configs" / m), "--segments", segments,
             "--features", str(corpus_dir / "features"), "--out", str(run_dir / "models" / m),
             "--timings", str(run_dir / "timings" / f"{m}.json")]
        )  # fmt: skip
    reps = [*BASELINES, *models]
    for rep in reps:
        source = (
            ["--features", str(corpus_dir / "features")]
            if rep in BASELINES
            else ["--model", str(run_dir / "models" / rep)]
        )
        cluster_stage.main(
            ["--rep", rep, "--segments", segments, *source, "--out", str(run_dir / "clusters" / rep), "--params", str(params)]
        )  # fmt: skip
    summary, all_songs = evaluate(run_dir, corpus_dir, reps)
    record = {
        "knobs": knobs,
        "corpus_seed": corpus_seed,
        "extra": extra,
        "train_seeds": train_seeds,
        "n_test_songs": summary["n_test_songs"],
        "ranking": summary["ranking"],
        "nmi_all_songs": all_songs,
        "seconds_corpus_stages": round(t_corpus, 1),  # wall clock: informative only, load-dependent
    }
    (run_dir / RESULT).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if not keep:
        shutil.rmtree(run_dir / "models", ignore_errors=True)
    return record


def evaluate(run_dir: Path, corpus_dir: Path, reps: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The evaluate step on a run's clusters: its summary (the ranking) and, per label and
    representation, the same K-Means scored on all songs (steadier than 18 test songs, as in
    benchmarks/quality.py; the partition was fit on the training songs without labels)."""
    p = load_params(run_dir / "params.yaml")
    ev = run_evaluate_step(
        corpus_dir / "segments",
        run_dir / "clusters",
        reps,
        p.data.label_columns,
        p.evaluate,
        p.cluster.algorithms,
        p.segment.split,
    )
    m = ev.means
    m = m[
        (m["algorithm"] == "kmeans")
        & (m["level"] == "song_mean")
        & (m["k_mode"] == "per_label")
        & (m["scope"] == "all")
    ]
    all_songs = {
        label: {r.representation: float(r.nmi) for r in b.itertuples()} for label, b in m.groupby("label")
    }
    return ev.summary, all_songs


def rows_of(record: dict[str, Any], sweep: str) -> list[dict[str, Any]]:
    """Tidy rows (one per representation and label) of one configuration's ranking."""
    rows = []
    for label, entries in record["ranking"].items():
        for e in entries:
            rows.append(
                {
                    "sweep": sweep,
                    **{k: record["knobs"][k] for k in KNOBS},
                    "corpus_seed": record["corpus_seed"],
                    **{f"set_{k}": v for k, v in record["extra"].items()},
                    "label": label,
                    "representation": e["representation"],
                    "rank": e["rank"],
                    "nmi": e["nmi"],
                    "nmi_low": e["nmi_low"],
                    "nmi_high": e["nmi_high"],
                    "ami": e["ami"],
                    "nmi_all_songs": record["nmi_all_songs"].get(label, {}).get(e["representation"]),
                    "separable_from_winner": e["separable_from_winner"],
                    "n_test_songs": e["n_songs"],
                }
            )
    return rows


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and min-max over corpus seeds of NMI per sweep, knob value and representation.

    ``width_mean``: mean width of the NMI interval; ``separable_share``: share of the corpus
    seeds on which the representation's paired difference from the winner excludes 0.
    """
    keys = ["sweep", *KNOBS, *[c for c in df.columns if c.startswith("set_")], "label", "representation"]
    return (
        df.assign(width=df["nmi_high"] - df["nmi_low"])
        .groupby(keys, dropna=False, sort=False)
        .agg(
            nmi_mean=("nmi", "mean"),
            nmi_min=("nmi", "min"),
            nmi_max=("nmi", "max"),
            nmi_all_mean=("nmi_all_songs", "mean"),
            nmi_all_min=("nmi_all_songs", "min"),
            nmi_all_max=("nmi_all_songs", "max"),
            width_mean=("width", "mean"),
            separable_share=("separable_from_winner", "mean"),
            n_corpora=("corpus_seed", "nunique"),
        )
        .reset_index()
    )


def per_corpus(df: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and corpus seed: the winner, its interval width, how many are separable from it."""
    keys = ["sweep", *KNOBS, *[c for c in df.columns if c.startswith("set_")], "label", "corpus_seed"]
    rows = []
    for key, b in df.groupby(keys, dropna=False, sort=False):
        top = b.sort_values("rank").iloc[0]
        rows.append(
            {
                **dict(zip(keys, key)),
                "winner": top["representation"],
                "winner_nmi": top["nmi"],
                "winner_width": top["nmi_high"] - top["nmi_low"],
                "n_separable": int(b["separable_from_winner"].sum()),
                "n_ranked": len(b),
            }
        )
    return pd.DataFrame(rows)


def markdown(cv: pd.DataFrame, pc: pd.DataFrame, label: str = "genre", value: str = "nmi") -> str:
    """One table per sweep: rows = knob value, columns = representation, cells = mean [min, max]
    over corpus seeds of ``value`` (``nmi``: the headline, test songs; ``nmi_all``: all songs),
    then the winner's interval width and the number of representations separable from it (means
    over corpus seeds)."""
    lines = []
    what = "headline NMI, test songs" if value == "nmi" else "NMI of the same clustering on all songs"
    for sweep, block in cv[cv["label"] == label].groupby("sweep", sort=False):
        knob = sweep if sweep in KNOBS else None
        reps = sorted(block["representation"].unique(), key=lambda r: (r not in BASELINES, r))
        lines += [f"**{sweep}** ({label}: {what}; mean [min, max] over corpus seeds)", ""]
        lines += [
            "| " + " | ".join([knob or "setting", *reps, "winner's CI width", "separable from winner"]) + " |"
        ]
        lines += ["|" + "---|" * (len(reps) + 3)]
        for values, b in block.groupby([*KNOBS], sort=True):
            v = dict(zip(KNOBS, values))
            head = f"{v[knob]:g}" if knob else ", ".join(f"{k}={v[k]:g}" for k in KNOBS)
            cells = []
            for rep in reps:
                r = b[b["representation"] == rep]
                cells.append(
                    f"{r[f'{value}_mean'].iloc[0]:.2f} [{r[f'{value}_min'].iloc[0]:.2f}, {r[f'{value}_max'].iloc[0]:.2f}]"
                    if len(r)
                    else "—"
                )
            p = pc[(pc["sweep"] == sweep) & (pc["label"] == label)]
            for k in KNOBS:
                p = p[p[k] == v[k]]
            cells += [f"{p['winner_width'].mean():.2f}", f"{p['n_separable'].mean():.1f} of {len(reps) - 1}"]
            lines.append("| " + " | ".join([head, *cells]) + " |")
        lines.append("")
    return "\n".join(lines)


def figure(cv: pd.DataFrame, label: str = "genre"):
    """One panel per knob sweep: headline NMI against the knob, mean over corpus seeds, min-max bars."""
    from matplotlib.figure import Figure

    sweeps = [s for s in dict.fromkeys(cv["sweep"]) if s in KNOBS]
    fig = Figure(figsize=(4.2 * max(1, len(sweeps)), 3.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(sweeps)), squeeze=False)[0]
    for ax, knob in zip(axes, sweeps):
        block = cv[(cv["sweep"] == knob) & (cv["label"] == label)]
        for rep, b in block.groupby("representation"):
            b = b.sort_values(knob)
            ax.errorbar(
                b[knob],
                b["nmi_mean"],
                yerr=[b["nmi_mean"] - b["nmi_min"], b["nmi_max"] - b["nmi_mean"]],
                marker="o",
                capsize=3,
                label=rep,
                linestyle="--" if rep in BASELINES else "-",
            )
        ax.set_xlabel(f"data.demo.{knob}")
        ax.set_ylabel(f"{label} NMI (test songs)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", action="append", default=[], help="<knob>=<v1>,<v2>,... (repeatable)")
    ap.add_argument("--point", action="append", default=[], help="<knob>=<v>,<knob>=<v> (repeatable)")
    ap.add_argument("--base", default="", help="knob values held while another is swept (default: each 0)")
    ap.add_argument("--set", action="append", default=[], help="<dotted.param>=<yaml value> for every run")
    ap.add_argument("--corpus-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="*", default=["vae", "beta_vae", "conv_vae"])
    ap.add_argument("--params", default=str(REPO / "params.yaml"), help="base params file")
    ap.add_argument("--work", default="runs/demo_difficulty", help="scratch folder (kept: resumes)")
    ap.add_argument("--out", default="runs/demo_difficulty/curves", help="output path without extension")
    ap.add_argument("--keep", action="store_true", help="keep each corpus's audio and each run's models")
    args = ap.parse_args(argv)
    setup_logging()
    base = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
    held = {k: 0.0 for k in KNOBS} | parse_assignments(args.base)
    extra = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    configs: list[tuple[str, dict[str, float]]] = []
    for text in args.sweep:
        knob, values = parse_sweep(text)
        configs += [(knob, held | {knob: v}) for v in values]
    for text in args.point:
        configs.append(("point " + text, held | parse_assignments(text)))
    if not configs:
        raise SystemExit("error: nothing to measure: give --sweep and/or --point")
    work = Path(args.work)
    rows = []
    for i, (sweep, knobs) in enumerate(configs):
        for seed in args.corpus_seeds:
            log.info("[%d/%d] %s, corpus seed %d", i + 1, len(configs), slug(knobs, seed, extra), seed)
            record = run_config(work, base, knobs, seed, args.train_seeds, args.models, extra, args.keep)
            rows += rows_of(record, sweep)
    df = pd.DataFrame(rows)
    cv, pc = curves(df), per_corpus(df)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    summary = {"base": held, "set": extra, "curves": cv.to_dict(orient="records")}
    summary["per_corpus"] = pc.to_dict(orient="records")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    tables = "\n".join([markdown(cv, pc), markdown(cv, pc, value="nmi_all"), markdown(cv, pc, "language")])
    out.with_suffix(".md").write_text(tables + "\n", encoding="utf-8")
    if any(s in KNOBS for s in cv["sweep"]):
        figure(cv).savefig(out.with_suffix(".png"), dpi=110, metadata={"Software": None})
    log.info("%s\n%s", out.with_suffix(".md"), tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
