"""The Markdown results table is built from the evaluate outputs, not typed by hand."""

from __future__ import annotations

import pandas as pd

from musiclust.evaluation.tables import results_markdown


def _means() -> pd.DataFrame:
    rows = []
    for rep, kind, nmi_g, ci, unsup in [("raw", "baseline", 0.5, 0.0, True), ("vae", "model", 0.61234, 0.05, True),
                                        ("cvae", "model", 0.7, 0.1, False)]:
        for label in ("language", "genre"):
            rows.append(dict(representation=rep, kind=kind, algorithm="kmeans", level="clip", scope="test",
                             label=label, n_seeds=3, nmi=nmi_g if label == "genre" else 0.1, nmi_ci=ci,
                             silhouette=0.2, silhouette_ci=0.01, unsupervised=unsup or label != "language"))
    # a non-headline row that must not appear
    rows.append(dict(representation="raw", kind="baseline", algorithm="gmm", level="clip", scope="test",
                     label="genre", n_seeds=3, nmi=0.99, nmi_ci=0.0, silhouette=0.2, unsupervised=True))
    return pd.DataFrame(rows)


def test_table_has_one_row_per_representation_with_intervals_and_flags():
    md = results_markdown(_means(), {"best_by_modality": {}}, ["language", "genre"])
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| representation | kind | NMI language | NMI genre | silhouette |"
    body = {ln.split(" | ")[0][2:]: ln for ln in lines[1:]}
    assert list(body) == ["raw", "cvae", "vae"]  # baselines first, then models
    assert "0.612 ± 0.050" in body["vae"]
    assert "0.100 ± 0.100 *" in body["cvae"]  # language is not unsupervised for cvae
    assert "0.990" not in md  # gmm is not the headline algorithm
