"""Hostile input, third pass: every input ends in a working run or one clear line, and nothing
changes behind the user's back.

Each test names the defect it guards (the numbers of the third adversarial pass); on the code
before that pass each one fails. Fourth-pass cases (variants nobody had named) follow at the end.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import stages.download as download_stage
import yaml
from tests.test_hostile import manifest, run, tone

from musiclust.data.acquire import AcquisitionError
from musiclust.data.manifest import ManifestError, read_manifest
from musiclust.fileio import UserInputError
from musiclust.log import run_main
from musiclust.params import ParamsError, parse_params

REPO = Path(__file__).resolve().parents[1]
SR = 22050


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root`` (relative path -> (size, mode)): what "nothing changed" compares."""
    return {
        p.relative_to(root).as_posix(): (p.lstat().st_size if p.is_file() else -1, p.lstat().st_mode)
        for p in sorted(root.rglob("*"))
    }


def _params_file(tmp: Path, cfg: dict, name: str = "params.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return p


def _one_error_line(capsys, main, argv) -> str:
    """Run a stage ``main`` the way its script does; returns the single ``error:`` line (exit 2)."""
    with pytest.raises(SystemExit) as ei:
        run_main(main, argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    if os.environ.get("SHOW_ERRORS"):
        with capsys.disabled():
            print("\n" + lines[0])
    return lines[0]


# ---------------------------------------------------------------- 1: a cache inside the music folder


def test_1_cache_inside_the_music_folder_is_refused_and_the_folder_is_untouched(tmp_path, capsys):
    music = tmp_path / "music"
    for i in range(3):
        tone(music / "rock" / f"s{i}.wav", freq=300 + 50 * i)
    before = _files(music)
    cfg = {
        "data": {"source": "folder"},
        "download": {"cache_dir": str(music / "cache"), "min_success_fraction": 0.0},
    }
    argv = ["--out", str(tmp_path / "raw"), "--params", str(_params_file(tmp_path, cfg))]
    line = _one_error_line(capsys, download_stage.main, [*argv, "--folder", str(music)])
    assert "download.cache_dir" in line and "data.folder" in line
    assert _files(music) == before  # nothing written into the user's folder
    assert not (tmp_path / "raw").exists()


def test_1_output_folder_inside_the_music_folder_is_refused(tmp_path, capsys):
    music = tmp_path / "music"
    tone(music / "rock" / "a.wav")
    before = _files(music)
    cfg = {"data": {"source": "folder"}, "download": {"min_success_fraction": 0.0}}
    argv = ["--out", str(music / "raw"), "--params", str(_params_file(tmp_path, cfg)), "--folder", str(music)]
    line = _one_error_line(capsys, download_stage.main, argv)
    assert "data.folder" in line and "--out" in line
    assert _files(music) == before


# ---------------------------------------------------------------- 2: two runs sharing one cache

_SLOW_RUN = """
import sys, time
from pathlib import Path
import musiclust.data.acquire as acq
import stages.download as stage

flags = Path(sys.argv[1])
real = acq._from_local

def paused(req, ctx):
    # the first song of this run waits (its temporary folder in use) until the other run is done
    if req.row == 0:
        (flags / "a_started").touch()
        t0 = time.monotonic()
        while not (flags / "b_done").exists() and time.monotonic() - t0 < 120:
            time.sleep(0.05)
    return real(req, ctx)

acq._from_local = paused
from musiclust.log import run_main
run_main(stage.main, sys.argv[2:])
"""


def test_2_two_runs_sharing_one_cache_both_succeed(tmp_path):
    """What ``dvc queue start -j 2`` does with an absolute cache path: two real processes at once."""
    d = tmp_path / "in"
    for i in range(8):
        tone(d / f"s{i}.wav", freq=200 + 60 * i)
    # different songs, so that run A cannot take its files from what run B put in the cache
    m_a = manifest(d / "a.csv", [{"track_id": f"s{i}", "source": f"s{i}.wav"} for i in range(4)])
    m_b = manifest(d / "b.csv", [{"track_id": f"s{i}", "source": f"s{i}.wav"} for i in range(4, 8)])
    cache = tmp_path / "shared-cache"
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def argv(name: str, m: Path) -> list[str]:
        cfg = {"data": {"source": "manifest"}, "download": {"cache_dir": str(cache), "concurrency": 1}}
        work = tmp_path / name
        work.mkdir()
        return ["--out", str(work / "raw"), "--params", str(_params_file(work, cfg)), "--manifest", str(m)]

    a = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, str(flags), *argv("a", m_a)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t0 = time.monotonic()
        while not (flags / "a_started").exists():
            assert a.poll() is None, a.communicate()[1][-3000:]
            assert time.monotonic() - t0 < 120, "run A never started its first song"
            time.sleep(0.05)
        b = subprocess.run(
            [sys.executable, "stages/download.py", *argv("b", m_b)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        (flags / "b_done").touch()
        a_out, a_err = a.communicate(timeout=300)
    finally:
        if a.poll() is None:
            a.kill()
    assert b.returncode == 0, b.stderr[-3000:]
    assert a.returncode == 0, a_err[-3000:]
    for name in ("a", "b"):
        rep = json.loads((tmp_path / name / "raw" / "report.json").read_text())
        assert rep["ok"] == 4, rep["reasons"]
    assert not list(cache.glob(".partial-*")), "a finished run leaves no temporary folder"


def test_2_a_dead_runs_leftovers_are_cleaned_by_the_next_run(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    m = manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav"}])
    cache = tmp_path / ".musiclust" / "cache" / "downloads"
    stale = cache / ".partial-dead0001"
    stale.mkdir(parents=True)
    (stale / "half.part").write_bytes(b"x" * 10)
    rep = run(tmp_path, tmp_path / "raw", manifest=m)
    assert rep["ok"] == 1 and not stale.exists()


# ---------------------------------------------------------------- 3: repeated or case-variant headers


@pytest.mark.parametrize(
    "header",
    [
        "track_id,source,Source",
        "track_id,genre,Genre,source",
        "track_id,source, source",
        "track_id,source,source",
    ],
)
def test_3_repeated_or_case_variant_headers_are_refused(tmp_path, header):
    p = tmp_path / "m.csv"
    n = len(header.split(","))
    p.write_text(header + "\n" + ",".join(["x"] * n) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.csv line 1: .*(source|genre).*more than once"):
        read_manifest(p, ["language", "genre"])


# ---------------------------------------------------------------- 4, 5: label_columns


@pytest.mark.parametrize("name", ["song_id", "audio_path", "split", "source", "title", "lyrics_path", "path"])
def test_4_reserved_label_column_is_refused_at_load(name):
    with pytest.raises(ParamsError, match=rf"data\.label_columns.*{name!r}"):
        parse_params({"data": {"label_columns": ["language", name]}})


@pytest.mark.parametrize("name,hint", [("Genre", "'genre'"), (" mood ", "'mood'"), ("", "empty")])
def test_5_label_column_in_another_case_or_padded_is_refused_at_load(name, hint):
    with pytest.raises(ParamsError, match=rf"data\.label_columns.*{hint}"):
        parse_params({"data": {"label_columns": ["language", name]}})


def test_5_a_label_column_the_input_lacks_is_named(tmp_path, capsys):
    d = tmp_path / "in"
    tone(d / "a.wav")
    m = manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav", "genre": "rock"}])
    run(tmp_path, tmp_path / "raw", manifest=m, label_columns=["genre", "mood"])
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "WARNING" in ln]
    assert any("'mood'" in ln and "m.csv" in ln and "data.label_columns" in ln for ln in warned), warned


# ---------------------------------------------------------------- 6: zero usable clips


@pytest.fixture
def short_raw(tmp_path) -> Path:
    """A collection of three 1.5-second tones."""
    d = tmp_path / "in"
    for i in range(3):
        tone(d / f"s{i}.wav", seconds=1.5, freq=300 + 40 * i)
    m = manifest(d / "m.csv", [{"track_id": f"s{i}", "source": f"s{i}.wav"} for i in range(3)])
    run(tmp_path, tmp_path / "raw", manifest=m)
    return tmp_path / "raw"


@pytest.mark.parametrize(
    "segment,key",
    [
        ({"window_s": 3.0, "hop_s": 3.0}, "segment.window_s"),
        ({"window_s": 1.0, "silence_db": -1.0}, "segment.silence_db"),
    ],
)
def test_6_zero_usable_clips_stop_segment_naming_the_key(short_raw, tmp_path, capsys, segment, key):
    import stages.segment as seg_stage

    pp = _params_file(tmp_path, {"segment": {**segment, "workers": 0}}, "seg.yaml")
    argv = ["--raw", str(short_raw), "--out", str(tmp_path / "segments"), "--params", str(pp)]
    line = _one_error_line(capsys, seg_stage.main, argv)
    assert key in line and "0" in line


def test_6_featurize_refuses_a_segment_folder_without_usable_clips(tmp_path, capsys):
    import stages.featurize as feat_stage

    from musiclust.contracts import segments as contract

    seg_dir = tmp_path / "segments"
    empty = pd.DataFrame(columns=contract.CLIP_COLUMNS)
    contract.write(seg_dir, empty, {"audio": {"sample_rate": SR, "prefix": contract.AUDIO_PREFIX}})
    pp = _params_file(tmp_path, {"features": {"workers": 0}})
    argv = ["--segments", str(seg_dir), "--out", str(tmp_path / "features"), "--params", str(pp)]
    line = _one_error_line(capsys, feat_stage.main, argv)
    assert "no usable clip" in line and "segment" in line


# ---------------------------------------------------------------- 7, 12h: sample rate and window at load


@pytest.mark.parametrize("rate", [1000, 8000, 11025, 12800])
def test_7_a_sample_rate_the_spectral_set_cannot_use_is_refused_at_load(rate):
    with pytest.raises(ParamsError, match=r"audio\.sample_rate.*features\.sets.*spectral"):
        parse_params({"audio": {"sample_rate": rate}, "features": {"sets": ["mfcc_stats", "spectral"]}})


def test_7_a_low_sample_rate_without_the_spectral_set_featurizes(tmp_path):
    from musiclust.features.extract import FeatureConfig, Featurizer

    p = parse_params(
        {"audio": {"sample_rate": 8000}, "features": {"sets": ["mfcc_stats", "logmel", "rhythm"]}}
    )
    f = Featurizer(FeatureConfig.from_params(p.audio.sample_rate, p.features))
    y = np.random.default_rng(0).standard_normal((2, 3 * 8000)).astype(np.float32) * 0.1
    out = f(y)
    assert set(out) == {"mfcc_stats", "logmel", "rhythm"} and all(np.isfinite(v).all() for v in out.values())
    parse_params({"audio": {"sample_rate": 16000}})  # the lowest common rate with every default set


def test_12h_a_window_shorter_than_one_fft_frame_is_refused_at_load():
    with pytest.raises(ParamsError, match=r"segment\.window_s.*features\.n_fft"):
        parse_params({"segment": {"window_s": 0.05, "hop_s": 0.05}})


# ---------------------------------------------------------------- 8, 9: checkpoints


def _small_checkpoint(tmp_path: Path) -> tuple[Path, dict]:
    import torch

    from musiclust.models import build_model, make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = build_model("vae", {"latent_dim": 4, "hidden": [8]}, {"audio_dim": 6})
    ckpt = make_checkpoint(model, inputs={"x_kind": "vector"})
    path = tmp_path / "seed0.pt"
    save_checkpoint(path, ckpt)
    return path, ckpt


def test_8_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    import torch

    from musiclust.models import CheckpointError, load_model, save_checkpoint

    path, ckpt = _small_checkpoint(tmp_path)
    load_model(path)  # the intact file loads
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = ckpt["state_dict"][name].clone()
    ckpt["state_dict"][name].view(-1)[0] = torch.nan
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match=rf"non-finite.*{name}"):
        load_model(path)


def test_8_assign_json_never_prints_bare_nan():
    from musiclust.assign import SongPlacement, placements_json

    p = SongPlacement("x.wav", "x", "ok", distance=float("nan"), neighbours=[{"distance": float("inf")}])
    text = placements_json([p])
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)[0]["distance"] is None


def _tamper(tmp_path: Path, how: str) -> Path:
    import torch

    from musiclust.models import save_checkpoint

    path, ckpt = _small_checkpoint(tmp_path)
    if how == "shape":
        name = next(iter(ckpt["state_dict"]))
        ckpt["state_dict"][name] = torch.zeros(3, 3)
    elif how == "missing":
        ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
    elif how == "constructor":
        ckpt["constructor"]["latent_dim"] = 7
    elif how == "huge":
        ckpt["constructor"]["hidden"] = [10**9]  # would allocate gigabytes before failing
    elif how == "unknown_arg":
        ckpt["constructor"]["rm_rf"] = True
    elif how == "other_key":
        ckpt["model_key"] = "conv_vae"
    elif how == "no_such_key":
        ckpt["model_key"] = "../../etc"
    elif how == "not_a_dict":
        ckpt["constructor"] = [1, 2]
    elif how == "state_not_tensors":
        ckpt["state_dict"] = {"w": "text"}
    save_checkpoint(path, ckpt)
    return path


@pytest.mark.parametrize(
    "how",
    [
        "shape",
        "missing",
        "constructor",
        "huge",
        "unknown_arg",
        "other_key",
        "no_such_key",
        "not_a_dict",
        "state_not_tensors",
    ],
)
def test_9_tampered_checkpoint_contents_are_one_clear_refusal(tmp_path, how):
    from musiclust.models import CheckpointError, load_model

    path = _tamper(tmp_path, how)
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg and "re-run training" in msg
    assert isinstance(ei.value, UserInputError)  # a stage shows it as one line, exit 2


# ---------------------------------------------------------------- 10: one bad experiment in compare


def test_10_one_bad_experiment_is_left_out_and_the_page_is_written(tmp_path, monkeypatch, caplog):
    import argparse

    import dvc.api

    from musiclust.compare import command

    good = {"pca": {"genre": {"nmi": 0.3, "nmi_low": 0.2, "nmi_high": 0.4, "ami": 0.3}, "silhouette": 0.1}}
    heads = {
        "good": json.dumps(good),
        "badjson": "{not json",
        "badvalue": json.dumps({"pca": {"genre": {"nmi": "high"}}}),
        "badshape": json.dumps([1, 2]),
    }
    monkeypatch.setattr(dvc.api, "read", lambda path, repo=".", rev=None, **k: heads[rev])
    monkeypatch.setattr(dvc.api, "params_show", lambda repo=".", rev=None, **k: {"beta": 1.0})
    ap = argparse.ArgumentParser()
    command.add_arguments(ap)
    out = tmp_path / "c.html"
    args = ap.parse_args([*heads, "--out", str(out), "--no-maps", "--repo", str(tmp_path)])
    assert command.run(args) == 0
    html = out.read_text(encoding="utf-8")
    for bad in ("badjson", "badvalue", "badshape"):
        assert any(bad in r.message for r in caplog.records if r.levelname == "WARNING"), bad
        assert f"left out {bad}" in html
    assert "good" in html


def test_12j_compare_out_may_be_a_folder(tmp_path, monkeypatch):
    import argparse

    import dvc.api

    from musiclust.compare import command

    good = {"pca": {"genre": {"nmi": 0.3, "nmi_low": 0.2, "nmi_high": 0.4, "ami": 0.3}, "silhouette": 0.1}}
    monkeypatch.setattr(dvc.api, "read", lambda path, repo=".", rev=None, **k: json.dumps(good))
    monkeypatch.setattr(dvc.api, "params_show", lambda repo=".", rev=None, **k: {"beta": 1.0})
    ap = argparse.ArgumentParser()
    command.add_arguments(ap)
    out = tmp_path / "pages"
    out.mkdir()
    assert command.run(ap.parse_args(["a", "b", "--out", str(out), "--no-maps"])) == 0
    assert (out / "index.html").read_text(encoding="utf-8").startswith("<!")


# ---------------------------------------------------------------- 11: a full disk


def _three_songs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    for i in range(3):
        tone(d / f"s{i}.wav", freq=250 + 30 * i)
    return manifest(d / "m.csv", [{"track_id": f"s{i}", "source": f"s{i}.wav"} for i in range(3)])


def _download_argv(tmp_path: Path, m: Path, **download) -> list[str]:
    cfg = {"data": {"source": "manifest"}, "download": {"min_success_fraction": 0.5, **download}}
    return [
        "--out",
        str(tmp_path / "raw"),
        "--params",
        str(_params_file(tmp_path, cfg)),
        "--manifest",
        str(m),
    ]


def test_11_a_full_disk_during_a_copy_stops_the_stage(tmp_path, monkeypatch, capsys):
    import shutil

    import musiclust.data.acquire as acq

    m = _three_songs(tmp_path)
    argv = _download_argv(tmp_path, m)
    real = shutil.copyfile
    calls = []

    def full(src, dst, *a, **k):
        calls.append(src)
        if len(calls) == 2:  # the second song finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(acq.shutil, "copyfile", full)
    line = _one_error_line(capsys, download_stage.main, argv)
    assert "disk" in line and "full" in line and "free" in line
    assert not (tmp_path / "raw").exists()


def test_11_a_full_disk_on_the_final_write_is_one_line_and_keeps_the_collection(
    tmp_path, monkeypatch, capsys
):
    import musiclust.fileio as fileio

    m = _three_songs(tmp_path)
    argv = _download_argv(tmp_path, m)
    run_main(download_stage.main, argv)
    before = _files(tmp_path / "raw")
    real = pd.DataFrame.to_parquet

    def to_full_disk(self, path, *a, **k):  # what pyarrow raises on a full disk, for real
        return real(self, "/dev/full", *a, **k)

    monkeypatch.setattr(fileio.pd.DataFrame, "to_parquet", to_full_disk)
    (m.parent / "s0.wav").touch()  # a changed file: the run must write a new table
    line = _one_error_line(capsys, download_stage.main, argv)
    assert "disk" in line and "full" in line and "songs.parquet" in line
    assert _files(tmp_path / "raw") == before


def test_11_a_full_disk_in_segment_and_featurize_is_one_line(tmp_path, monkeypatch, capsys):
    """Segment and featurize write their tables through the same writer: a full disk there is the
    one `error:` line naming the disk and the file, not a pyarrow traceback."""
    import stages.featurize as feat_stage
    import stages.segment as seg_stage

    import musiclust.fileio as fileio

    run_main(download_stage.main, _download_argv(tmp_path, _three_songs(tmp_path)))
    pp = _params_file(
        tmp_path,
        {"segment": {"workers": 0, "window_s": 0.25, "hop_s": 0.25}, "features": {"workers": 0}},
        "stages.yaml",
    )
    seg_argv = ["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "segments"), "--params", str(pp)]
    feat_argv = [
        "--segments",
        str(tmp_path / "segments"),
        "--out",
        str(tmp_path / "features"),
        "--params",
        str(pp),
    ]
    real = pd.DataFrame.to_parquet

    def to_full_disk(self, path, *a, **k):  # what pyarrow raises on a full disk, for real
        return real(self, "/dev/full", *a, **k)

    with monkeypatch.context() as mp:
        mp.setattr(fileio.pd.DataFrame, "to_parquet", to_full_disk)
        line = _one_error_line(capsys, seg_stage.main, seg_argv)
    assert "disk is full" in line and "segments" in line, line
    run_main(seg_stage.main, seg_argv)  # room again: the stage runs
    with monkeypatch.context() as mp:
        mp.setattr(fileio.pd.DataFrame, "to_parquet", to_full_disk)
        line = _one_error_line(capsys, feat_stage.main, feat_argv)
    assert "disk is full" in line and "features" in line, line


# ---------------------------------------------------------------- 12: the smaller ones


def test_12a_placeholder_label_values_are_null(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    values = ["NaN", "N/A", "na", "None", "NULL", " ", "rock", "n/a "]
    rows = [{"track_id": f"s{i}", "source": "a.wav", "genre": v} for i, v in enumerate(values)]
    out = tmp_path / "raw"
    rep = run(tmp_path, out, manifest=manifest(d / "m.csv", rows))
    songs = pd.read_parquet(out / "songs.parquet")
    assert [None if pd.isna(v) else v for v in songs["genre"]] == [None] * 6 + ["rock", None]
    assert any("placeholder" in n for n in rep["label_notes"])


def test_12b_line_numbers_count_quoted_multi_line_fields(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    (d / "m.csv").write_text(
        'track_id,title,source\na,"first line\nsecond line\nthird",a.wav\nb,no source here,\n',
        encoding="utf-8",
    )
    rep = run(tmp_path, tmp_path / "raw", manifest=d / "m.csv")
    row = rep["rows"][1]
    assert row["reason"] == "no source" and "m.csv line 5" in row["detail"]


def test_12b_a_ragged_row_names_its_real_line(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text('track_id,source\na,"x\ny"\nb,c,d,e\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.csv line 4: 4 cells"):
        read_manifest(p, [])


def test_12c_nfc_and_nfd_spellings_of_one_id_are_duplicates(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    rows = [{"track_id": nfc, "source": "a.wav"}, {"track_id": nfd, "source": "a.wav"}]
    rep = run(tmp_path, tmp_path / "raw", manifest=manifest(d / "m.csv", rows))
    assert [r["reason"] for r in rep["rows"]] == [None, "duplicate id"]


def test_12d_a_repeated_path_in_labels_csv_is_reported(tmp_path):
    root = tmp_path / "music"
    tone(root / "rock" / "a.wav")
    tone(root / "rock" / "b.wav", freq=500)
    pd.DataFrame(
        [
            {"path": "rock/a.wav", "genre": "punk"},
            {"path": "rock/b.wav", "genre": "pop"},
            {"path": "./rock/a.wav", "genre": "jazz"},
        ]
    ).to_csv(root / "labels.csv", index=False)
    out = tmp_path / "raw"
    rep = run(tmp_path, out, folder=root)
    dup = [r for r in rep["rows"] if r["status"] == "skipped"]
    assert len(dup) == 1 and dup[0]["reason"] == "duplicate id"
    assert "labels.csv line 4" in dup[0]["detail"] and "line 2" in dup[0]["detail"]
    songs = pd.read_parquet(out / "songs.parquet").set_index("track_id")
    assert songs.loc["a", "genre"] == "punk"  # the first row holds; nothing silently swapped


def test_12e_an_empty_collection_never_replaces_the_previous_one(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    out = tmp_path / "raw"
    run(tmp_path, out, manifest=manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav"}]))
    before = _files(out)
    bad = manifest(d / "bad.csv", [{"track_id": "x", "source": "missing.wav"}])
    with pytest.raises(AcquisitionError, match=r"no song.*0/1.*previous collection .* is unchanged"):
        run(tmp_path, out, manifest=bad, empty_ok=False)  # min_success_fraction is 0 in run()
    assert _files(out) == before


def _sine_file(path: Path, seconds: float, rate: int = SR) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


def test_12f_assign_refuses_a_file_longer_than_the_cap_without_decoding_it(tmp_path, monkeypatch):
    import musiclust.audio.io as aio
    from musiclust.assign import segment_files

    p = parse_params({"download": {"max_duration_s": 20.0}, "segment": {"window_s": 3.0, "hop_s": 3.0}})
    long_file = _sine_file(tmp_path / "long.wav", 30.0)
    ok_file = _sine_file(tmp_path / "ok.wav", 10.0)
    read_frames = []
    real = aio.sf.read

    def counting(path, *a, **k):
        out = real(path, *a, **k)
        read_frames.append(len(out[0]))
        return out

    monkeypatch.setattr(aio.sf, "read", counting)
    seg, placed = segment_files([long_file, ok_file], p, tmp_path / "seg")
    assert placed[0].status == "skipped" and "too long" in placed[0].reason
    assert "download.max_duration_s" in placed[0].reason
    assert placed[1].status == "ok" and placed[1].n_clips == 3
    assert max(read_frames) <= 21 * SR  # never more than the cap (plus a second) decoded


def test_12g_a_one_hertz_wav_is_not_audio(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(str(d / "one.wav"), np.zeros(20, np.float32), 1)  # "20 seconds" at 1 Hz
    tone(d / "a.wav")
    m = manifest(
        d / "m.csv", [{"track_id": "one", "source": "one.wav"}, {"track_id": "a", "source": "a.wav"}]
    )
    rep = run(tmp_path, tmp_path / "raw", manifest=m)
    assert rep["rows"][0]["reason"] == "unsupported format" and "sample rate" in rep["rows"][0]["detail"]
    from musiclust.audio.io import AudioDecodeError, load_audio

    with pytest.raises(AudioDecodeError, match="sample rate"):
        load_audio(d / "one.wav", SR)


def test_12i_collection_files_are_normally_readable(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    out = tmp_path / "raw"
    old = os.umask(0o022)
    try:
        run(tmp_path, out, manifest=manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav"}]))
    finally:
        os.umask(old)
    for f in [*out.rglob("*.wav"), out / "songs.parquet", out / "report.json"]:
        assert f.stat().st_mode & 0o777 == 0o644, (f, oct(f.stat().st_mode))


# ================================================================ fourth pass: variants nobody had named


def test_4p_exotic_but_valid_audio_is_accepted_and_segments(tmp_path):
    """8-bit, 24-bit, float and 6-channel wav, 8 kHz mono mp3, an upper-case extension, wav bytes
    named .mp3, a header claiming 10 hours over 1 s of data: all real audio, all kept at their length."""
    import io
    import struct

    import stages.segment as seg_stage

    d = tmp_path / "in"
    d.mkdir()
    y = (0.3 * np.sin(2 * np.pi * 330 * np.arange(2 * SR) / SR)).astype(np.float32)
    sf.write(d / "u8.wav", y, SR, subtype="PCM_U8")
    sf.write(d / "s24.wav", y, SR, subtype="PCM_24")
    sf.write(d / "f32.wav", y, SR, subtype="FLOAT")
    sf.write(d / "hot.wav", (y * 5).astype(np.float64), SR, subtype="DOUBLE")  # samples far above 1.0
    sf.write(d / "six.wav", np.stack([y] * 6, axis=1), SR)
    y8 = (0.3 * np.sin(2 * np.pi * 330 * np.arange(2 * 8000) / 8000)).astype(np.float32)
    sf.write(d / "mono8k.mp3", y8, 8000, format="MP3")
    (d / "UPPER.WAV").write_bytes((d / "s24.wav").read_bytes())
    (d / "wavbytes.mp3").write_bytes((d / "s24.wav").read_bytes())
    buf = io.BytesIO()
    sf.write(buf, y[:SR], SR, format="WAV", subtype="PCM_16")
    liar = bytearray(buf.getvalue())
    struct.pack_into("<I", liar, liar.find(b"data") + 4, 10 * 3600 * SR * 2)
    (d / "liar.wav").write_bytes(bytes(liar))
    names = sorted(p.name for p in d.iterdir())
    m = manifest(d / "m.csv", [{"track_id": Path(n).stem, "source": n} for n in names])
    out = tmp_path / "raw"
    rep = run(tmp_path, out, manifest=m)
    assert rep["ok"] == len(names), rep["reasons"]
    songs = pd.read_parquet(out / "songs.parquet").set_index("song_id")
    assert (
        songs.loc["liar", "duration_s"] == pytest.approx(1.0) and songs.loc["mono8k", "sample_rate"] == 8000
    )
    pp = _params_file(tmp_path, {"segment": {"window_s": 1.0, "hop_s": 1.0, "workers": 0}}, "seg.yaml")
    seg_stage.main(["--raw", str(out), "--out", str(tmp_path / "seg"), "--params", str(pp)])
    seg = json.loads((tmp_path / "seg" / "report.json").read_text())
    assert seg["segmented"] == len(names) and seg["clips"] == 2 * len(names) - 1  # liar: one clip


def test_4p_a_flac_whose_header_gives_no_length_is_named_not_too_long(tmp_path):
    """A FLAC written to a pipe has no length in its header; libsndfile then reports 2**63 - 1
    frames, which read as 418 million years: it was skipped as 'too long'."""
    import subprocess as sp

    import imageio_ffmpeg

    d = tmp_path / "in"
    d.mkdir()
    with (d / "streamed.flac").open("wb") as fh:
        sp.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i"]
            + ["sine=f=440:r=22050:d=3", "-f", "flac", "pipe:1"],
            stdout=fh,
            check=True,
        )
    tone(d / "a.wav")
    m = manifest(
        d / "m.csv", [{"track_id": "s", "source": "streamed.flac"}, {"track_id": "a", "source": "a.wav"}]
    )
    row = run(tmp_path, tmp_path / "raw", manifest=m)["rows"][0]
    assert (
        row["reason"] == "unsupported format" and "no length" in row["detail"] and "ffmpeg" in row["detail"]
    )


def test_4p_windows_device_names_are_never_song_file_names():
    from musiclust.fileio import safe_id

    for name in ("CON", "nul", "COM1", "aux.txt", "LPT9", "Prn"):
        sid = safe_id(name)
        assert sid.split(".")[0].split("-")[0].upper() == name.split(".")[0].upper() and "-" in sid, sid
    assert safe_id("CONCERT") == "CONCERT" and safe_id("console") == "console"


def test_4p_an_unclosed_quote_is_an_error_naming_its_line_not_a_swallowed_file(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text('track_id,source\na,a.wav\nb,"b.wav\nc,c.wav\nd,d.wav\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.csv line 3: not a readable CSV"):
        read_manifest(p, [])


@pytest.mark.parametrize(
    "data,encoding",
    [
        ("track_id;source;genre\nx;a.wav;rock\n", "utf-8"),  # what spreadsheets in many locales save
        ("track_id\tsource\tgenre\r\nx\ta.wav\trock\r\n", "utf-16"),  # "Unicode text" export
        ("\ufefftrack_id,source,genre\r\nx,a.wav,rock\r\n", "utf-8"),
    ],
)
def test_4p_spreadsheet_exports_are_read(tmp_path, data, encoding):
    p = tmp_path / "m.csv"
    p.write_bytes(data.encode(encoding))
    (req,) = read_manifest(p, ["genre"])
    assert (req.track_id, req.source, req.labels) == ("x", "a.wav", {"genre": "rock"})


def test_4p_a_file_name_that_is_not_utf8_does_not_crash_the_run(tmp_path):
    root = tmp_path / "music"
    tone(root / "rock" / "ok.wav")
    sf.write(os.fsencode(root / "rock") + b"/caf\xe9.wav", np.zeros(SR, np.float32) + 0.1, SR)  # latin-1
    tone(root / "rock" / "new\nline.wav")
    out = tmp_path / "raw"
    rep = run(tmp_path, out, folder=root)
    assert rep["ok"] == 3, rep["rows"]
    assert any("\ufffd" in r["source"] for r in rep["rows"])  # shown with a replacement character


def test_4p_a_file_given_as_the_music_folder_is_named_as_such(tmp_path):
    from musiclust.data.folder import scan_folder

    f = tmp_path / "music.wav"
    f.write_bytes(b"x")
    with pytest.raises(ManifestError, match="is a file, not a folder"):
        scan_folder(f, "genre", ["genre"])


@pytest.mark.parametrize(
    "text,key",
    [
        ("download: {backoff_s: .nan}\n", "download.backoff_s"),
        ("train: {lr: .nan}\n", "train.lr"),
        ("segment: {silence_db: .nan}\n", "segment.silence_db"),
        ("segment: {split: {train: .nan, val: 0.5, test: 0.5}}\n", "segment.split.train"),
        ("download: {max_duration_s: .inf}\n", "download.max_duration_s"),
        ("seed: -1\n", "seed"),
        ("seeds: [0, 99999999999999999999]\n", r"seeds\[1\]"),
        ("segment: {window_s: 3.0}\nsegment: {window_s: 9.0}\n", "key 'segment' is given twice"),
        ("features: {n_mfcc: 1000}\n", "features.n_mfcc"),
        ("features: {n_mels: 100000}\n", "features.n_fft"),
        ("data:\n\tsource: demo\n", "not valid YAML"),
    ],
)
def test_4p_params_that_used_to_pass_or_crash_are_one_line(tmp_path, text, key):
    from musiclust.params import load_params

    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=key.replace(".", r"\.") if "[" not in key else key) as ei:
        load_params(p)
    assert "\n" not in str(ei.value)


def test_4p_unreadable_params_files_are_one_line(tmp_path):
    from musiclust.params import load_params

    (tmp_path / "latin1.yaml").write_bytes(b"data: {source: caf\xe9}\n")
    with pytest.raises(ParamsError, match="not UTF-8"):
        load_params(tmp_path / "latin1.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ParamsError, match="cannot be read"):
        load_params(tmp_path / "dir.yaml")


def test_4p_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Nine lines of aliases under ``models`` stood for 10**9 values: loading never finished."""
    text = "models:\n  x0: &a0 {k: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n" + "".join(
        f"  x{i}: &a{i} {{k: [{', '.join([f'*a{i - 1}'] * 10)}]}}\n" for i in range(1, 9)
    )
    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8")
    code = "import sys\nfrom musiclust.params import load_params\nfrom musiclust.log import run_main\n"
    code += "run_main(lambda a: load_params(a[0]), sys.argv[1:])\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 2 and "YAML alias" in proc.stderr and "Traceback" not in proc.stderr


def test_4p_yaml_aliases_that_pyyaml_writes_load_and_a_recursive_one_is_refused(tmp_path):
    from musiclust.params import load_params

    shared = [8, 4]  # yaml.safe_dump writes a value used twice as an anchor and an alias
    text = yaml.safe_dump({"models": {"vae": {"hidden": shared}, "ae": {"hidden": shared}}})
    assert "*id" in text
    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8")
    assert load_params(p).models["ae"]["hidden"] == (8, 4)
    p.write_text("models: &m {vae: {inner: *m}}\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="refers to a value that contains it"):
        load_params(p)


def test_4p_a_checkpoint_with_weights_of_another_dtype_is_refused(tmp_path):
    import torch

    from musiclust.models import CheckpointError, load_model, save_checkpoint

    path, ckpt = _small_checkpoint(tmp_path)
    ckpt["state_dict"] = {
        k: v.to(torch.int8) if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()
    }
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="torch.int8"):
        load_model(path)


def test_4p_a_second_run_into_the_same_output_is_refused_while_the_first_builds(tmp_path):
    d = tmp_path / "in"
    for i in range(2):
        tone(d / f"s{i}.wav", freq=300 + 90 * i)
    m = manifest(d / "m.csv", [{"track_id": f"s{i}", "source": f"s{i}.wav"} for i in range(2)])
    flags = tmp_path / "flags"
    flags.mkdir()
    cfg = {"data": {"source": "manifest"}, "download": {"concurrency": 1}}
    argv = [
        "--out",
        str(tmp_path / "raw"),
        "--params",
        str(_params_file(tmp_path, cfg)),
        "--manifest",
        str(m),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    a = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, str(flags), *argv],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t0 = time.monotonic()
        while not (flags / "a_started").exists():
            assert a.poll() is None and time.monotonic() - t0 < 120, "run A never started"
            time.sleep(0.05)
        b = subprocess.run(
            [sys.executable, "stages/download.py", *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        (flags / "b_done").touch()
        a_err = a.communicate(timeout=300)[1]
    finally:
        if a.poll() is None:
            a.kill()
    assert (
        b.returncode == 2 and "another download run is building" in b.stderr and "Traceback" not in b.stderr
    )
    assert a.returncode == 0, a_err[-3000:]
    assert json.loads((tmp_path / "raw" / "report.json").read_text())["ok"] == 2


def test_4p_a_nul_byte_in_the_manifest_is_named_with_its_line(tmp_path):
    """It used to reach the row as a path with an embedded NUL: a logged traceback, row 'error'."""
    p = tmp_path / "m.csv"
    p.write_bytes(b"track_id,source\nx,a.wav\ny,b\x00.wav\n")
    with pytest.raises(ManifestError, match=r"m\.csv line 3: contains a NUL character"):
        read_manifest(p, [])


def test_4p_labels_csv_in_nfc_finds_a_file_named_in_nfd(tmp_path):
    """macOS writes names in NFD; a labels.csv typed by hand is NFC. The row used to miss the file:
    its labels were silently not applied and it became a second, 'missing file' song."""
    root = tmp_path / "music"
    tone(root / "rock" / unicodedata.normalize("NFD", "café.wav"))
    (root / "labels.csv").write_text(
        "path,genre\n" + unicodedata.normalize("NFC", "rock/café.wav") + ",jazz\n"
    )
    out = tmp_path / "raw"
    rep = run(tmp_path, out, folder=root)
    assert rep["rows_in"] == rep["ok"] == 1
    assert pd.read_parquet(out / "songs.parquet")["genre"].tolist() == ["jazz"]
