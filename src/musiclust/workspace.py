"""Where the project's own caches live when a stage runs in a DVC experiment's temporary copy.

``dvc exp run --queue`` (and ``--temp``) runs the pipeline in a copy of the repository under
``<repo>/.dvc/tmp/exps/<tmpdir>/``, which holds the tracked files and the outputs but not the
ignored ``.musiclust/cache/`` folder. The cluster store and the report's figure cache are meant
to be shared by every experiment of the project, so a stage running in such a copy uses the
caches of the repository the copy was made from.
"""

from __future__ import annotations

from pathlib import Path

#: The path parts DVC puts its experiment copies under, relative to the repository root.
EXPERIMENT_COPIES = (".dvc", "tmp", "exps")


def project_root(cwd: Path | None = None) -> Path | None:
    """The repository a DVC experiment copy was made from, when ``cwd`` (default: the current
    folder) is inside one; None otherwise."""
    parts = (cwd or Path.cwd()).resolve().parts
    n = len(EXPERIMENT_COPIES)
    for i in range(len(parts) - n, 0, -1):
        if parts[i : i + n] == EXPERIMENT_COPIES:
            return Path(*parts[:i])
    return None


def shared_cache(path: str | Path | None, cwd: Path | None = None) -> Path | None:
    """``path`` (a cache folder relative to the repository root, as dvc.yaml gives it), moved to the
    repository an experiment copy was made from when the stage runs in one. Absolute paths and
    None are returned as they are."""
    if path is None:
        return None
    path = Path(path)
    if path.is_absolute():
        return path
    root = project_root(cwd)
    return root / path if root is not None else path
