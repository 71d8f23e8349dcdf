"""Shared fixtures: repository paths and the optional real-music folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$MUSICLUST_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("MUSICLUST_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real-music folder {d} is absent (set MUSICLUST_SHARED_DATA to use it)")
    return d


_OUTPUT_DIRS = ("data", "metrics", "plots", "models")


def _output_snapshot() -> dict[str, float]:
    """Modification times of every file under the pipeline's output folders in the repository."""
    snap = {}
    for top in _OUTPUT_DIRS:
        root = REPO / top
        if root.is_dir():
            for p in root.rglob("*"):
                if p.is_file():
                    snap[str(p.relative_to(REPO))] = p.stat().st_mtime
    return snap


@pytest.fixture(scope="session", autouse=True)
def _tests_never_write_pipeline_outputs_into_the_repo():
    """Tests work in tmp_path; a stage called with a default path must not touch the repo's outputs."""
    before = _output_snapshot()
    yield
    after = _output_snapshot()
    changed = sorted(k for k in after if before.get(k) != after[k])
    assert not changed, f"tests wrote into the repository's output folders: {changed[:10]}"
