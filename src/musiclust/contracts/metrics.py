"""What the ``evaluate`` stage writes, and the one writer of it.

- ``metrics/headline.json`` (the only DVC ``metrics:`` file): numbers only, a few per
  representation: ``{rep: {label: {nmi, nmi_low, nmi_high, ami[, mig]}, silhouette, best_val_loss}}``
  under the headline protocol (summary.json says which); ``mig`` (models only) is the mean over
  seeds of the Mutual Information Gap of the latents. Not-applicable representations are absent, and
  so is a label that was not ranked (its numbers stand on too few test songs to compare); a trained
  model keeps its ``best_val_loss`` even where no label was ranked.
- ``metrics/means.csv``: one row per representation x algorithm x level x k x label x scope
  (:data:`MEANS_COLUMNS`); ``metrics/all.csv``: the per-seed rows (:data:`SCORE_COLUMNS`);
- ``metrics/summary.json``: the ranking and winner per label, intervals, not-applicable and
  conditioned representations, the leakage audit, the protocol in words, and ``disentanglement``:
  ``{rep: {label: {mig, mig_min, mig_max, n_seeds, conditioned}}}`` for models (:data:`SUMMARY_KEYS`).
  ``labels`` lists every label column with a known value; ``winner[label]`` is null for a label the
  test songs cannot rank, and ``not_ranked[label]`` says why (:data:`NOT_RANKED_KEYS`): too few test
  songs or classes (with how many test songs, and songs in the collection, a ranking needs), or no
  representation scored. Its entries in ``ranking`` are listed with their scores and no rank;
- ``metrics/results.md``: the README's results table; ``plots/metrics/<label>_nmi.csv``: bar data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.contracts.clusters import SCORE_COLUMNS  # the per-seed rows are the cluster stage's scores
from musiclust.fileio import atomic_write_bytes, read_json, write_json

MEANS_COLUMNS = [
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
    "n_seeds",
    "n_songs",
    "n_units",
    "nmi",
    "nmi_low",
    "nmi_high",
    "ami",
    "ami_low",
    "ami_high",
    "ari",
    "v_measure",
    "homogeneity",
    "completeness",
    "purity",
    "accuracy",
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "noise_fraction",
    "n_clusters",
]
SUMMARY_KEYS = (
    "labels",
    "n_test_songs",
    "n_test_clips",
    "interval",
    "headline_protocol",
    "ranking_rule",
    "winner",
    "not_ranked",
    "ranking",
    "best_per_modality",
    "not_applicable",
    "conditioned",
    "leakage",
    "training",
    "disentanglement",
    "disentanglement_method",
    "label_notes",
    "notes",
)
#: summary.json ``not_ranked[label]``: why the label has no winner and what a ranking needs
#: (``min_test_songs`` test songs, about ``min_songs`` songs in the collection; null if segment.split.test is 0)
NOT_RANKED_KEYS = ("reason", "n_test_songs", "n_classes", "n_test_classes", "min_test_songs", "min_songs")
RANK_KEYS = (
    "rank",
    "representation",
    "kind",
    "modality",
    "conditioned",
    "nmi",
    "nmi_low",
    "nmi_high",
    "ami",
    "ami_low",
    "ami_high",
    "silhouette",
    "n_songs",
    "n_seeds",
    "diff_low",
    "diff_high",
    "separable_from_winner",
)


#: file names inside the metrics folder (the stage's command line passes each path; these are the
#: names dvc.yaml gives them, which the report reads back)
SUMMARY_FILE = "summary.json"
MEANS_FILE = "means.csv"


def read_summary(metrics_dir: str | Path) -> dict[str, Any]:
    """``metrics/summary.json`` with every :data:`SUMMARY_KEYS` key (ValueError naming the file)."""
    path = Path(metrics_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro evaluate`")
    try:
        summary = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; run `dvc repro evaluate`")
    return summary


def read_means(metrics_dir: str | Path) -> pd.DataFrame:
    """``metrics/means.csv`` with every :data:`MEANS_COLUMNS` column (ValueError naming the file)."""
    path = Path(metrics_dir) / MEANS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro evaluate`")
    df = pd.read_csv(path)
    missing = [c for c in MEANS_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; run `dvc repro evaluate`")
    return df


def num(v: Any, digits: int = 4) -> float | None:
    """JSON-safe rounded number: NaN and infinities become None."""
    if v is None:
        return None
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


@dataclass
class Evaluation:
    """Everything evaluate computed, ready to write."""

    scores: pd.DataFrame
    means: pd.DataFrame
    summary: dict[str, Any]
    headline: dict[str, Any]


def build_headline(
    ranking: Mapping[str, Sequence[Mapping[str, Any]]],
    outputs: Sequence[Any],
    disentanglement: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The headline numbers per representation (see module doc); conditioned labels are left out.

    ``disentanglement``: :func:`musiclust.ranking.aggregate.summarize_mig` (models' MIG).
    """
    out: dict[str, Any] = {}
    for label, entries in ranking.items():
        for e in entries:
            if e["conditioned"]:
                continue
            d = out.setdefault(e["representation"], {})
            d[label] = {
                "nmi": num(e["nmi"]),
                "nmi_low": num(e["nmi_low"]),
                "nmi_high": num(e["nmi_high"]),
                "ami": num(e["ami"]),
            }
            if d.get("silhouette") is None:
                d["silhouette"] = num(e["silhouette"])
    for o in outputs:
        loss = (o.info.get("training") or {}).get("best_val_loss_mean")
        if o.applicable and loss is not None:  # a training number: kept where no label could be ranked
            out.setdefault(o.name, {})["best_val_loss"] = num(loss)
    for rep, by_label in (disentanglement or {}).items():
        for label, d in by_label.items():
            if rep in out and label in out[rep] and isinstance(out[rep][label], dict):
                out[rep][label]["mig"] = num(d["mig"])
    return {rep: out[rep] for rep in sorted(out)}


