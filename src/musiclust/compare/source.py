"""The thin layer that talks to DVC: which experiments exist, and their params, headline and maps.

Experiments are listed with ``dvc.api.exp_show()`` (the baseline commit and its experiments, as
``dvc exp show`` prints them). Each one's params come from ``dvc.api.params_show(rev=...)`` and
its headline numbers from ``metrics/headline.json`` read at that revision: ``exp_show`` flattens
params and metrics into one namespace without saying which file a column came from, and the
nested headline is easier to take whole than to rebuild from dotted keys.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from musiclust.compare.frames import Experiment, headline_frame

log = logging.getLogger(__name__)

HEADLINE = "metrics/headline.json"
MAPS = "data/clusters/{rep}/maps.parquet"
SEGMENTS = "data/segments/segments.parquet"
UNFINISHED = {"Queued", "Running", "Failed"}


@dataclass(frozen=True)
class Revision:
    """An experiment as listed: display ``name`` and the ``rev`` DVC reads it at (None: the workspace)."""

    name: str
    rev: str | None


def list_revisions(
    repo: str = ".", revs: Sequence[str] = (), workspace: bool = False
) -> tuple[list[Revision], list[str]]:
    """The revisions to compare, and notes on the ones left out.

    With ``revs`` (commits, branches, tags or experiment names) exactly those, in that order.
    Otherwise the baseline commit and its experiments from ``dvc.api.exp_show``; queued, running
    and failed experiments have no results yet and are left out with a note; the workspace is
    included only with ``workspace=True``.
    """
    if revs:
        return [Revision(r, r) for r in revs], []
    import dvc.api

    out: list[Revision] = []
    notes: list[str] = []
    for row in dvc.api.exp_show(repo=repo):
        if row.get("rev") == "workspace":
            if workspace:
                out.append(Revision("workspace", None))
            continue
        name = row.get("Experiment") or row["rev"]
        if row.get("State") in UNFINISHED:
            notes.append(f"{name}: {row['State'].lower()}, no results yet")
            continue
        out.append(Revision(name, row["rev"]))
    return out, notes


def load_experiment(rev: Revision, repo: str = ".") -> Experiment:
    """Params and headline of one revision; a clear error naming the revision when headline.json is absent."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        text = dvc.api.read(HEADLINE, repo=repo, rev=rev.rev)
    except (DvcException, FileNotFoundError) as err:
        raise FileNotFoundError(
            f"{rev.name}: cannot read {HEADLINE} at revision {rev.rev or 'workspace'} ({err})"
        ) from err
    try:
        headline = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{rev.name}: {HEADLINE} is not valid JSON ({err})") from err
    if not isinstance(headline, Mapping):
        raise ValueError(f"{rev.name}: {HEADLINE} is a JSON {type(headline).__name__}, not an object")
    try:
        params = dvc.api.params_show(repo=repo, rev=rev.rev)
    except DvcException as err:
        raise ValueError(f"{rev.name}: its params cannot be read ({err})") from err
    return Experiment(name=rev.name, rev=rev.rev or "workspace", params=params, headline=headline)


def load_experiments(revisions: Sequence[Revision], repo: str = ".") -> tuple[list[Experiment], list[str]]:
    """Every revision with a readable headline; the others are left out with a note (logged).

    One experiment with a missing or broken ``headline.json`` (not JSON, not an object, a value
    that is not a number) never stops the comparison of the rest.
    """
    experiments, notes = [], []
    for rev in revisions:
        try:
            e = load_experiment(rev, repo)
            headline_frame([e])  # each value checked here, one experiment at a time
        except (FileNotFoundError, ValueError) as err:
            log.warning("left out: %s", err)
            notes.append(f"left out {err}")
            continue
        experiments.append(e)
    return experiments, notes


def _read_parquet(path: str, repo: str, rev: str | None, columns: list[str] | None = None) -> pd.DataFrame:
    import dvc.api

    with dvc.api.open(path, repo=repo, rev=rev, mode="rb") as f:
        return pd.read_parquet(io.BytesIO(f.read()), columns=columns)


def load_maps(
    experiment: Experiment, representation: str, repo: str = "."
) -> tuple[pd.DataFrame | None, str | None]:
    """``data/clusters/<rep>/maps.parquet`` of one experiment, or (None, why) when it cannot be read.

    Absent is normal (an older revision, a representation not applicable, an output not in the
    local cache); a file that exists but is not a map table is an error.
    """
    from dvc.exceptions import DvcException

    path = MAPS.format(rep=representation)
    rev = None if experiment.rev == "workspace" else experiment.rev
    try:
        frame = _read_parquet(path, repo, rev)
    except (DvcException, FileNotFoundError) as err:
        return None, f"{experiment.name}: no {path} ({type(err).__name__})"
    missing = {"method", "seed", "song_id", "x", "y"} - set(frame.columns)
    if missing:
        raise ValueError(f"{experiment.name}: {path} lacks columns {sorted(missing)}")
    return frame, None


def load_song_labels(experiment: Experiment, label: str, repo: str = ".") -> dict[str, str] | None:
    """song_id -> value of ``label`` from ``data/segments/segments.parquet`` (None when unavailable)."""
    from dvc.exceptions import DvcException

    rev = None if experiment.rev == "workspace" else experiment.rev
    try:
        seg = _read_parquet(SEGMENTS, repo, rev)
    except (DvcException, FileNotFoundError) as err:
        log.info("maps are not coloured: no %s at %s (%s)", SEGMENTS, experiment.name, type(err).__name__)
        return None
    if label not in seg.columns or "song_id" not in seg.columns:
        log.info("maps are not coloured: %s has no song_id/%s column", SEGMENTS, label)
        return None
    songs = seg[["song_id", label]].drop_duplicates("song_id").dropna()
    return dict(zip(songs["song_id"].astype(str), songs[label].astype(str)))
