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
