"""Song-level split: stratified, deterministic, tiny strata handled, no song on two sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musiclust.audio.split import assign_splits, split_summary, strata

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def songs_table(
    n_per_cell: int, languages=("en", "bn"), genres=("pop", "rock", "folk", "electronic")
) -> pd.DataFrame:
    rows = [
        {"song_id": f"{lang}-{g}-{i:02d}", "language": lang, "genre": g}
        for lang in languages
        for g in genres
        for i in range(n_per_cell)
    ]
    return pd.DataFrame(rows)


def test_every_stratum_is_split_in_proportion():
    songs = songs_table(10)  # 8 cells of 10 songs
    split = assign_splits(songs, ["language", "genre"], FRACTIONS, seed=0)
    table = pd.crosstab(strata(songs, ["language", "genre"]), split)
    assert (table["train"] == 7).all()  # floor(10 * 0.7) exactly
    assert table[["val", "test"]].min().min() >= 1
    assert (table.sum(axis=1) == 10).all()
    counts = split.value_counts()
    assert counts["train"] == 56 and abs(counts["val"] - 12) <= 1 and abs(counts["test"] - 12) <= 1


def test_split_is_deterministic_and_ignores_row_order():
    songs = songs_table(5)
    a = assign_splits(songs, ["language", "genre"], FRACTIONS, seed=3)
    shuffled = songs.sample(frac=1.0, random_state=1)
    b = assign_splits(shuffled, ["language", "genre"], FRACTIONS, seed=3)
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())
    c = assign_splits(songs, ["language", "genre"], FRACTIONS, seed=4)
    assert not a.equals(c)  # the seed matters
    assert a.value_counts().to_dict() == c.value_counts().to_dict()  # but not the sizes


@pytest.mark.parametrize("n", [3, 4, 5, 7, 10, 20])
def test_singleton_strata_still_fill_every_split(n):
    # every song is its own stratum (1 song per language x genre cell)
    songs = pd.DataFrame(
        {"song_id": [f"s{i}" for i in range(n)], "language": ["en"] * n, "genre": [f"g{i}" for i in range(n)]}
    )
    split = assign_splits(songs, ["language", "genre"], FRACTIONS, seed=0)
    counts = split.value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    # the global fractions are still roughly honoured (within one song after rounding);
    # with 3 songs "every split non-empty" forces 1/1/1
    for s, f in FRACTIONS.items():
        assert abs(counts[s] - f * n) <= (1.0 if n > 3 else 1.1) + 1e-9


def test_two_song_cells_spread_over_splits():
    songs = songs_table(2)  # 8 cells of 2 songs: 16 songs
    split = assign_splits(songs, ["language", "genre"], FRACTIONS, seed=0)
    counts = split.value_counts()
    assert counts["train"] == 11 and counts["val"] + counts["test"] == 5 and min(counts) >= 2


def test_fewer_than_three_songs_and_empty():
    two = pd.DataFrame({"song_id": ["a", "b"], "language": ["en", "bn"], "genre": ["pop", "pop"]})
    assert set(assign_splits(two, ["language", "genre"], FRACTIONS, seed=0)) <= {"train", "val", "test"}
    empty = pd.DataFrame({"song_id": pd.Series([], dtype=str)})
    assert len(assign_splits(empty, ["language"], FRACTIONS, seed=0)) == 0


def test_missing_and_null_label_columns():
    songs = songs_table(4)
    songs.loc[songs.index[:3], "language"] = None
    key = strata(songs, ["language", "genre", "mood"])  # "mood" does not exist: ignored
    assert key.iloc[0] == "<unknown>|pop"
    split = assign_splits(songs.drop(columns=["language", "genre"]), ["language", "genre"], FRACTIONS, seed=0)
    assert split.value_counts().to_dict() == {"train": 22, "val": 5, "test": 5}
    summary = split_summary(
        songs, assign_splits(songs, ["language", "genre"], FRACTIONS, 0), ["language", "genre"]
    )
    assert summary["label_columns"] == ["language", "genre"] and sum(summary["songs"].values()) == 32


def test_zero_fraction_split_stays_empty():
    songs = songs_table(5)
    split = assign_splits(songs, ["language", "genre"], {"train": 0.8, "val": 0.2, "test": 0.0}, seed=0)
    assert "test" not in set(split) and split.value_counts()["train"] == 32


def test_no_song_has_clips_in_two_splits():
    songs = songs_table(3)
    split = assign_splits(songs, ["language", "genre"], FRACTIONS, seed=0)
    clips = songs.assign(split=split.to_numpy()).loc[np.repeat(songs.index, 5)].reset_index(drop=True)
    assert (clips.groupby("song_id")["split"].nunique() == 1).all()
    assert set(clips["split"]) == {"train", "val", "test"}


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="appears twice"):
        assign_splits(pd.DataFrame({"song_id": ["a", "a"]}), [], FRACTIONS, 0)
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(songs_table(1), [], {"train": 0.5, "val": 0.2, "test": 0.2}, 0)
