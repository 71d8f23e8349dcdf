"""Quality against training budget: headline NMI and validation loss after N optimizer steps.

For each model given, trains every seed ONCE up to the largest budget (``--budgets``, optimizer
steps, multiples of ``train.eval_every``) with early stopping off, and at every budget takes the
weights that a run with ``train.max_steps`` equal to that budget would restore (the best
validation pass so far: which batch comes at a step depends on the seed only, so the run up to
the largest budget passes through every smaller one). It also takes the weights where early
stopping with the configured ``train.patience`` would have stopped (row ``budget = early_stop``).
Each set of weights encodes every clip, and the project's own clustering and scoring
(``musiclust.clustering.pipeline`` and ``musiclust.evaluation.scores``, as the ``cluster@<key>``
stage runs them; K-Means only, no maps) gives the headline numbers: K-Means with k = the
label's number of classes on song means, NMI on the test songs (and on all songs), per seed.

Not part of the pipeline: it is how the defaults of ``train.max_steps`` and
``train.patience`` were chosen (docs/scaling.md). Run it on a workspace whose ``data/segments``,
``data/features`` and ``data/lyrics.parquet`` were built by the pipeline's first stages, with
that workspace's params.yaml::

    python benchmarks/train_budget.py --root /tmp/ws --params /tmp/ws/params.yaml \\
        --budgets 50 100 200 400 800 1600 --out runs/budget_en_de.csv vae beta_vae conv_vae song_vae

Writes a CSV (one row per model, budget and seed) and prints a Markdown table of means and
standard deviations over seeds; ``--table`` writes that table to a file too.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/train_budget.py` from the repository root
    sys.path.insert(0, str(REPO))

from musiclust.clustering.pipeline import cluster_representation  # noqa: E402
from musiclust.contracts import lyrics as lyrics_contract  # noqa: E402
from musiclust.contracts import models as models_contract  # noqa: E402
from musiclust.contracts.segments import read_segments  # noqa: E402
from musiclust.evaluation.scores import score_output  # noqa: E402
from musiclust.log import setup_logging  # noqa: E402
from musiclust.models.registry import build_model, model_spec, resolve_settings  # noqa: E402
from musiclust.params import Params, load_params  # noqa: E402
from musiclust.training.data import load_clip_data  # noqa: E402
from musiclust.training.determinism import deterministic, seed_everything  # noqa: E402
from musiclust.training.encode import encode_data  # noqa: E402
from musiclust.training.loop import FitResult, fit  # noqa: E402

log = logging.getLogger("benchmarks.train_budget")
EARLY = "early_stop"


class _Snapshots:
    """The ``on_pass`` hook of :func:`fit`: keeps the best weights so far at each budget, and where
    early stopping with ``patience`` would have stopped (the same rule as the loop's)."""

    def __init__(self, budgets: Sequence[int], patience: int, warmup: int) -> None:
        self.budgets, self.patience, self.warmup = set(budgets), patience, warmup
        self.states: dict[Any, dict[str, torch.Tensor]] = {}
        self.at: dict[Any, dict[str, float]] = {}
        self.t0 = time.perf_counter()
        self.best, self.bad = math.inf, 0

    def __call__(self, res: FitResult, best_state: Mapping[str, torch.Tensor]) -> None:
        val = res.history[-1]["val_total"]
        if not math.isfinite(self.best) or val < self.best - 1e-6 * abs(self.best):
            self.best, self.bad = val, 0
        elif res.steps >= self.warmup:
            self.bad += 1
        record = {
            "steps": res.steps,
            "best_step": res.best_step,
            "best_val_loss": res.best_val_loss,
            "train_seconds": time.perf_counter() - self.t0,
        }
        if res.steps in self.budgets:
            self.states[res.steps] = copy.deepcopy(dict(best_state))
            self.at[res.steps] = record
        if EARLY not in self.states and self.bad >= self.patience:
            self.states[EARLY] = copy.deepcopy(dict(best_state))
            self.at[EARLY] = record


def train_snapshots(
    key: str, params: Params, root: Path, budgets: Sequence[int], seeds: Sequence[int]
) -> tuple[Any, dict[int, _Snapshots], dict[str, Any]]:
    """Train ``key`` once per seed up to ``max(budgets)``; the data and every seed's snapshots."""
    spec = model_spec(key)
    cfg = spec.config(resolve_settings(dataclasses.replace(params, train=params.train))[key])
    if cfg.get("pretrain_steps"):
        raise SystemExit(f"{key}: models with a pretraining stage are not supported here")
    lyrics = root / "data/lyrics.parquet"
    data = load_clip_data(
        read_segments(root / "data/segments"),
        root / "data/features",
        x_kind=spec.cls.x_kind,
        needs=spec.cls.needs,
        feature_sets=params.train.features,
        lyrics=lyrics_contract.read(lyrics) if "text" in spec.cls.needs else None,
        condition=cfg.get("condition"),
    )
    train, val = data.select(data.split_mask("train")), data.select(data.split_mask("val"))
    # early stopping off: the run goes through every budget (the snapshot hook emulates patience)
    tcfg = dataclasses.replace(params.train, max_steps=max(budgets), patience=10**9, device="cpu")
    device = torch.device("cpu")
    snaps: dict[int, _Snapshots] = {}
    for seed in seeds:
        with deterministic(tcfg.threads, device):
            seed_everything(seed)
            model = build_model(key, cfg, data.dims)
            model.fit_input_stats(train)
            hook = _Snapshots(budgets, params.train.patience, tcfg.kl_warmup_steps)
            res = fit(model, train, val, tcfg, seed=seed, label=key, device=device, on_pass=hook)
        log.info(
            "%s seed %d: %d steps in %.1f s; early stopping (patience %d) at %s",
            key, seed, res.steps, res.seconds, params.train.patience,
            hook.at.get(EARLY, {}).get("steps", "none"),
        )  # fmt: skip
        snaps[seed] = hook
    return data, snaps, {"key": key, "cfg": cfg, "level": spec.cls.level, "inputs": data.inputs}


def score_snapshot(
    key: str,
    meta: dict[str, Any],
    data: Any,
    states: Mapping[int, Mapping[str, torch.Tensor]],
    params: Params,
    root: Path,
) -> pd.DataFrame:
    """Encode every clip with each seed's weights and score them as ``cluster@<key>`` would.

    Returns the per-seed K-Means song-mean rows at the label's k (scopes test and all).
    """
    device = torch.device("cpu")
    frames = []
    for seed, state in states.items():
        model = build_model(key, meta["cfg"], data.dims)
        model.load_state_dict(state)
        with deterministic(params.train.threads, device):
            mu, cluster = encode_data(model, data, device)
        frames.append(models_contract.latents_frame(data.clips, mu, cluster, seed))
    segments = read_segments(root / "data/segments")
    with tempfile.TemporaryDirectory() as tmp:
        mdir = Path(tmp) / key
        mdir.mkdir()
        models_contract.write_latents(mdir, pd.concat(frames, ignore_index=True))
        info = {"level": meta["level"], "inputs": meta["inputs"], "conditioned_on": [], "applicable": True}
        (mdir / models_contract.INFO_FILE).write_text(json.dumps(info, default=str))
        cparams = dataclasses.replace(params.cluster, algorithms=("kmeans",), maps=())
        out = cluster_representation(
            key, segments, cparams, list(states), params.data.label_columns, model_dir=mdir
        )
        eparams = dataclasses.replace(params.evaluate, bootstrap=50)
        out = score_output(out, segments, params.data.label_columns, eparams)
    s = out.scores
    return s[(s["algorithm"] == "kmeans") & (s["level"] == "song_mean") & (s["k_mode"] == "per_label")]


def measure(
    keys: Sequence[str],
    params: Params,
    root: Path,
    budgets: Sequence[int],
    seeds: Sequence[int],
    dataset: str,
) -> pd.DataFrame:
    """One row per model, budget (or ``early_stop``) and seed."""
    rows = []
    for key in keys:
        data, snaps, meta = train_snapshots(key, params, root, budgets, seeds)
        for budget in [*budgets, EARLY]:
            have = {s: h for s, h in snaps.items() if budget in h.states}
            if not have:
                continue
            scores = score_snapshot(
                key, meta, data, {s: h.states[budget] for s, h in have.items()}, params, root
            )
            for seed, h in have.items():
                row = {"dataset": dataset, "model": key, "budget": str(budget), "seed": seed, **h.at[budget]}
                for r in scores[scores["seed"] == seed].itertuples():
                    row[f"nmi_{r.label}_{r.scope}"] = float(r.nmi)
                rows.append(row)
            log.info("%s budget %s: %s", key, budget, rows[-1])
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    """Markdown: per dataset, model and budget, the mean (sd) over seeds of each NMI and the val loss."""
    nmi = sorted(c for c in df.columns if c.startswith("nmi_"))
    cols = ["best_val_loss", *nmi, "steps", "train_seconds"]
    lines = [
        "| dataset | model | budget | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    order = {b: i for i, b in enumerate(dict.fromkeys(df["budget"]))}
    for (ds, model, budget), g in sorted(
        df.groupby(["dataset", "model", "budget"]), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        cells = []
        for c in cols:
            v = g[c].astype(float)
            if c in ("steps", "train_seconds"):
                cells.append(f"{v.mean():.0f}")
            else:
                cells.append(f"{v.mean():.3f} ({v.std(ddof=1):.3f})" if len(v) > 1 else f"{v.mean():.3f}")
        lines.append(f"| {ds} | {model} | {budget} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(df: pd.DataFrame, png: Path) -> None:
    """Headline genre NMI (test songs, all songs) and best validation loss against the budget: one
    row of panels per dataset, one line per model (mean over seeds, bars: one standard deviation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = df[df["budget"] != EARLY].assign(budget=lambda d: d["budget"].astype(int))
    datasets = list(dict.fromkeys(curves["dataset"]))
    metrics = [c for c in ("nmi_genre_test", "nmi_genre_all", "nmi_language_test") if c in curves]
    metrics.append("best_val_loss")
    fig, axes = plt.subplots(
        len(datasets), len(metrics), figsize=(3.6 * len(metrics), 2.8 * len(datasets)), squeeze=False
    )
    for i, ds in enumerate(datasets):
        d = curves[curves["dataset"] == ds]
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            if d[m].isna().all():  # e.g. a collection without language labels
                ax.set_visible(False)
                continue
            for model, g in d.groupby("model", sort=True):
                if g[m].isna().all():
                    continue
                stats = g.groupby("budget")[m].agg(["mean", "std"]).sort_index()
                if m == "best_val_loss":  # each model on its own scale: relative to its first point
                    stats = stats / stats["mean"].iloc[0]
                ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], label=model, capsize=2, lw=1)
            ax.set_xscale("log", base=2)
            budgets = sorted(d["budget"].unique())
            ax.set_xticks(budgets, [str(b) for b in budgets], fontsize=7)
            ax.set_title(
                f"{ds}: {m if m != 'best_val_loss' else 'best val loss / at the first budget'}", fontsize=9
            )
            ax.set_xlabel("optimizer steps (train.max_steps)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def provenance(threads: int) -> dict[str, str]:
    """Date, commit and machine of this measurement (written beside the CSV, quoted in the docs)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, training on {threads} torch thread(s)",
        "load_average_at_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model keys (models with a pretraining stage are refused)")
    ap.add_argument("--root", type=Path, help="workspace holding data/segments, data/features")
    ap.add_argument("--params", default=None, help="params.yaml (default: <root>/params.yaml)")
    ap.add_argument("--budgets", type=int, nargs="+", help="optimizer steps")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: params seeds")
    ap.add_argument("--dataset", default=None, help="name in the table (default: the root's name)")
    ap.add_argument("--out", type=Path, help="CSV to write (a .json of provenance beside it)")
    ap.add_argument("--table", type=Path, default=None, help="also write the Markdown table here")
    ap.add_argument("--plot", type=Path, nargs="+", help="draw these CSVs into --png instead of measuring")
    ap.add_argument("--png", type=Path, help="the figure --plot writes")
    args = ap.parse_args(argv)
    setup_logging()
    if args.plot:
        df = pd.concat([pd.read_csv(p, dtype={"budget": str}) for p in args.plot], ignore_index=True)
        plot(df, args.png)
        print(table(df))
        return df
    if not (args.models and args.root and args.budgets and args.out):
        ap.error("models, --root, --budgets and --out are needed to measure")
    params = load_params(args.params or args.root / "params.yaml")
    bad = [b for b in args.budgets if b % params.train.eval_every]
    if bad:
        raise SystemExit(f"--budgets {bad} are not multiples of train.eval_every ({params.train.eval_every})")
    seeds = args.seeds or list(params.seeds)
    df = measure(args.models, params, args.root, sorted(args.budgets), seeds, args.dataset or args.root.name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    args.out.with_suffix(".json").write_text(json.dumps(provenance(params.train.threads), indent=1) + "\n")
    md = table(df)
    if args.table is not None:
        args.table.write_text(md + "\n")
    print(md)
    return df


if __name__ == "__main__":
    main()
