"""A Markdown results table made from the evaluate stage's own outputs.

The README's results section is a verbatim copy of ``metrics/results.md`` (a test
checks they agree), so every number a reader sees there comes out of the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from musiclust.fileio import atomic_write_bytes

#: The headline protocol: K-Means fit on training songs, scored on clips of test songs.
HEADLINE = {"algorithm": "kmeans", "level": "clip", "scope": "test"}


def _cell(row: pd.Series | None, metric: str = "nmi") -> str:
    if row is None or pd.isna(row.get(metric)):
        return "n/a"
    ci = row.get(f"{metric}_ci")
    text = f"{row[metric]:.3f}"
    if ci is not None and pd.notna(ci) and row.get("n_seeds", 1) > 1:
        text += f" ± {ci:.3f}"
    return text


def results_markdown(means: pd.DataFrame, summary: dict[str, Any], label_columns: Sequence[str]) -> str:
    """Render the headline table (NMI per representation and label) and the best method per modality."""
    head = means
    for key, value in HEADLINE.items():
        head = head[head[key] == value]
    labels = [lab for lab in label_columns if lab in set(head["label"])]
    proto = summary.get("protocol", {})
    lines = [
        "NMI of K-Means clusters (k = number of classes) against each label, clip level, test songs only; "
        "mean ± 95% Student-t half-width over seeds. `*` marks a model whose score on that label is not "
        "unsupervised (it saw the label). Written by the `evaluate` stage to `metrics/results.md`.",
        "",
        "| representation | kind | " + " | ".join(f"NMI {lab}" for lab in labels) + " | silhouette |",
        "|---|---|" + "---|" * len(labels) + "---|",
    ]
    reps = head.drop_duplicates("representation")[["representation", "kind"]]
    reps = reps.sort_values(
        ["kind", "representation"], key=lambda s: s.map({"baseline": 0, "model": 1}).fillna(s)
    )
    for rep, kind in reps.itertuples(index=False):
        cells, sil = [], "n/a"
        for lab in labels:
            sel = head[(head["representation"] == rep) & (head["label"] == lab)]
            row = sel.iloc[0] if len(sel) else None
            text = _cell(row)
            if row is not None and not bool(row.get("unsupervised", True)):
                text += " *"
            cells.append(text)
            if row is not None and sil == "n/a":
                sil = _cell(row, "silhouette")
        lines.append(f"| {rep} | {kind} | " + " | ".join(cells) + f" | {sil} |")
    best = summary.get("best_by_modality", {})
    if best:
        lines += [
            "",
            "Best method per input modality (any algorithm, same protocol):",
            "",
            "| label | audio | lyrics | audio+lyrics |",
            "|---|---|---|---|",
        ]
        for lab in labels:
            row = best.get(lab, {})
            cells = []
            for mod in ("audio", "lyrics", "audio+lyrics"):
                b = row.get(mod)
                cells.append("n/a" if not b else f"{b['method']} {b['nmi']:.3f}")
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    if proto:
        lines += ["", f"Seed protocol: {proto.get('seeds', 'n/a')}."]
    return "\n".join(lines) + "\n"


def write_results_markdown(
    means_csv: str | Path, summary: dict[str, Any], out: str | Path, label_columns: Sequence[str]
) -> str:
    """Read ``means.csv`` and write :func:`results_markdown` to ``out``; returns the text."""
    text = results_markdown(pd.read_csv(means_csv), summary, label_columns)
    atomic_write_bytes(out, text.encode("utf-8"))
    return text