def build_summary(
    *,
    outputs: Sequence[Any],
    ranking: Mapping[str, list[dict[str, Any]]],
    not_ranked: Mapping[str, Mapping[str, Any]],
    leak: pd.DataFrame,
    labels: Any,
    params: Any,
    rule: str,
    algorithm: str,
    level: str,
    n_test_clips: int,
    disentanglement: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    disentanglement_method: str = "",
) -> dict[str, Any]:
    """summary.json (keys :data:`SUMMARY_KEYS`); ``ranking`` has every label with a known value,
    ``not_ranked`` those of them without a winner (:data:`NOT_RANKED_KEYS`); ``disentanglement`` as
    :func:`musiclust.ranking.aggregate.summarize_mig` returns it."""
    rank_out = {
        lab: [{k: (num(e[k]) if isinstance(e[k], float) else e[k]) for k in RANK_KEYS} for e in entries]
        for lab, entries in ranking.items()
    }
    winner, by_modality = _winners(rank_out)
    # one literal dict, key by key as SUMMARY_KEYS lists them: longer than 60 lines, clearer whole
    return {
        "labels": list(ranking),
        "n_test_songs": len(labels.test_songs),
        "n_test_clips": n_test_clips,
        "interval": {
            "ci": params.ci,
            "bootstrap": params.bootstrap,
            "method": f"percentile bootstrap over the {len(labels.test_songs)} test songs "
            f"({params.bootstrap} resamples, the same for every method: paired), one training "
            "seed drawn per resample, so the interval covers song sampling and seed variation; widened to "
            "contain the estimate where resampling (repeated songs) shifts a score",
        },
        "headline_protocol": {
            "algorithm": algorithm,
            "level": level,
            "scope": "test",
            "k": "the label's number of classes",
            "text": f"{algorithm}, k = number of classes, "
            f"{level} (a song = mean of its clip vectors), test songs, mean over seeds",
        },
        "ranking_rule": rule,
        "winner": winner,
        "not_ranked": {
            lab: {k: not_ranked[lab][k] for k in NOT_RANKED_KEYS} for lab in ranking if lab in not_ranked
        },
        "ranking": rank_out,
        "best_per_modality": by_modality,
        "not_applicable": {o.name: o.info.get("reason") for o in outputs if not o.applicable},
        "conditioned": {
            o.name: list(o.info.get("conditioned_on") or []) for o in outputs if o.info.get("conditioned_on")
        },
        "leakage": {"threshold": params.leakage_threshold, "flagged": _flagged(leak)},
        "training": {
            o.name: {"best_val_loss": num((o.info.get("training") or {}).get("best_val_loss_mean"))}
            for o in outputs
            if o.info.get("kind") == "model" and o.applicable
        },
        "disentanglement": {
            rep: {
                label: {k: (num(v) if k.startswith("mig") else v) for k, v in d.items()}
                for label, d in by_label.items()
            }
            for rep, by_label in sorted((disentanglement or {}).items())
        },
        "disentanglement_method": disentanglement_method,
        "label_notes": label_notes(labels),
        "notes": _skip_notes(outputs),
    }


