"""2-D maps of a representation's song vectors, computed once per representation for the report.

The maps live in each representation's output of the ``cluster`` stage, so that an experiment
that changes one model re-projects only that model; the report only draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from musiclust.clustering.representations import Representation, song_means
from musiclust.contracts.clusters import MAP_COLUMNS, SEED_INDEPENDENT
from musiclust.projection import project_2d


def song_maps(rep: Representation, methods: Sequence[str], seed: int) -> pd.DataFrame:
    """One row per song and method: 2-D coordinates of the song's mean clip vector.

    Model latents of the first training seed are mapped (one picture per model, not per seed);
    ``project_2d`` never crashes on degenerate input and says what it did in ``note``.
    """
    if not methods:
        return pd.DataFrame(columns=MAP_COLUMNS)
    map_seed = SEED_INDEPENDENT if rep.seed_independent else min(rep.clips)
    songs = song_means(rep.units(map_seed))
    frames = []
    for method in methods:
        xy, note = project_2d(songs.x.astype(np.float64), method, seed=seed)
        frames.append(
            pd.DataFrame(
                {
                    "representation": rep.name,
                    "seed": int(map_seed),
                    "method": method,
                    "unit_id": songs.unit_id.astype(str),
                    "song_id": songs.song_id.astype(str),
                    "split": songs.split.astype(str),
                    "x": xy[:, 0].astype(np.float32),
                    "y": xy[:, 1].astype(np.float32),
                    "note": note,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[MAP_COLUMNS]
