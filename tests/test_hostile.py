"""Hostile and degenerate input to the download stage and params.

Each test names the defect it guards; on the code before these fixes each one fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import stages.download as stage
import yaml

from musiclust.data.acquire import AcquisitionError
from musiclust.data.report import SKIP_REASONS
from musiclust.fileio import check_input_file, resolve_roots
from musiclust.params import ParamsError, check_training_data, parse_params

SR = 22050
REPO = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def tone(path: Path, seconds: float = 0.5, freq: float = 440.0) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def run(
    tmp: Path,
    out: Path,
    manifest: Path | None = None,
    folder: Path | None = None,
    empty_ok: bool = True,
    **data,
) -> dict:
    """Run the download stage; returns its report. With ``empty_ok``, a run where every row was
    skipped (refused: an empty collection never replaces one) returns the report it left beside ``out``."""
    cfg = {
        "seed": 0,
        "data": {"source": "manifest" if manifest else "folder", **data},
        "download": {"min_success_fraction": 0.0, "retries": 0, "backoff_s": 0.0, "timeout_s": 3.0},
    }
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(cfg))
    argv = ["--out", str(out), "--params", str(params)]
    argv += ["--manifest", str(manifest)] if manifest else ["--folder", str(folder)]
    report = out / "report.json"
    try:
        stage.main(argv)
    except AcquisitionError as exc:
        if not (empty_ok and "no song was acquired" in str(exc)):
            raise
        report = out.with_name(f".{out.name}.new") / "report.json"
    rep = json.loads(report.read_text())
    assert rep["rows_in"] == rep["ok"] + rep["skipped"] == len(rep["rows"])
    assert set(rep["reasons"]) <= set(SKIP_REASONS)  # every reason is documented
    return rep


def manifest(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- defect 2: files outside the input's folder


def test_lyrics_path_outside_the_manifest_folder_is_never_read(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
    depth = "../" * len(d.parts)
    m = manifest(
        d / "m.csv",
        [
            {"track_id": "abs", "source": "a.wav", "lyrics_path": str(secret)},
            {"track_id": "dotdot", "source": "a.wav", "lyrics_path": "../secret.txt"},
            {"track_id": "passwd", "source": "a.wav", "lyrics_path": f"{depth}etc/passwd"},
        ],
    )
    out = tmp_path / "raw"
    rep = run(tmp_path, out, manifest=m)
    assert rep["ok"] == 3
    assert [r["lyrics"] for r in rep["rows"]] == ["outside allowed roots"] * 3
    songs = pd.read_parquet(out / "songs.parquet")
    assert songs["lyrics"].isna().all() and not songs["has_lyrics"].any()
    assert b"root:" not in (out / "songs.parquet").read_bytes()


def test_allowed_roots_admits_a_listed_folder(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    lyr = tmp_path / "texts" / "a.txt"
    lyr.parent.mkdir()
    lyr.write_text("hello world\n")
    m = manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav", "lyrics_path": str(lyr)}])
    rep = run(tmp_path, tmp_path / "raw", manifest=m, allowed_roots=[str(lyr.parent)])
    assert rep["rows"][0]["lyrics"] == "ok"


def test_audio_source_and_file_url_outside_the_manifest_folder_are_refused(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    outside = tone(tmp_path / "elsewhere" / "b.wav")
    (d / "link.wav").symlink_to(outside)  # a link inside the folder that points out of it
    m = manifest(
        d / "m.csv",
        [
            {"track_id": "ok", "source": "a.wav"},
            {"track_id": "abs", "source": str(outside)},
            {"track_id": "up", "source": "../elsewhere/b.wav"},
            {"track_id": "link", "source": "link.wav"},
            {"track_id": "url", "source": outside.as_uri()},
        ],
    )
    rep = run(tmp_path, tmp_path / "raw", manifest=m)
    assert [(r["status"], r["reason"]) for r in rep["rows"]] == [("ok", None)] + [
        ("skipped", "outside allowed roots")
    ] * 4


def test_labels_csv_paths_cannot_leave_the_music_folder(tmp_path):
    root = tmp_path / "music"
    tone(root / "rock" / "a.wav")
    tone(tmp_path / "x.wav")
    tone(tmp_path / "y.wav")
    (tmp_path / "secret.txt").write_text("top secret words\n")
    pd.DataFrame(
        [
            {"path": "rock/a.wav", "lyrics_path": "/etc/passwd"},
            {"path": "../x.wav", "lyrics_path": ""},
            {"path": str(tmp_path / "y.wav"), "lyrics_path": "../secret.txt"},
        ]
    ).to_csv(root / "labels.csv", index=False)
    out = tmp_path / "raw"
    rep = run(tmp_path, out, folder=root)
    rows = {r["source"]: r for r in rep["rows"]}
    assert rows["rock/a.wav"]["status"] == "ok" and rows["rock/a.wav"]["lyrics"] == "outside allowed roots"
    assert rows["../x.wav"]["reason"] == "outside allowed roots"
    assert rows[str(tmp_path / "y.wav")]["reason"] == "outside allowed roots"
    assert b"secret" not in (out / "songs.parquet").read_bytes()


# ---------------------------------------------------------------- defect 6: unbounded lyrics, devices, pipes


def test_device_and_named_pipe_lyrics_are_refused_without_reading(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    os.mkfifo(d / "pipe.txt")  # reading it would block forever
    (d / "zero.txt").symlink_to("/dev/zero")  # reading it would fill memory
    m = manifest(
        d / "m.csv",
        [
            {"track_id": "pipe", "source": "a.wav", "lyrics_path": "pipe.txt"},
            {"track_id": "zero", "source": "a.wav", "lyrics_path": "/dev/zero"},
        ],
    )
    proc = subprocess.run(  # in a subprocess: a hang fails the test instead of stalling the suite
        [
            sys.executable,
            "-c",
            "import sys, stages.download as s; s.main(sys.argv[1:])",
            "--out",
            str(tmp_path / "raw"),
            "--params",
            str(_params(tmp_path, allowed_roots=["/dev"])),
            "--manifest",
            str(m),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads((tmp_path / "raw" / "report.json").read_text())
    assert [r["lyrics"] for r in rep["rows"]] == ["not a regular file"] * 2
    assert "named pipe" in rep["rows"][0]["lyrics_detail"] and "device" in rep["rows"][1]["lyrics_detail"]


def _params(tmp: Path, **data) -> Path:
    p = tmp / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {"seed": 0, "data": {"source": "manifest", **data}, "download": {"min_success_fraction": 0.0}}
        )
    )
    return p


def test_huge_lyrics_are_truncated_with_a_warning_naming_the_song(tmp_path, capsys):
    d = tmp_path / "in"
    tone(d / "a.wav")
    # 5 MB of text whose cut falls inside a multi-byte character
    (d / "big.txt").write_text("ভালোবাসা words " * 250_000, encoding="utf-8")
    m = manifest(d / "m.csv", [{"track_id": "big", "source": "a.wav", "lyrics_path": "big.txt"}])
    out = tmp_path / "raw"
    rep = run(tmp_path, out, manifest=m, max_lyrics_bytes=1001)
    row = rep["rows"][0]
    assert row["lyrics"] == "ok" and "truncated to the first 1001 bytes" in row["lyrics_detail"]
    text = pd.read_parquet(out / "songs.parquet")["lyrics"].iloc[0]
    assert 900 < len(text.encode("utf-8")) <= 1001 and text.startswith("ভালোবাসা")
    assert any(
        "big (m.csv line 2): lyrics" in ln and "truncated" in ln
        for ln in capsys.readouterr().err.splitlines()
    )


# ---------------------------------------------------------------- defects 8, 9: folder entries, messages


def test_folder_accounts_for_broken_links_loops_and_pipes(tmp_path):
    root = tmp_path / "music"
    tone(root / "rock" / "good.wav")
    (root / "rock" / "broken.wav").symlink_to(root / "rock" / "gone.wav")
    (root / "rock" / "loop.wav").symlink_to(root / "rock" / "loop.wav")
    os.mkfifo(root / "rock" / "pipe.mp3")
    os.mkfifo(root / "rock" / "notes.fifo")  # not an audio name: listed as ignored
    (root / "linked").symlink_to(root / "rock", target_is_directory=True)  # never followed
    rep = run(tmp_path, tmp_path / "raw", folder=root)
    reasons = {r["source"]: r["reason"] for r in rep["rows"]}
    assert reasons == {
        "rock/good.wav": None,
        "rock/broken.wav": "broken link",
        "rock/loop.wav": "symlink loop",
        "rock/pipe.mp3": "not a regular file",
    }
    assert rep["ignored_files"] == ["linked", "rock/notes.fifo"]


def test_named_pipe_source_is_not_reported_as_missing(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    os.mkfifo(d / "p.wav")
    m = manifest(d / "m.csv", [{"track_id": "p", "source": "p.wav"}, {"track_id": "dir", "source": "."}])
    rep = run(tmp_path, tmp_path / "raw", manifest=m)
    assert [r["reason"] for r in rep["rows"]] == ["not a regular file"] * 2
    assert "named pipe" in rep["rows"][0]["detail"] and "folder" in rep["rows"][1]["detail"]


@pytest.mark.skipif(IS_ROOT, reason="root can read any file")
def test_unreadable_file_says_permission_denied(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav").chmod(0)
    m = manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav"}])
    rep = run(tmp_path, tmp_path / "raw", manifest=m)
    assert rep["rows"][0]["reason"] == "permission denied"


def test_check_input_file_reasons(tmp_path):
    roots = resolve_roots([tmp_path])
    f = tmp_path / "f.txt"
    f.write_text("x")
    assert check_input_file(f, roots) == f.resolve()
    for path, reason in [
        (tmp_path / "nope", "missing file"),
        (Path("/etc/hostname"), "outside allowed roots"),
        (tmp_path, "not a regular file"),
    ]:
        with pytest.raises(Exception) as ei:
            check_input_file(path, roots)
        assert ei.value.reason == reason


# ---------------------------------------------------------------- defect 5: label spelling


def test_label_case_and_spaces_are_merged_with_a_note(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    rows = [
        {"track_id": f"s{i}", "source": "a.wav", "language": lang, "genre": "Rock"}
        for i, lang in enumerate(["EN", "en", " Bn", "bn"])
    ]
    out = tmp_path / "raw"
    rep = run(tmp_path, out, manifest=manifest(d / "m.csv", rows))
    songs = pd.read_parquet(out / "songs.parquet")
    assert songs["language"].tolist() == ["en", "en", "bn", "bn"] and set(songs["genre"]) == {"rock"}
    assert any(n.startswith("language: spellings merged") and "'EN'" in n for n in rep["label_notes"])
    assert not any(n.startswith("genre") for n in rep["label_notes"])  # one spelling: nothing merged


# ---------------------------------------------------------------- defect 7: a failing run keeps the collection


def test_failing_download_leaves_the_previous_collection_untouched(tmp_path):
    d = tmp_path / "in"
    for i in range(3):
        tone(d / f"s{i}.wav", freq=300 + 40 * i)
    good = manifest(d / "m.csv", [{"track_id": f"s{i}", "source": f"s{i}.wav"} for i in range(3)])
    out = tmp_path / "raw"
    run(tmp_path, out, manifest=good)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (d / "empty.csv").write_text("track_id,source\n")  # header only
    with pytest.raises(AcquisitionError, match="no songs.*previous collection .* is unchanged"):
        run(tmp_path, out, manifest=d / "empty.csv")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and len(before) == 5


# ---------------------------------------------------------------- defects 4, 10: params refused up front


@pytest.mark.parametrize(
    "override,key",
    [
        ({"train": {"max_steps": 0}}, "train.max_steps"),
        ({"train": {"eval_every": 0}}, "train.eval_every"),
        ({"train": {"val_clips": -1}}, "train.val_clips"),
        ({"train": {"lr": -0.1}}, "train.lr"),
        ({"train": {"features": []}}, "train.features"),
        ({"seeds": []}, "seeds"),
        ({"cluster": {"algorithms": []}}, "cluster.algorithms"),
        ({"download": {"concurrency": 0}}, "download.concurrency"),
        ({"data": {"max_lyrics_bytes": 0}}, "data.max_lyrics_bytes"),
        ({"data": {"allowed_roots": [""]}}, "data.allowed_roots"),
        ({"segment": {"window_s": -1.0}}, "segment.window_s"),
        ({"features": {"sets": []}}, "features.sets"),
    ],
)
def test_bad_params_name_the_key(override, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        parse_params(override)


def test_bad_param_is_one_line_without_traceback(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"train": {"max_steps": 0}}))
    proc = subprocess.run(
        [sys.executable, "stages/download.py", "--out", str(tmp_path / "raw"), "--params", str(p)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "train.max_steps" in proc.stderr


def test_too_few_training_clips_is_a_reason_saying_what_helps():
    """Checked before training; the train stage writes the model not applicable with this reason."""
    reason = check_training_data("vade", {"n_components": 4}, n_train=3, n_val=2)
    assert "models.vade.n_components=4" in reason and "add songs" in reason
    assert "validation" in check_training_data("vae", {}, n_train=30, n_val=0)
    assert "segment.split.train" in check_training_data("vae", {}, n_train=1, n_val=3)
    assert check_training_data("vade", {"n_components": 4}, n_train=4, n_val=1) is None


def test_permission_denied_is_named_even_when_running_as_root(tmp_path, monkeypatch):
    import musiclust.fileio as fileio

    f = tmp_path / "a.wav"
    f.write_bytes(b"x")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio, "open", denied, raising=False)
    with pytest.raises(Exception) as ei:
        check_input_file(f, resolve_roots([tmp_path]))
    assert ei.value.reason == "permission denied"


# ---------------------------------------------------------------- second pass: what replacing data/raw whole could hurt


def test_an_output_folder_with_foreign_files_is_refused_not_replaced(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    m = manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav"}])
    mine = tmp_path / "Music"
    mine.mkdir()
    (mine / "precious.flac").write_bytes(b"not ours")
    with pytest.raises(AcquisitionError, match="did not write .precious.flac."):
        run(tmp_path, mine, manifest=m)
    assert (mine / "precious.flac").read_bytes() == b"not ours"


def test_cache_inside_the_output_folder_is_refused(tmp_path):
    d = tmp_path / "in"
    tone(d / "a.wav")
    m = manifest(d / "m.csv", [{"track_id": "a", "source": "a.wav"}])
    p = tmp_path / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {"data": {"source": "manifest"}, "download": {"cache_dir": str(tmp_path / "raw" / "c")}}
        )
    )
    with pytest.raises(AcquisitionError, match="cache_dir"):
        stage.main(["--out", str(tmp_path / "raw"), "--params", str(p), "--manifest", str(m)])


def test_a_huge_lyrics_limit_does_not_allocate_it(tmp_path):
    from musiclust.fileio import read_bounded

    f = tmp_path / "l.txt"
    f.write_bytes(b"words")
    assert read_bounded(f, 10**15) == (b"words", False)  # read(10**15) would raise MemoryError
    assert read_bounded(f, 3) == (b"wor", True)


def test_manifest_that_is_a_pipe_is_named_as_such(tmp_path):
    from musiclust.data.manifest import ManifestError, read_manifest

    os.mkfifo(tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(tmp_path / "m.csv", ["genre"])


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch, capsys):
    root = tmp_path / "music"
    tone(root / "rock" / "a.wav")
    tone(root / "locked" / "b.wav")
    real_scandir = os.scandir

    def scandir(path="."):  # what os.walk meets in a folder without read permission (root ignores chmod)
        if isinstance(path, (str, os.PathLike)) and Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rep = run(tmp_path, tmp_path / "raw", folder=root)
    assert rep["ok"] == 1 and rep["ignored_files"] == ["locked"]
    assert "cannot list folder locked (Permission denied)" in capsys.readouterr().err