def _winners(rank_out: Mapping[str, list[dict[str, Any]]]) -> tuple[dict, dict]:
    """The winner per label (with the ranked methods it cannot be told from; None where nothing was
    ranked) and the best per modality."""
    winner: dict[str, Any] = {}
    by_modality: dict[str, dict[str, str]] = {}
    keys = ("representation", "nmi", "nmi_low", "nmi_high", "ami", "ami_low", "ami_high", "n_songs")
    for lab, entries in rank_out.items():
        ranked = [e for e in entries if e["rank"] is not None]
        if ranked:
            tied = [e["representation"] for e in ranked[1:] if not e["separable_from_winner"]]
            winner[lab] = {**{k: ranked[0][k] for k in keys}, "not_separable_from": tied}
        else:
            winner[lab] = None
        for e in ranked:
            by_modality.setdefault(lab, {}).setdefault(e["modality"], e["representation"])
    return winner, by_modality


#: flagged columns listed per representation and label (the strongest; the count says how many in all)
MAX_FLAGGED_PER_PAIR = 5


def _flagged(leak: pd.DataFrame) -> list[dict[str, Any]]:
    """Flagged leakage-audit columns: every flagged representation/label pair, with its strongest
    columns (at most MAX_FLAGGED_PER_PAIR) and how many of its columns were flagged in all."""
    flagged = leak[leak["flagged"]].sort_values(
        ["representation", "label", "balanced_accuracy"], ascending=[True, True, False]
    )
    flagged = flagged.drop_duplicates(["representation", "label", "column"])
    n_pair = flagged.groupby(["representation", "label"])["column"].transform("size")
    flagged = flagged.assign(n_flagged=n_pair).groupby(["representation", "label"]).head(MAX_FLAGGED_PER_PAIR)
    return [
        {
            "representation": r.representation,
            "label": r.label,
            "column": r.column,
            "balanced_accuracy": num(r.balanced_accuracy),
            "columns_flagged": int(r.n_flagged),
        }
        for r in flagged.itertuples()
    ]


def label_notes(labels: Any) -> list[str]:
    """What the report should say about the labels: classes per label, and labels no song has."""
    return [
        f"{lab}: {len(v)} class{'es' if len(v) != 1 else ''} ({', '.join(v)})"
        if v
        else f"{lab}: no song has a value (not scored)"
        for lab, v in labels.classes.items()
    ]


def _skip_notes(outputs: Sequence[Any]) -> list[str]:
    """Skipped clustering runs, one line per (algorithm, level, reason) naming the representations."""
    reps: dict[tuple, list[str]] = {}
    for o in outputs:
        for sk in o.info.get("skipped_runs", []):
            names = reps.setdefault((sk.get("algorithm"), sk.get("level"), sk.get("reason")), [])
            if o.name not in names:
                names.append(o.name)
    return [
        f"{alg}/{level} not run ({why}): {', '.join(names)}"
        for (alg, level, why), names in sorted(reps.items(), key=lambda kv: tuple(map(str, kv[0])))
    ]


