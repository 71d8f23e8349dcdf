"""Song-level train / val / test split, stratified by the label columns that exist.

Clips cut from one song are near-duplicates, so the split is made over *songs* and every
clip inherits its song's split: no song can have clips on two sides.

How songs are assigned (deterministic for a given seed and set of songs; input row order
does not matter):

1. Each song's *stratum* is the tuple of its label values (e.g. ``("bn", "folk")``) over the
   label columns present in the table with at least one non-null value; a null label is its
   own value ``"<unknown>"``. Without any label column there is one stratum.
2. Strata are visited from largest to smallest (ties by name). Inside a stratum the songs are
   shuffled with the seed; split ``s`` first receives ``floor(n * fraction_s)`` of them.
3. The ``n - sum(floors)`` songs left over (at most two with three splits) go, one each, to the
   splits whose *global* counts are furthest below their target so far. This is what makes
   tiny strata work: a cell of one or two songs cannot be split proportionally, so its songs
   fill whichever split the corpus as a whole is short of, and singleton cells end up spread
   over train/val/test in about the requested fractions instead of all landing in train.
4. With at least as many songs as splits of positive fraction, no such split is left empty:
   an empty split takes one song from the largest split (from that split's largest stratum).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
UNKNOWN = "<unknown>"


def present_label_columns(songs: pd.DataFrame, label_columns: Sequence[str]) -> list[str]:
    """The label columns that exist in ``songs`` and have at least one non-null value."""
    return [c for c in label_columns if c in songs.columns and songs[c].notna().any()]


def strata(songs: pd.DataFrame, label_columns: Sequence[str]) -> pd.Series:
    """Stratum name of each song (``"bn|folk"``; ``"all"`` without label columns)."""
    cols = present_label_columns(songs, label_columns)
    if not cols:
        return pd.Series("all", index=songs.index, dtype=object)
    parts = [songs[c].astype(object).where(songs[c].notna(), UNKNOWN).astype(str) for c in cols]
    key = parts[0]
    for p in parts[1:]:
        key = key + "|" + p
    return key


def assign_splits(
    songs: pd.DataFrame,
    label_columns: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
) -> pd.Series:
    """Split of each song (a Series aligned with ``songs.index``, values train/val/test).

    ``songs`` needs a unique ``song_id`` column; ``fractions`` maps each of
    train/val/test to a fraction (summing to 1). See the module docstring for the rules.
    """
    if "song_id" not in songs.columns:
        raise ValueError("assign_splits needs a song_id column")
    if songs["song_id"].duplicated().any():
        dup = songs.loc[songs["song_id"].duplicated(), "song_id"].iloc[0]
        raise ValueError(f"song_id {dup!r} appears twice; song ids must be unique")
    f = np.array([float(fractions[s]) for s in SPLITS])
    if np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {dict(zip(SPLITS, f))}")
    out = pd.Series(index=songs.index, dtype=object)
    if len(songs) == 0:
        return out

    rng = np.random.default_rng(seed)
    key = strata(songs, label_columns)
    ids = songs["song_id"].astype(str)
    groups = {k: sorted(ids[key == k].index, key=lambda i: ids[i]) for k in sorted(key.unique())}
    order = sorted(groups, key=lambda k: (-len(groups[k]), k))

    counts = np.zeros(3, np.int64)
    total = 0
    for k in order:
        members = [groups[k][i] for i in rng.permutation(len(groups[k]))]
        n = len(members)
        quota = np.floor(n * f + 1e-9).astype(np.int64)
        after = total + n
        extra_given = np.zeros(3, bool)
        for _ in range(n - int(quota.sum())):
            deficit = f * after - (counts + quota)
            deficit[(f <= 0) | extra_given] = -np.inf  # one leftover per split, none to empty-fraction splits
            s = int(np.argmax(deficit))
            quota[s] += 1
            extra_given[s] = True
        start = 0
        for s, q in enumerate(quota):
            for idx in members[start : start + q]:
                out[idx] = SPLITS[s]
            start += q
        counts += quota
        total = after

    _fill_empty_splits(out, key, f)
    return out


def _fill_empty_splits(split: pd.Series, key: pd.Series, f: np.ndarray) -> None:
    """Move one song into each empty positive-fraction split, when there are enough songs."""
    wanted = [s for s, fr in zip(SPLITS, f) if fr > 0]
    if len(split) < len(wanted):
        return
    for s in wanted:
        if (split == s).any():
            continue
        sizes = split.value_counts()
        donor = sizes.idxmax()
        if sizes[donor] <= 1:
            continue
        in_donor = split.index[split == donor]
        # take from the donor's largest stratum: the move disturbs stratification least there
        donor_strata = key[in_donor].value_counts()
        biggest = donor_strata.index[0]
        candidates = sorted(i for i in in_donor if key[i] == biggest)
        moved = candidates[-1]
        split[moved] = s
        log.info("split %s was empty: moved one song from %s (stratum %s)", s, donor, biggest)


def split_summary(songs: pd.DataFrame, split: pd.Series, label_columns: Sequence[str]) -> dict:
    """Songs per split overall and per stratum (for the segment report)."""
    key = strata(songs, label_columns)
    table = pd.crosstab(key, split).reindex(columns=list(SPLITS), fill_value=0)
    return {
        "label_columns": present_label_columns(songs, label_columns),
        "songs": {s: int((split == s).sum()) for s in SPLITS},
        "strata": {str(k): {s: int(v) for s, v in row.items()} for k, row in table.iterrows()},
    }
