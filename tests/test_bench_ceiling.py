"""benchmarks/ceiling.py: the supervised ceiling and chance level of a label in song vectors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musiclust.fileio import write_parquet

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("bench_ceiling", REPO / "benchmarks" / "ceiling.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(root: Path, planted: float) -> None:
    """60 songs of 3 genres; ``planted`` scales how far apart the genres sit in every dimension of
    representation ``rep`` (two seeds) over unit noise."""
    rng = np.random.default_rng(0)
    songs = [f"s{i:02d}" for i in range(60)]
    genre = np.array(["a", "b", "c"])[np.arange(60) % 3]
    split = np.array(["train", "train", "val", "test", "train"])[np.arange(60) % 5]
    language = np.array(["en", "de"])[(np.arange(60) // 3) % 2]
    seg = pd.DataFrame(
        {
            "segment_id": [f"{s}__0000" for s in songs],
            "song_id": songs,
            "split": split,
            "genre": genre,
            "language": language,
        }
    )
    write_parquet(seg, root / "segments" / "segments.parquet")
    frames = []
    for seed in (0, 1):
        x = rng.normal(size=(60, 4))
        x += planted * (np.arange(60) % 3)[:, None]
        f = pd.DataFrame(x.astype(np.float32), columns=[f"z_{j:02d}" for j in range(4)])
        f.insert(0, "split", split)
        f.insert(0, "song_id", songs)
        f.insert(0, "unit_id", songs)
        f.insert(0, "level", "song_mean")
        f.insert(0, "seed", seed)
        frames.append(f)
    write_parquet(pd.concat(frames, ignore_index=True), root / "clusters" / "rep" / "vectors.parquet")


def _rows(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("| rep |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[1]] = float(cells[3].split()[0])
    return out


@pytest.mark.parametrize(("planted", "low", "high"), [(6.0, 0.8, 1.01), (0.0, 0.0, 0.2)])
def test_ceiling_finds_a_planted_label_and_not_an_absent_one(
    ceiling, tmp_path: Path, planted: float, low: float, high: float
) -> None:
    _write(tmp_path, planted)
    out = tmp_path / "ceiling.md"
    argv = ["rep", "--clusters", str(tmp_path / "clusters"), "--segments", str(tmp_path / "segments")]
    assert ceiling.main([*argv, "--folds", "3", "--boot", "50", "--out", str(out)]) == 0
    text = out.read_text()
    rows = _rows(text)
    assert set(rows) == {"logistic", "svm_rbf", "forest", "kmeans, k = classes"}
    for probe in ("logistic", "svm_rbf", "forest"):
        assert low <= rows[probe] <= high, (probe, rows)
    assert "on 12 songs (the headline's test set)" in text and "on all 60 songs" in text


def test_given_label_bound(ceiling, tmp_path: Path) -> None:
    """With genre planted and language independent of it, K-Means at k = 3 finds genre, and the
    partition a language-separating representation is driven to (language x K-Means with 3 // 2
    clusters) loses most of it."""
    _write(tmp_path, 6.0)
    out = tmp_path / "ceiling.md"
    argv = ["rep", "--clusters", str(tmp_path / "clusters"), "--segments", str(tmp_path / "segments")]
    assert (
        ceiling.main([*argv, "--folds", "3", "--boot", "20", "--given", "language", "--out", str(out)]) == 0
    )
    row = next(line for line in out.read_text().splitlines() if line.startswith("| rep |") and " / " in line)
    plain, given = ([float(v) for v in cell.split(" / ")] for cell in row.strip("|").split("|")[1:3])
    assert plain[1] > 0.9 and given[1] < 0.2, row


def test_chance_nmi_is_biased_upward_on_few_songs(ceiling) -> None:
    y = np.array(["a", "b", "c"] * 100)
    few, many = ceiling.chance(y, 6, 30, 200, 0), ceiling.chance(y, 6, 300, 200, 0)
    assert few > 2 * many > 0
