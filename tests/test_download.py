"""The download stage on generated input: every bad row gets its reason, good rows all arrive.

The yt-dlp path is exercised for real, offline, with ``file://`` URLs to
generated audio; a closed localhost port stands in for "no network".
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import stages.download as stage
import yaml

from musiclust.data import ytdl
from musiclust.data.acquire import AcquisitionError, assign_song_ids
from musiclust.data.manifest import classify_source, read_manifest
from musiclust.fileio import safe_id

SR = 22050
SONG_COLUMNS = {
    "song_id",
    "title",
    "artist",
    "language",
    "genre",
    "audio_path",
    "duration_s",
    "sample_rate",
    "lyrics",
    "has_lyrics",
    "source",
}


def tone(path: Path, seconds: float, freq: float = 440.0, amp: float = 0.3, fmt: str | None = None) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    sf.write(str(path), (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, format=fmt)
    return path


def write_params(tmp: Path, source: str, **download) -> Path:
    dl = {"min_success_fraction": 0.0, "retries": 2, "backoff_s": 0.05, "concurrency": 2, "timeout_s": 3.0}
    dl.update(download)
    p = tmp / "params.yaml"
    p.write_text(yaml.safe_dump({"seed": 0, "data": {"source": source}, "download": dl}))
    return p


def write_manifest(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_stage(tmp: Path, manifest: Path, out: Path, **download) -> dict:
    params = write_params(tmp, "manifest", **download)
    stage.main(["--out", str(out), "--params", str(params), "--manifest", str(manifest)])
    return json.loads((out / "report.json").read_text())


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused at once
    return port


# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "source,kind",
    [
        ("https://www.youtube.com/watch?v=x", "url"),
        ("ytsearch1:Lalon Khachar Bhitor", "url"),
        ("file:///tmp/a.wav", "url"),
        ("songs/a.mp3", "local"),
        ("--exec rm -rf /", "local"),
        ("-o evil", "local"),
    ],
)
def test_sources_are_classified_and_options_are_just_text(source, kind):
    assert classify_source(source) == kind


def test_song_ids_are_sanitized_and_duplicates_found(tmp_path):
    m = write_manifest(
        tmp_path / "m.csv",
        [
            {"track_id": "../../etc/passwd", "source": "a.wav"},
            {"track_id": "Mörk låt ñ 1", "source": "b.wav"},
            {"track_id": "same", "source": "c.wav"},
            {"track_id": "SAME", "source": "d.wav"},
            {"title": "Fast Car", "artist": "Tracy Chapman", "source": "e.wav"},
            {"source": "dir/f f.wav"},
        ],
    )
    reqs = read_manifest(m, ("language", "genre"))
    dupes = assign_song_ids(reqs)
    ids = [r.song_id for r in reqs]
    assert ids[0] == safe_id("../../etc/passwd") and "/" not in ids[0] and ".." not in ids[0]
    assert ids[1].startswith("Mork_lat_n_1-") and ids[1].isascii()
    assert ids[4].startswith("Tracy_Chapman_-_Fast_Car")
    assert ids[5].startswith("f_f-")
    assert list(dupes) == [3] and "line 4" in dupes[3]  # SAME repeats `same` case-insensitively
    assert reqs[5].local_path == tmp_path / "dir" / "f f.wav"  # relative to the manifest


def test_error_classification():
    class E(Exception):
        pass

    assert ytdl.classify_error(E("Failed to resolve 'www.youtube.com'")).reason == "unreachable"
    assert ytdl.classify_error(E("[Errno 2] No such file or directory: '/x.wav'")).reason == "unavailable"
    assert ytdl.classify_error(E("ERROR: [youtube] abc: Video unavailable")).reason == "unavailable"
    assert ytdl.classify_error(E("'--help' is not a valid URL")).reason == "unsupported source"
    assert ytdl.classify_error(E("something odd")).retryable
    js = ytdl.classify_error(E("[youtube] x: Requested format is not available"))
    assert js.reason == "unavailable" and "Deno" in js.detail


# ----------------------------------------------------------------------------- bad input, end to end


@pytest.fixture
def bad_input(tmp_path):
    """A manifest with one row per kind of bad input, plus good rows, built from generated files."""
    d = tmp_path / "in"
    d.mkdir()
    tone(d / "good.wav", 3.0)
    tone(d / "short.wav", 0.5)
    sf.write(str(d / "silent.wav"), np.zeros(SR * 3, np.float32), SR)
    (d / "zero.wav").write_bytes(b"")
    mp3 = tone(d / "full.mp3", 6.0, fmt="MP3").read_bytes()
    (d / "full.mp3").unlink()
    (d / "truncated.mp3").write_bytes(mp3[: len(mp3) // 2])
    (d / "garbage.mp3").write_bytes(
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + np.random.default_rng(0).bytes(40000)
    )
    (d / "text.wav").write_text("this is a text file, renamed\n" * 40)
    (d / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 100)
    tone(d / "long.wav", 8.0)
    tone(d / "remote.wav", 2.0, freq=220)
    (d / "bad_lyrics.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    (d / "bom_lyrics.txt").write_bytes("\ufeff[Chorus]\nআমার সোনার বাংলা\n".encode())
    port = closed_port()
    rows = [
        dict(track_id="good", source="good.wav", language="en", genre="pop", lyrics_path="bom_lyrics.txt"),
        dict(
            track_id="short", source="short.wav", language="bn", genre="folk", lyrics="[Verse]\nshort words"
        ),
        dict(track_id="silent", source="silent.wav", language="en", genre="rock"),
        dict(track_id="zero", source="zero.wav"),
        dict(track_id="truncated", source="truncated.mp3"),
        dict(track_id="garbage", source="garbage.mp3"),
        dict(track_id="text", source="text.wav"),
        dict(track_id="m4a", source="song.m4a"),
        dict(track_id="missing", source="nowhere/missing.wav"),
        dict(track_id="good", source="short.wav"),  # duplicate id
        dict(track_id="../../etc/passwd", source="good.wav", genre="pop"),
        dict(track_id="Mörk låt ñ", source="good.wav", genre="rock"),
        dict(track_id="latin1", source="good.wav", lyrics_path="bad_lyrics.txt"),
        dict(track_id="nolyricsfile", source="good.wav", lyrics_path="gone.txt"),
        dict(track_id="file_missing", source=(d / "no_such.wav").as_uri()),
        dict(track_id="dashdash", source="--exec=touch pwned"),
        dict(track_id="too_long", source="long.wav"),
        dict(track_id="remote", source=(d / "remote.wav").as_uri(), genre="folk"),
        dict(track_id="offline", source=f"http://127.0.0.1:{port}/song.wav"),
        dict(track_id="blank", source=""),
    ]
    return write_manifest(d / "manifest.csv", rows)


EXPECTED = {
    "good": ("ok", None),
    "short": ("ok", None),
    "silent": ("ok", None),
    "zero": ("skipped", "empty"),
    "truncated": ("skipped", "corrupt"),
    "garbage": ("skipped", "corrupt"),
    "text": ("skipped", "unsupported format"),
    "m4a": ("skipped", "unsupported format"),
    "missing": ("skipped", "missing file"),
    "../../etc/passwd": ("ok", None),
    "Mörk låt ñ": ("ok", None),
    "latin1": ("ok", None),
    "nolyricsfile": ("ok", None),
    "file_missing": ("skipped", "missing file"),
    "dashdash": ("skipped", "missing file"),
    "too_long": ("skipped", "too long"),
    "remote": ("ok", None),
    "offline": ("skipped", "unreachable"),
    "blank": ("skipped", "no source"),
}


def test_bad_input_manifest_every_row_accounted(tmp_path, bad_input, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a "--exec=touch pwned" source must never run anything
    out = tmp_path / "raw"
    t0 = time.perf_counter()
    rep = run_stage(tmp_path, bad_input, out, max_duration_s=6.5)
    elapsed = time.perf_counter() - t0

    assert rep["rows_in"] == 20 == rep["ok"] + rep["skipped"]
    by_row = {r["row"]: r for r in rep["rows"]}
    seen = {}
    for r in rep["rows"]:
        if r["track_id"] == "good" and r["row"] == 9:
            assert (r["status"], r["reason"]) == ("skipped", "duplicate id")
            continue
        seen[r["track_id"]] = (r["status"], r["reason"])
    seen["blank"] = (by_row[19]["status"], by_row[19]["reason"])
    assert seen == EXPECTED
    assert rep["ok"] == 8 and rep["reasons"]["duplicate id"] == 1
    assert not (tmp_path / "pwned").exists()
    assert "never as an option" in by_row[15]["detail"]
    assert "truncated" in by_row[4]["detail"]
    assert elapsed < 30, f"offline/bad rows must fail fast, took {elapsed:.1f} s"

    songs = pd.read_parquet(out / "songs.parquet")
    assert SONG_COLUMNS <= set(songs.columns)
    assert songs["song_id"].is_unique and len(songs) == rep["ok"]
    # every indexed file exists inside audio/ and nothing else is there
    files = {p.name for p in (out / "audio").iterdir()}
    assert files == {Path(a).name for a in songs["audio_path"]}
    for a in songs["audio_path"]:
        assert (out / a).resolve().parent == (out / "audio").resolve()
    s = songs.set_index("track_id")
    assert s.loc["short", "duration_s"] == pytest.approx(0.5, abs=0.01)  # shorter than a segment: kept
    assert s.loc["good", "sample_rate"] == SR and s.loc["silent", "duration_s"] == pytest.approx(
        3.0, abs=0.01
    )
    assert by_row[2]["detail"].startswith("silent")
    # the yt-dlp row was converted to flac and verified
    assert s.loc["remote", "audio_path"].endswith(".flac")
    assert s.loc["remote", "duration_s"] == pytest.approx(2.0, abs=0.05)
    assert s.loc["remote", "genre"] == "folk"
    # lyrics: BOM + marker stripped, inline, undecodable reported but the song kept
    assert s.loc["good", "lyrics"] == "আমার সোনার বাংলা" and s.loc["good", "has_lyrics"]
    assert s.loc["short", "lyrics"] == "short words"
    assert pd.isna(s.loc["latin1", "lyrics"]) and not s.loc["latin1", "has_lyrics"]
    assert by_row[12]["lyrics"] == "unreadable lyrics" and "UTF-8" in by_row[12]["lyrics_detail"]
    assert by_row[13]["lyrics"] == "missing lyrics file"
    assert rep["lyrics"] == {"missing lyrics file": 1, "none": 4, "ok": 2, "unreadable lyrics": 1}


def test_too_few_songs_fails_naming_the_report(tmp_path, bad_input):
    out = tmp_path / "raw"
    with pytest.raises(AcquisitionError) as ei:
        run_stage(tmp_path, bad_input, out, min_success_fraction=0.8, max_duration_s=6.5)
    msg = str(ei.value)
    assert "report.json" in msg and "8/20" in msg and "min_success_fraction=0.8" in msg
    # the report is still written for the user to read, beside the (absent) collection
    assert json.loads((tmp_path / ".raw.new" / "report.json").read_text())["skipped"] == 12
    assert not out.exists()


def test_offline_network_rows_fail_fast(tmp_path):
    port = closed_port()
    rows = [{"track_id": f"n{i}", "source": f"http://127.0.0.1:{port}/{i}.wav"} for i in range(8)]
    m = write_manifest(tmp_path / "m.csv", rows)
    t0 = time.perf_counter()
    with pytest.raises(AcquisitionError, match="no song was acquired.*no network"):
        run_stage(tmp_path, m, tmp_path / "raw", retries=5, backoff_s=0.5)
    elapsed = time.perf_counter() - t0
    rep = json.loads((tmp_path / ".raw.new" / "report.json").read_text())  # the refused run's report
    assert rep["reasons"] == {"unreachable": 8}
    # one retry at most for unreachable hosts, then the breaker stops trying: no 5 x exponential backoff
    assert elapsed < 10, elapsed
    assert sum("not tried" in r["detail"] for r in rep["rows"]) >= 3


# ----------------------------------------------------------------------------- persistence


def _file_urls(tmp: Path, n: int) -> Path:
    d = tmp / "remote"
    d.mkdir()
    rows = [
        {"track_id": f"s{i}", "source": tone(d / f"s{i}.wav", 1.0, freq=200 + 50 * i).as_uri()}
        for i in range(n)
    ]
    return write_manifest(tmp / "urls.csv", rows)


def test_rerun_downloads_nothing_and_writes_identical_outputs(tmp_path, monkeypatch):
    m = _file_urls(tmp_path, 3)
    out = tmp_path / "raw"
    run_stage(tmp_path, m, out)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "audio").iterdir()}
    report1, songs1 = (out / "report.json").read_bytes(), (out / "songs.parquet").read_bytes()

    def no_fetch(*a, **k):
        raise AssertionError("a finished song was fetched again")

    monkeypatch.setattr(ytdl, "fetch_once", no_fetch)
    run_stage(tmp_path, m, out)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "audio").iterdir()}
    assert before == after and len(after) == 3
    # byte-identical: DVC sees no change downstream of a re-run
    assert (out / "report.json").read_bytes() == report1
    assert (out / "songs.parquet").read_bytes() == songs1


def test_interrupted_run_keeps_finished_songs_and_drops_partials(tmp_path, monkeypatch):
    m = _file_urls(tmp_path, 4)
    out = tmp_path / "raw"
    real = ytdl.fetch_once
    calls: list[str] = []

    def interrupt_on_third(source, work_dir, stem, settings):
        calls.append(stem)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while s2 downloads
        return real(source, work_dir, stem, settings)

    monkeypatch.setattr(ytdl, "fetch_once", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, m, out, concurrency=1)
    cache = tmp_path / ".musiclust" / "cache" / "downloads"  # download.cache_dir beside params.yaml
    finished = sorted(Path(json.loads(p.read_text())["key"]["source"]).stem for p in cache.glob("*.json"))
    # s3 may or may not have been picked up before the interrupt reached the pool
    assert finished in (["s0", "s1"], ["s0", "s1", "s3"])
    assert not out.exists()  # nothing half-built was swapped in
    # what a hard kill (SIGKILL, power loss) leaves behind: half files under temporary names
    (cache / ".partial-k1ll3d" / "s2").mkdir(parents=True, exist_ok=True)
    (cache / ".partial-k1ll3d" / "s2" / "s2.flac").write_bytes(b"half a file")

    calls.clear()
    monkeypatch.setattr(ytdl, "fetch_once", lambda *a: (calls.append(a[2]), real(*a))[1])
    rep = run_stage(tmp_path, m, out, concurrency=1)
    assert sorted(calls) == sorted({"s0", "s1", "s2", "s3"} - set(finished))  # only the unfinished ones
    assert rep["ok"] == 4 and not list(cache.glob(".partial-*"))
    assert sorted(p.name for p in (out / "audio").iterdir()) == [f"s{i}.flac" for i in range(4)]
    assert pd.read_parquet(out / "songs.parquet")["duration_s"].round(2).tolist() == [1.0] * 4


def test_changed_source_refetches_and_stale_songs_are_removed(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    a, b, c = tone(d / "a.wav", 1.0), tone(d / "b.wav", 2.0), tone(d / "c.wav", 1.5)
    out = tmp_path / "raw"
    m1 = write_manifest(
        tmp_path / "m1.csv", [{"track_id": "x", "source": str(a)}, {"track_id": "y", "source": str(b)}]
    )
    run_stage(tmp_path, m1, out)
    # y now points at a different file, x is gone from the manifest
    m2 = write_manifest(tmp_path / "m2.csv", [{"track_id": "y", "source": str(c)}])
    run_stage(tmp_path, m2, out)
    songs = pd.read_parquet(out / "songs.parquet")
    assert songs["song_id"].tolist() == ["y"]
    assert songs["duration_s"].iloc[0] == pytest.approx(1.5, abs=0.01)
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["y.wav"]
    # no per-song state (with its absolute source paths) inside the DVC output: it lives in the cache
    assert sorted(p.name for p in out.iterdir()) == ["audio", "report.json", "songs.parquet"]


# ----------------------------------------------------------------------------- folder source


def test_folder_layouts_labels_csv_and_ignored_files(tmp_path):
    root = tmp_path / "music"
    for lang, genre, name in [
        ("bn", "folk", "lalon.wav"),
        ("bn", "rock", "miles.wav"),
        ("en", "rock", "queen.flac"),
    ]:
        (root / lang / genre).mkdir(parents=True, exist_ok=True)
        tone(root / lang / genre / name, 1.0)
    (root / "en" / "rock" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "en" / "rock" / ".DS_Store").write_bytes(b"x")
    (root / "en" / "rock" / "podcast.m4a").write_bytes(b"\x00" * 64)
    (root / "labels.csv").write_text(
        "path,genre,mood,title\nbn/rock/miles.wav,band,sad,Phiriye Dao\nbn/folk/gone.wav,folk,,\n",
        encoding="utf-8",
    )
    params = tmp_path / "p.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "folder", "folder": str(root), "folder_layout": "language/genre"},
                "download": {"min_success_fraction": 0.5},
            }
        )
    )
    out = tmp_path / "raw"
    stage.main(["--out", str(out), "--params", str(params)])
    rep = json.loads((out / "report.json").read_text())
    assert rep["rows_in"] == 5 == rep["ok"] + rep["skipped"]
    assert rep["reasons"] == {"missing file": 1, "unsupported format": 1}
    assert rep["ignored_files"] == ["en/rock/cover.jpg"]
    s = pd.read_parquet(out / "songs.parquet").set_index("song_id")
    assert s.loc["lalon", ["language", "genre"]].tolist() == ["bn", "folk"]
    assert s.loc["miles", ["language", "genre", "mood", "title"]].tolist() == [
        "bn",
        "band",
        "sad",
        "Phiriye Dao",
    ]
    assert s.loc["queen", "genre"] == "rock" and s.loc["queen", "audio_path"] == "audio/queen.flac"


def test_switching_to_demo_leaves_no_stale_songs_and_is_deterministic(tmp_path):
    pytest.importorskip("musiclust.synth.corpus")
    out = tmp_path / "raw"
    m = _file_urls(tmp_path, 2)
    run_stage(tmp_path, m, out)
    params = tmp_path / "demo.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "seed": 3,
                "data": {
                    "source": "demo",
                    "demo": {"n_songs": 4, "min_duration_s": 3.0, "max_duration_s": 4.0},
                },
            }
        )
    )
    stage.main(["--out", str(out), "--params", str(params)])
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    rep = json.loads((out / "report.json").read_text())
    assert rep["source"] == "demo" and rep["rows_in"] == rep["ok"] == 4
    songs = pd.read_parquet(out / "songs.parquet")
    assert SONG_COLUMNS <= set(songs.columns) and len(songs) == 4
    # the two downloaded songs are gone from the folder, not just from the table
    assert {p.name for p in (out / "audio").iterdir()} == {Path(a).name for a in songs["audio_path"]}
    assert not (out / "state").exists()
    stage.main(["--out", str(out), "--params", str(params)])
    second = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert first == second  # regenerated byte for byte: DVC sees an unchanged data/raw


def test_folder_genre_layout_without_labels_and_repeated_file_names(tmp_path):
    root = tmp_path / "lib"
    for sub in ("jazz/album1", "jazz/album2", "pop"):
        (root / sub).mkdir(parents=True)
    tone(root / "jazz" / "album1" / "01 Intro.wav", 0.6)
    tone(root / "jazz" / "album2" / "01 Intro.wav", 0.7)
    tone(root / "pop" / "hit.ogg", 0.8, fmt="OGG")
    tone(root / "loose.flac", 0.9)
    params = tmp_path / "p.yaml"
    params.write_text(
        yaml.safe_dump({"data": {"source": "folder", "folder": str(root), "folder_layout": "genre"}})
    )
    out = tmp_path / "raw"
    stage.main(["--out", str(out), "--params", str(params)])
    s = pd.read_parquet(out / "songs.parquet")
    assert len(s) == 4 and s["song_id"].is_unique
    by_src = s.set_index("source")
    # the same file name in two albums: ids from the relative path, both kept
    assert by_src.loc["jazz/album1/01 Intro.wav", "song_id"].startswith("jazz_album1_01_Intro-")
    assert by_src.loc["jazz/album2/01 Intro.wav", "duration_s"] == pytest.approx(0.7, abs=0.01)
    # the top-level folder names the genre; album folders below it carry no label
    assert by_src.loc["jazz/album1/01 Intro.wav", "genre"] == "jazz"
    assert by_src.loc["pop/hit.ogg", ["song_id", "genre"]].tolist() == ["hit", "pop"]
    assert pd.isna(by_src.loc["loose.flac", "genre"])  # at the root: genre unknown, not invented


def test_network_breaker_trips_only_when_no_host_ever_answered():
    b = ytdl.NetworkBreaker(threshold=3)
    for _ in range(2):
        b.record(reached=False)
    assert not b.tripped
    b.record(reached=False)
    assert b.tripped
    b2 = ytdl.NetworkBreaker(threshold=3)
    b2.record(reached=True)  # e.g. "video unavailable": the site answered
    for _ in range(5):
        b2.record(reached=False)
    assert not b2.tripped


@pytest.mark.slow
def test_real_ctrl_c_then_rerun_fetches_only_the_rest(tmp_path):
    """A real SIGINT to the stage process, then a re-run: finished songs are not fetched again."""
    import os
    import re
    import signal
    import subprocess
    import sys

    d = tmp_path / "remote"
    d.mkdir()
    rows = [
        {"track_id": f"s{i:02d}", "source": tone(d / f"s{i:02d}.wav", 8.0, freq=150 + 30 * i).as_uri()}
        for i in range(12)
    ]
    m = write_manifest(tmp_path / "urls.csv", rows)
    params = write_params(tmp_path, "manifest", concurrency=1)
    out = tmp_path / "raw"
    cmd = [
        sys.executable,
        str(Path(stage.__file__)),
        "--out",
        str(out),
        "--params",
        str(params),
        "--manifest",
        str(m),
    ]
    env = {**os.environ, "MUSICLUST_LOG": "INFO"}

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = []
    for line in proc.stdout:
        first.append(line)
        if "downloaded in" in line:
            proc.send_signal(signal.SIGINT)  # Ctrl-C right after the first song landed
            break
    first += proc.stdout.readlines()
    assert proc.wait(timeout=120) != 0
    cache = tmp_path / ".musiclust" / "cache" / "downloads"  # finished songs, outside the output
    done = {Path(json.loads(p.read_text())["key"]["source"]).stem for p in cache.glob("*.json")}
    assert not out.exists()  # an interrupted run swaps nothing in
    assert 1 <= len(done) < 12

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    fetched = set(re.findall(r"(s\d\d): downloaded in", again.stderr))
    assert fetched == {f"s{i:02d}" for i in range(12)} - done
    assert json.loads((out / "report.json").read_text())["ok"] == 12