def write(
    ev: Evaluation,
    *,
    headline: str | Path,
    means: str | Path,
    table: str | Path,
    summary: str | Path,
    results: str | Path,
    plots: str | Path,
) -> None:
    """Write every evaluate output (each rewritten whole)."""
    for p in (headline, means, table, summary, results):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    write_json(headline, ev.headline)
    write_json(summary, ev.summary)
    _csv(ev.means.reindex(columns=MEANS_COLUMNS).sort_values(MEANS_COLUMNS[:10]), means)
    _csv(
        ev.scores.reindex(columns=SCORE_COLUMNS).sort_values(
            ["representation", "algorithm", "level", "scope", "label", "k", "seed"]
        ),
        table,
    )
    atomic_write_bytes(results, results_markdown(ev.summary).encode("utf-8"))
    plots = Path(plots)
    plots.mkdir(parents=True, exist_ok=True)
    for old in plots.glob("*.csv"):
        old.unlink()
    for label, entries in ev.summary["ranking"].items():
        bars = pd.DataFrame(
            [e for e in entries if e["rank"] is not None],
            columns=["representation", "nmi", "nmi_low", "nmi_high", "ami"],
        )
        _csv(bars, plots / f"{label}_nmi.csv")


def _csv(df: pd.DataFrame, path: str | Path) -> None:
    atomic_write_bytes(path, df.to_csv(index=False, float_format="%.6g", lineterminator="\n").encode("utf-8"))


def _cell(v: float | None, lo: float | None = None, hi: float | None = None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def _mig_cell(d: Mapping[str, Any] | None) -> str:
    """A model's MIG against the label: mean over seeds (min-max over seeds); "—" for baselines."""
    if not d or d.get("mig") is None:
        return "—"
    if d["n_seeds"] > 1 and d["mig_min"] is not None and d["mig_max"] is not None:
        return f"{d['mig']:.3f} ({d['mig_min']:.3f}–{d['mig_max']:.3f})"
    return f"{d['mig']:.3f}"


def results_markdown(summary: Mapping[str, Any]) -> str:
    """The README results table: the ranking per label with intervals, from summary.json alone."""
    n = summary["n_test_songs"]
    lines = [
        f"Headline: {summary['headline_protocol']['text']}; {n} test songs. "
        f"Intervals: {summary['interval']['ci']:.0%} {summary['interval']['method']}. `≈` marks a method that cannot be separated from the "
        "winner (paired difference interval contains 0). Written by the `evaluate` stage to `metrics/results.md`.",
        "",
        f"Ranking rule: {summary['ranking_rule']}",
    ]
    mig = summary.get("disentanglement") or {}
    if mig:
        lines += [
            "",
            f"MIG (models only, mean over seeds, min–max over seeds): {summary['disentanglement_method']}",
        ]
    for label, entries in summary["ranking"].items():
        win = summary["winner"].get(label)
        head = (
            f"winner: {win['representation']}"
            if win
            else "not ranked: " + summary["not_ranked"][label]["reason"]
        )
        lines += [
            "",
            f"**{label}** ({head}; {n} test songs)",
            "",
            "| rank | representation | modality | test songs | NMI [95% CI] | AMI [95% CI] | silhouette | MIG |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in entries:
            rank = "—" if e["rank"] is None else str(e["rank"])
            name = e["representation"] + (" (saw this label: not ranked)" if e["conditioned"] else "")
            mark = " ≈" if e["rank"] not in (None, 1) and not e["separable_from_winner"] else ""
            lines.append(
                f"| {rank} | {name}{mark} | {e['modality']} | {e['n_songs']} "
                f"| {_cell(e['nmi'], e['nmi_low'], e['nmi_high'])}"
                f" | {_cell(e['ami'], e['ami_low'], e['ami_high'])} | {_cell(e['silhouette'])}"
                f" | {_mig_cell(mig.get(e['representation'], {}).get(label))} |"
            )
    if summary["not_applicable"]:
        lines += [
            "",
            "Not applicable (not trained or not clustered, never ranked): "
            + "; ".join(f"{k}: {v}" for k, v in sorted(summary["not_applicable"].items()))
            + ".",
        ]
    return "\n".join(lines) + "\n"
