"""``musiclust.compute``: per-song work in input order, locally or on Ray, with the same output bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.test_segment import SR, demo_songs, make_raw

from musiclust import compute
from musiclust.audio.io import downmix
from musiclust.audio.segment import segment_corpus
from musiclust.features.pipeline import featurize_segments
from musiclust.params import ComputeParams, FeatureParams, Params, ParamsError, parse_params

_STATE: dict = {}


def _setup(offset: int) -> None:
    _STATE["offset"] = offset


def _teardown() -> None:
    _STATE.clear()


def _slow_add(i: int) -> tuple[int, int]:
    time.sleep(0.02 * ((7 * i) % 5))  # later items often finish first
    return i + _STATE["offset"], os.getpid()


def test_local_pool_yields_in_input_order_and_initializes_each_worker():
    out = list(compute.map_ordered(_slow_add, range(12), workers=2, initializer=_setup, initargs=(100,)))
    assert [v for v, _ in out] == list(range(100, 112))
    assert len({pid for _, pid in out} - {os.getpid()}) == 2  # two pool workers, not this process


def test_one_worker_runs_here_and_cleans_up():
    out = list(
        compute.map_ordered(
            _slow_add, [3, 1], workers=1, initializer=_setup, initargs=(10,), cleanup=_teardown
        )
    )
    assert out == [(13, os.getpid()), (11, os.getpid())]
    assert _STATE == {}
    assert list(compute.map_ordered(_slow_add, [], workers=2)) == []


def test_ray_address_from_params_or_environment(monkeypatch):
    monkeypatch.delenv(compute.RAY_ADDRESS_ENV, raising=False)
    assert compute.resolve_ray_address(ComputeParams()) is None
    assert compute.resolve_ray_address(None) is None
    assert compute.resolve_ray_address(ComputeParams(ray_address="auto")) == "auto"
    monkeypatch.setenv(compute.RAY_ADDRESS_ENV, "ray://head:10001")
    assert compute.resolve_ray_address(ComputeParams()) == "ray://head:10001"
    assert compute.resolve_ray_address(ComputeParams(ray_address="local")) == "local"  # params win


def test_compute_params_are_validated():
    assert parse_params({"compute": {"ray_address": None}}).compute == ComputeParams()
    with pytest.raises(ParamsError, match="compute.ray_address"):
        parse_params({"compute": {"ray_address": " "}})
    with pytest.raises(ParamsError, match="unknown key"):
        parse_params({"compute": {"workers": 3}})


def test_ray_backend_without_ray_names_the_extra():
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"\.\[ray\]"):
        list(compute.map_ordered(_slow_add, [1], workers=1, ray_address="local"))


def test_stereo_downmix_equals_the_channel_mean():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10_001, 2)).astype(np.float32) * np.float32(0.7)
    x[:5] = [[1e-45, -1e-45], [-0.0, 0.0], [3e38, 3e38], [1.0, -1.0], [0.1, 0.2]]
    with np.errstate(over="ignore"):  # 3e38 + 3e38 overflows to inf in both
        mixed = downmix(x)
        np.testing.assert_array_equal(mixed, x.mean(axis=1))
    assert mixed.dtype == np.float32
    y = rng.standard_normal((100, 3)).astype(np.float32)
    np.testing.assert_array_equal(downmix(y), y.mean(axis=1))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _segment_and_featurize(raw: Path, out: Path, p: Params, compute_params: ComputeParams) -> None:
    segment_corpus(raw, out / "segments", p.audio, p.segment, p.data.label_columns, p.seed, compute_params)
    featurize_segments(out / "segments", out / "features", p.audio.sample_rate, p.features, compute_params)


@pytest.mark.slow
def test_ray_outputs_are_byte_identical_to_local(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv(compute.RAY_ADDRESS_ENV, raising=False)
    songs = demo_songs(n_per_cell=2, seconds=7.5)
    # one stereo 44.1 kHz song too, so decoding, downmix and resampling run on the Ray workers
    stereo = np.stack([songs[0]["y"], songs[1]["y"]], axis=1)
    raw = make_raw(tmp_path / "raw", songs)
    sf.write(raw / "audio" / "stereo.flac", np.repeat(stereo, 2, axis=0), 2 * SR, subtype="PCM_16")
    import pandas as pd

    table = pd.read_parquet(raw / "songs.parquet")
    extra = table.iloc[[0]].assign(song_id="stereo", audio_path="audio/stereo.flac", sample_rate=2 * SR)
    pd.concat([table, extra], ignore_index=True).to_parquet(raw / "songs.parquet", index=False)
    p = Params(features=FeatureParams(sets=("mfcc_stats", "spectral", "logmel", "mfcc_seq"), workers=2))

    _segment_and_featurize(raw, tmp_path / "local", p, ComputeParams())
    calls = []
    real = compute._ray_map
    monkeypatch.setattr(compute, "_ray_map", lambda *a: calls.append(a[-1]) or real(*a))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _segment_and_featurize(raw, tmp_path / "ray", p, ComputeParams(ray_address="local"))
    finally:
        ray.shutdown()
    assert calls == ["local", "local"]  # segment and featurize both ran as Ray tasks
    local, remote = _tree_bytes(tmp_path / "local"), _tree_bytes(tmp_path / "ray")
    assert sorted(local) == sorted(remote) and "features/logmel/shard-00000.npy" in local
    assert [k for k in local if local[k] != remote[k]] == []
