"""2-D projections on degenerate input: a note, never a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musiclust.projection import degenerate_reason, project_2d

METHODS = ["pca", "tsne", "umap"]


def _in_subprocess(code: str) -> subprocess.CompletedProcess:
    # a native crash (SIGSEGV) kills only the child, and the test sees its exit status
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("n", [3, 5, 40])
def test_identical_rows_never_crash_tsne_in_a_subprocess(n):
    """On main this exits -11 (t-SNE segfault): the report stage died without a message."""
    proc = _in_subprocess(f"""
        import numpy as np
        from musiclust.projection import project_2d
        xy, note = project_2d(np.ones(({n}, 8)), "tsne", seed=0)
        assert xy.shape == ({n}, 2) and np.isfinite(xy).all(), xy
        print(note)
    """)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "identical" in proc.stdout


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "x,expect",
    [
        (np.zeros((0, 4)), "no points"),
        (np.ones((1, 4)), "only point"),
        (np.ones((7, 4)), "identical"),
        (np.arange(8.0).reshape(2, 4), None),  # 2 points: one axis (a note unless pca)
        (np.tile(np.arange(4.0), (10, 1)) + np.r_[[[0.0] * 4] * 9, [[1.0] * 4]], "PCA used"),  # 2 distinct
        (np.c_[np.arange(4.0), np.zeros(4)], "PCA used"),  # one constant column, 4 points
    ],
)
def test_degenerate_inputs_give_finite_coordinates_and_a_note(method, x, expect):
    xy, note = project_2d(x, method, seed=0)
    assert xy.shape == (x.shape[0], 2) and np.isfinite(xy).all()
    if expect == "PCA used" and method == "pca":
        assert note is None
    elif expect is not None:
        assert note is not None and expect in note, note


@pytest.mark.parametrize("method", METHODS)
def test_nan_rows_are_drawn_and_named(method):
    x = np.random.default_rng(0).normal(size=(30, 5))
    x[3, 1] = np.nan
    x[7] = np.inf
    xy, note = project_2d(x, method, seed=0)
    assert np.isfinite(xy).all() and "2 point(s) with NaN/inf" in note


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_normal_input_runs_the_method_deterministically(method):
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 1, (30, 6)), rng.normal(6, 1, (30, 6))]
    a, note = project_2d(x, method, seed=3)
    b, _ = project_2d(x, method, seed=3)
    assert note is None and np.array_equal(a, b)
    # the two blobs stay apart in 2-D
    gap = np.linalg.norm(a[:30].mean(0) - a[30:].mean(0))
    assert gap > 2 * max(a[:30].std(0).max(), a[30:].std(0).max())


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown projection"):
        project_2d(np.ones((3, 2)), "mds")


def test_degenerate_reason_for_clustering():
    assert degenerate_reason(np.ones((5, 3))) == "all points identical"
    assert degenerate_reason(np.ones((1, 3))).startswith("fewer than 2 points")
    assert degenerate_reason(np.array([[0.0, np.nan], [1.0, 2.0]])) == "NaN/inf values"
    assert degenerate_reason(np.eye(3)) is None
    assert degenerate_reason(np.eye(3), min_points=4).startswith("fewer than 4")
