"""Caches shared with DVC's temporary experiment copies (musiclust.workspace)."""

from __future__ import annotations

from pathlib import Path

from musiclust.workspace import project_root, shared_cache


def test_a_stage_in_an_experiment_copy_uses_its_repositorys_caches(tmp_path: Path) -> None:
    repo = tmp_path / "project"
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    (copy / ".dvc").mkdir(parents=True)
    assert project_root(copy) == repo.resolve()
    assert shared_cache(".musiclust/cache/cluster", copy) == repo.resolve() / ".musiclust/cache/cluster"
    # in the repository itself, and anywhere else: the path as dvc.yaml gives it
    assert project_root(repo) is None
    assert shared_cache(".musiclust/cache/cluster", repo) == Path(".musiclust/cache/cluster")
    assert shared_cache(tmp_path / "elsewhere", copy) == tmp_path / "elsewhere"  # absolute: as given
    assert shared_cache(None, copy) is None


def test_a_folder_outside_any_experiment_copy_is_not_moved(tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "exps" / "tmp"
    plain.mkdir(parents=True)
    assert project_root(plain) is None
    assert shared_cache("c", plain) == Path("c")
