"""The report stage on a tiny synthetic pipeline output that follows docs/pipeline.md.

The fixture is built so answers are known: two genres x two languages, latents that put each
genre at its own centroid (one song exactly on it), a clustering that equals the genre, int16
audio shards holding a distinct tone per song.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musiclust.audio.shards import ShardWriter, to_pcm16
from musiclust.fileio import write_json, write_parquet
from musiclust.reporting import tables as T
from musiclust.reporting.excerpts import encode_ogg, song_excerpt

SR = 8000
CLIP_S = 1.0
GENRES = ("pop", "folk")
LANGS = ("en", "bn")
N_PER = 3  # songs per genre x language
CLIPS_PER_SONG = 4
MODELS = ("vae", "autoencoder")


def _songs() -> pd.DataFrame:
    rows = []
    i = 0
    for g in GENRES:
        for lang in LANGS:
            for j in range(N_PER):
                rows.append({"song_id": f"s{i:02d}", "title": f"Song {i} {g}/{lang}", "artist": f"Artist {j}",
                             "language": lang, "genre": g, "audio_path": f"audio/s{i:02d}.wav",
                             "duration_s": CLIPS_PER_SONG * CLIP_S, "sample_rate": SR,
                             "lyrics": None if j == 2 else "la la", "has_lyrics": j != 2, "source": "demo"})
                i += 1
    return pd.DataFrame(rows)


def tone_freq(song_index: int) -> float:
    return 200.0 + 50.0 * song_index


def make_pipeline(root: Path, with_clusters: bool = True, with_metrics: bool = True) -> dict[str, Path]:
    """Write a minimal pipeline output tree under ``root``; returns the stage's path arguments."""
    rng = np.random.default_rng(0)
    songs = _songs()
    raw = root / "data" / "raw"
    write_parquet(songs, raw / "songs.parquet")
    rows = [{"row": i, "track_id": s, "song_id": s, "status": "ok", "reason": None, "detail": None}
            for i, s in enumerate(songs["song_id"])]
    rows.append({"row": len(rows), "track_id": "broken", "song_id": None, "status": "skipped",
                 "reason": "corrupt", "detail": "not audio"})
    write_json(raw / "report.json", {"source": "demo", "rows_in": len(rows), "ok": len(songs), "skipped": 1,
                                     "reasons": {"corrupt": 1}, "rows": rows})
    # segments: song-level split, int16 shards with one tone per song
    seg_dir = root / "data" / "segments"
    split_of = {s: ("train" if k % 3 == 0 or k % 3 == 1 else "test") for k, s in enumerate(songs["song_id"])}
    seg_rows = []
    t = np.arange(int(SR * CLIP_S)) / SR
    with ShardWriter(seg_dir, "audio", (len(t),), np.int16, rows_per_shard=10) as w:
        for k, song in songs.iterrows():
            for c in range(CLIPS_PER_SONG):
                start = c * CLIP_S
                y = 0.5 * np.sin(2 * np.pi * tone_freq(k) * (t + start))
                (shard, row), = w.add(to_pcm16(y)[None, :])
                seg_rows.append({"segment_id": f"{song.song_id}__{c:04d}", "song_id": song.song_id,
                                 "clip_index": c, "start_s": start, "end_s": start + CLIP_S,
                                 "split": split_of[song.song_id], "is_silent": False, "shard": shard, "row": row,
                                 "title": song.title, "artist": song.artist, "language": song.language,
                                 "genre": song.genre, "has_lyrics": song.has_lyrics})
    segs = pd.DataFrame(seg_rows)
    write_parquet(segs, seg_dir / "segments.parquet")
    lyr = pd.DataFrame({"song_id": songs["song_id"], "has_lyrics": songs["has_lyrics"], "encoder": "tfidf-char"})
    for d in range(4):
        lyr[f"emb_{d:03d}"] = rng.normal(size=len(songs)).astype(np.float32)
    write_parquet(lyr, root / "data" / "lyrics.parquet")
    # models: genre centroids at +-3 on z_00; song k==0 of each genre sits exactly on its centroid
    models = root / "models"
    curves_dir = root / "plots" / "train"
    curves_dir.mkdir(parents=True)
    runs, assigns = [], []
    for key in MODELS:
        lat_rows, song_rows = [], []
        for seed in (0, 1):
            for k, song in songs.iterrows():
                g = GENRES.index(song.genre)
                centre = np.array([3.0 if g == 0 else -3.0, 0.0, 0.0])
                offset = rng.normal(scale=0.5, size=3)
                first_of_genre = k == songs.index[songs["genre"] == song.genre][0]
                zsong = centre if first_of_genre else centre + offset + np.sign(offset) * 0.2
                song_rows.append({"song_id": song.song_id, "split": split_of[song.song_id], "seed": seed,
                                  **{f"z_{d:02d}": float(zsong[d]) for d in range(3)}})
                for c in range(CLIPS_PER_SONG):
                    lat_rows.append({"segment_id": f"{song.song_id}__{c:04d}", "song_id": song.song_id,
                                     "split": split_of[song.song_id], "seed": seed,
                                     **{f"z_{d:02d}": float(zsong[d] + rng.normal(scale=0.1)) for d in range(3)}})
            for level in ("clip", "song_mean"):
                run_id = f"{key}|kmeans|{level}|k=2|seed={seed}"
                runs.append({"run_id": run_id, "representation": key, "kind": "model", "algorithm": "kmeans",
                             "seed": seed, "level": level, "k": 2, "for_labels": "language,genre"})
                if level == "clip":
                    assigns.append(pd.DataFrame({"run_id": run_id, "unit_id": segs["segment_id"],
                                                 "song_id": segs["song_id"], "split": segs["split"],
                                                 "cluster": segs["genre"].map({"pop": 0, "folk": 1})}))
                else:
                    assigns.append(pd.DataFrame({"run_id": run_id, "unit_id": songs["song_id"],
                                                 "song_id": songs["song_id"], "split": songs["song_id"].map(split_of),
                                                 "cluster": songs["genre"].map({"pop": 0, "folk": 1})}))
        write_parquet(pd.DataFrame(lat_rows), models / key / "latents.parquet")
        write_parquet(pd.DataFrame(song_rows), models / key / "song_latents.parquet")
        write_json(models / key / "info.json", {
            "model_key": key, "conditioned_on": [], "latent_dim": 3, "seeds": [0, 1],
            "inputs": {"x_kind": "vector", "feature_sets": ["mfcc_stats"]},
            "per_seed": {str(s): {"first_val_loss": 2.3, "best_val_loss": 1.0 + s, "epochs": 5,
                                  "stopped_early": False, "seconds": 1.5} for s in (0, 1)}})
        x = rng.normal(size=(3, 12)).astype(np.float32)
        np.savez(models / key / "recon.npz", x=x, x_recon=x + 0.1,
                 segment_id=np.array(["s00__0000", "s01__0000", "s02__0000"]))
        ep = np.arange(1, 6)
        curves = pd.concat([pd.DataFrame({"epoch": ep, "seed": s, "train_recon": 2.0 / ep, "train_kl": 0.1 * ep,
                                          "train_total": 2.0 / ep + 0.1 * ep, "val_recon": 2.2 / ep,
                                          "val_kl": 0.1 * ep, "val_total": 2.2 / ep + 0.1 * ep + s * 0.01})
                            for s in (0, 1)])
        curves.to_csv(curves_dir / f"{key}.csv", index=False)
    clusters = root / "data" / "clusters"
    if with_clusters:
        _write_clusters(clusters, models, segs, songs, runs, assigns, rng)
    metrics = root / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    if with_metrics:
        _write_metrics(metrics)
    return {"raw": raw, "segments": seg_dir, "lyrics": root / "data" / "lyrics.parquet", "models": models,
            "clusters": clusters, "metrics": metrics, "train_plots": curves_dir,
            "out": root / "plots" / "report" / "index.html", "figures": root / "plots" / "figures"}


def _write_clusters(clusters: Path, models: Path, segs: pd.DataFrame, songs: pd.DataFrame, runs: list,
                    assigns: list, rng: np.random.Generator) -> None:
    """The cluster stage's layout: runs, assignments (with run keys), manifest, vectors/<rep>.parquet."""
    reps = {}
    for key in MODELS:
        lat = pd.read_parquet(models / key / "latents.parquet")
        sl = pd.read_parquet(models / key / "song_latents.parquet")
        cols = ["z_00", "z_01", "z_02"]
        vec = pd.concat([
            lat.assign(level="clip", unit_id=lat["segment_id"])[["seed", "level", "unit_id", "song_id", "split", *cols]],
            sl.assign(level="song_mean", unit_id=sl["song_id"])[["seed", "level", "unit_id", "song_id", "split", *cols]],
        ], ignore_index=True)
        write_parquet(vec, clusters / "vectors" / f"{key}.parquet")
        reps[key] = {"kind": "model", "file": f"vectors/{key}.parquet", "columns": cols, "conditioned_on": []}
    # a seed-independent baseline, clustered at random (k=2) once per seed
    split = songs["song_id"].map(segs.drop_duplicates("song_id").set_index("song_id")["split"])
    raw = pd.DataFrame({"seed": -1, "level": "song_mean", "unit_id": songs["song_id"], "song_id": songs["song_id"],
                        "split": split, "f0": rng.normal(size=len(songs)), "f1": rng.normal(size=len(songs))})
    write_parquet(raw, clusters / "vectors" / "raw.parquet")
    reps["raw"] = {"kind": "baseline", "file": "vectors/raw.parquet", "columns": ["f0", "f1"], "conditioned_on": []}
    for seed in (0, 1):
        run_id = f"raw|kmeans|song_mean|k=2|seed={seed}"
        runs.append({"run_id": run_id, "representation": "raw", "kind": "baseline", "algorithm": "kmeans",
                     "seed": seed, "level": "song_mean", "k": 2, "for_labels": "language,genre"})
        assigns.append(pd.DataFrame({"run_id": run_id, "unit_id": songs["song_id"], "song_id": songs["song_id"],
                                     "split": split, "cluster": rng.integers(0, 2, len(songs))}))
    runs_df = pd.DataFrame(runs)
    write_parquet(runs_df, clusters / "runs.parquet")
    assign = pd.concat(assigns, ignore_index=True)
    assign = assign.merge(runs_df[["run_id", "representation", "algorithm", "seed", "level", "k", "for_labels"]],
                          on="run_id")
    write_parquet(assign, clusters / "assignments.parquet")
    write_json(clusters / "manifest.json", {"representations": reps, "reduce": {"method": "none"}, "seeds": [0, 1]})


def _write_metrics(metrics: Path) -> None:
    """The evaluation's layout: all.csv (per seed), means.csv (with intervals), summary.json, evaluate.json."""
    rows = []
    for rep, kind, base in (("raw", "baseline", 0.30), ("pca", "baseline", 0.25), ("vae", "model", 0.80),
                            ("autoencoder", "model", 0.32)):
        for label in ("language", "genre"):
            for seed in (0, 1, 2):
                noise = (0.0, 0.05, 0.0)[seed] if rep == "autoencoder" else (seed - 1) * 0.01
                rows.append({"representation": rep, "kind": kind, "algorithm": "kmeans", "level": "clip",
                             "scope": "test", "label": label, "seed": seed, "k": 2, "n_units": 16,
                             "nmi": base + noise, "ari": base - 0.05 + noise, "purity": 0.5 + base / 2 + noise,
                             "silhouette": 0.2 + noise, "unsupervised": True, "leakage_flag": False,
                             "run_id": f"{rep}|kmeans|clip|k=2|seed={seed}"})
    table = pd.DataFrame(rows)
    table.to_csv(metrics / "all.csv", index=False)
    means = []
    keys = ["representation", "kind", "algorithm", "label", "level", "scope"]
    for key, g in table.groupby(keys):
        row = dict(zip(keys, key))
        row["n_seeds"] = 3
        for m in ("nmi", "ari", "purity", "silhouette"):
            mean, lo, hi = T.t_interval(g[m])
            row[m], row[f"{m}_low"], row[f"{m}_high"], row[f"{m}_ci"] = mean, lo, hi, hi - mean
        means.append(row)
    pd.DataFrame(means).to_csv(metrics / "means.csv", index=False)
    comps = [{"representation": rep, "algorithm": "kmeans", "label": lab, "level": "clip", "scope": "test",
              "metric": "nmi", "baseline": "raw/kmeans", "p_value": p, "significant": p < 0.05, "verdict": v}
             for rep, p, v in (("vae", 0.001, "better"), ("autoencoder", 0.6, "not significant"))
             for lab in ("language", "genre")]
    write_json(metrics / "summary.json", {
        "protocol": {"interval": "95% Student-t interval over seeds", "leakage": "single-column decision trees"},
        "best_unsupervised_headline": {"genre": {"method": "vae/kmeans", "nmi": 0.8, "nmi_low": 0.775,
                                                 "nmi_high": 0.825}},
        "comparisons": comps,
        "leakage": {"threshold": 0.95, "flagged": [], "flagged_columns": [], "n_flagged_columns": 0,
                    "max_by_representation": [{"representation": "raw", "label": "genre", "column": "f0",
                                               "balanced_accuracy": 0.61}]},
        "not_unsupervised": [],
    })
    write_json(metrics / "evaluate.json", {"vae": {"kmeans": {"genre": {"nmi": 0.8}}}})


def run_stage(root: Path, paths: dict[str, Path], repo_root: Path) -> str:
    import stages.report
    import yaml

    params = root / "params.yaml"
    p = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    p["report"]["projections"] = ["pca", "tsne"]  # UMAP's numba warm-up alone takes ~40 s
    params.write_text(yaml.safe_dump(p, sort_keys=False), encoding="utf-8")
    argv = []
    for k in ("raw", "segments", "lyrics", "models", "clusters", "metrics", "train_plots", "out", "figures"):
        argv += [f"--{k.replace('_', '-')}", str(paths[k])]
    stages.report.main([*argv, "--params", str(params)])
    return paths["out"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    """The report built once for the module's tests (about 10 s)."""
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("report")
    paths = make_pipeline(root)
    return run_stage(root, paths, REPO), paths


def test_report_is_self_contained(built: tuple[str, dict[str, Path]]) -> None:
    text, paths = built
    # no network references of any kind, only inline data
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) >= 6  # dataset, heatmap, 2 maps, 2 compositions, 2 recon, curves
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    pngs = sorted(p.name for p in paths["figures"].glob("*.png"))
    assert len(pngs) == len(srcs)
    assert {"latent_vae.png", "latent_autoencoder.png", "latent_raw.png", "metric_heatmap.png",
            "training_curves.png"} <= set(pngs)


def test_report_audio_excerpts_decode(built: tuple[str, dict[str, Path]]) -> None:
    text, _ = built
    sources = re.findall(r'<source src="data:audio/ogg;base64,([^"]+)"', text)
    # best model (vae) has 2 clusters x 3 central songs
    assert len(sources) == 6
    y, sr = sf.read(io.BytesIO(base64.b64decode(sources[0])))
    assert sr == SR and abs(len(y) / sr - CLIP_S * 4) < 0.05  # excerpt_s = 4 s from 4 contiguous 1-s clips


def test_report_contents(built: tuple[str, dict[str, Path]]) -> None:
    text, paths = built
    # dataset summary with download counts and skip reasons
    assert "corrupt" in text and "12" in text
    assert "8/12" in text  # lyrics coverage: 2 of 3 songs per genre x language have lyrics
    # metrics: the vae beats the best baseline (raw) significantly, autoencoder does not
    row_vae = re.search(r"<tr[^>]*><td>vae</td>(.*?)</tr>", text).group(1)
    assert "&#9650;" in row_vae and "0.800 [" in row_vae
    row_ae = re.search(r"<tr[^>]*><td>autoencoder</td>(.*?)</tr>", text).group(1)
    assert "&#9650;" not in row_ae
    assert 'class="best"' in text and "Best model: <b>vae</b>" in text
    # the first song listed in cluster 0 (= pop) is the one nearest the cluster's latent centroid
    sl = pd.read_parquet(paths["models"] / "vae" / "song_latents.parquet")
    sl = sl[(sl["seed"] == 0) & sl["song_id"].isin(_songs().query("genre == 'pop'")["song_id"])]
    z = sl[["z_00", "z_01", "z_02"]].to_numpy()
    nearest = sl["song_id"].iloc[int(np.argmin(np.linalg.norm(z - z.mean(axis=0), axis=1)))]
    expected = _songs().set_index("song_id").loc[nearest, "title"]
    pop = text.index("Cluster 0")
    first_title = re.search(r'<div class="t">([^<]+)</div>', text[pop:]).group(1)
    assert first_title == expected
    assert "2 significantly better, 0 worse, 2 not significantly different, of 4" in text
    assert "<b>genre</b>: best NMI vae 0.800 [0.775, 0.825]; best baseline raw" in text
    assert "Leakage audit" in text and "No single input column predicts a label" in text
    assert "Most predictive single column" in text and "0.61" in text
    assert "vae/kmeans, NMI 0.800 [0.775, 0.825]" in text
    assert "dvc.lock" in text and "params.yaml" in text
    assert "projected to two dimensions with PCA, t-SNE (" in text
    # models table from info.json: mean best val loss over seeds 0 and 1 is 1.5
    row = re.search(r"<tr><td>vae</td><td>mfcc_stats</td>(.*?)</tr>", text).group(1)
    assert ">1.5<" in row and ">2.3<" in row


def test_report_survives_missing_inputs(tmp_path: Path, repo_root: Path) -> None:
    paths = make_pipeline(tmp_path, with_clusters=False, with_metrics=False)
    text = run_stage(tmp_path, paths, repo_root)
    assert "Some inputs were missing" in text
    assert str(paths["clusters"]) in text and "all.csv" in text
    assert "latent_vae" in text or (paths["figures"] / "latent_vae.png").exists()


def test_song_excerpt_is_contiguous_audio(tmp_path: Path) -> None:
    paths = make_pipeline(tmp_path, with_clusters=False, with_metrics=False)
    segs = pd.read_parquet(paths["segments"] / "segments.parquet")
    y, sr, start = song_excerpt(segs, paths["segments"], "s03", 2.5)
    assert sr == SR and len(y) == int(2.5 * SR)
    assert start == 1.0  # 4 clips: starts at the clip before the middle
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * sr / len(y) - tone_freq(3)) < 2.0
    ogg = encode_ogg(y, sr)
    assert ogg[:4] == b"OggS" and len(ogg) < 40_000


def test_t_interval_known_answer() -> None:
    m, lo, hi = T.t_interval([1.0, 2.0, 3.0], 0.95)
    # mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732
    assert m == pytest.approx(2.0) and hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert np.isnan(T.t_interval([0.5])[1])


def test_tidy_and_marks() -> None:
    wide = pd.DataFrame({"representation": ["raw"] * 3 + ["vae"] * 3 + ["cvae"] * 3, "algorithm": "kmeans",
                         "label": "genre", "seed": [0, 1, 2] * 3,
                         "nmi": [0.3, 0.31, 0.29, 0.6, 0.62, 0.61, 0.3, 0.32, 0.28]})
    tidy = T.tidy_metrics(wide)
    assert set(tidy["metric"]) == {"nmi"} and len(tidy) == 9 and set(tidy["level"]) == {"all"}
    marks = T.paired_marks(tidy).set_index("representation")
    assert marks.loc["vae", "better"] is True and marks.loc["vae", "baseline"] == "raw"
    assert marks.loc["cvae", "better"] is None


# ----------------------------------------------------------------------------- headless Chromium

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--mute-audio", "--hide-scrollbars")


class Browser:
    """Minimal DevTools-protocol client over ``--remote-debugging-pipe`` (no extra packages).

    Chromium reads NUL-terminated JSON commands on fd 3 and writes replies/events on fd 4.
    """

    def __init__(self, user_data_dir: Path, width: int = 1280, height: int = 900) -> None:
        import os
        import subprocess

        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def _fds() -> None:  # in the child: the protocol's fixed descriptors
            # dup first: dup2(fd, fd) would keep the close-on-exec flag when a pipe already is fd 3
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}",
             f"--window-size={width},{height}", "about:blank"],
            preexec_fn=_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        import json
        import os

        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._next(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._next(timeout)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def _next(self, timeout: float) -> dict:
        import json
        import os
        import select
        import time

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"no DevTools message within {timeout:.0f} s")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open_page(self) -> None:
        import time

        deadline = time.monotonic() + 30
        while True:
            pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        target = pages[0]["targetId"] if pages else self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def problems(self) -> list[str]:
        """Console errors/warnings, uncaught exceptions and log errors seen so far."""
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        return out

    def close(self) -> None:
        import os

        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # already gone, or closing: either way we stop it below
            pass
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


_CHECK_JS = """
(async () => {
  const imgs = Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}));
  const audios = await Promise.all(Array.from(document.querySelectorAll('audio')).map(a => new Promise(res => {
    a.preload = 'metadata';
    a.addEventListener('loadedmetadata', () => res({ok: a.duration > 0, d: a.duration}), {once: true});
    a.addEventListener('error', () => res({ok: false, err: a.error && a.error.code}), {once: true});
    a.querySelector('source') && a.querySelector('source').addEventListener('error',
        () => res({ok: false, err: 'source'}), {once: true});
    a.load();
  })));
  const ext = Array.from(document.querySelectorAll('[src],[href]'))
      .map(e => e.getAttribute('src') || e.getAttribute('href'))
      .filter(u => !u.startsWith('data:') && !u.startsWith('#'));
  return JSON.stringify({imgs, audios, ext, title: document.title,
                         height: document.documentElement.scrollHeight});
})()
"""


def render_in_chromium(html_path: Path, user_data_dir: Path, screenshot: Path | None = None) -> dict:
    """Load ``html_path`` headless; return image/audio decode results, external refs and problems."""
    import json

    b = Browser(user_data_dir)
    try:
        b.open_page()
        b.send("Page.navigate", {"url": html_path.resolve().as_uri()})
        b.wait_event("Page.loadEventFired", timeout=60)
        res = b.send("Runtime.evaluate", {"expression": _CHECK_JS, "awaitPromise": True, "returnByValue": True},
                     timeout=60)
        if "exceptionDetails" in res:
            raise RuntimeError(f"check script failed: {res['exceptionDetails']}")
        out = json.loads(res["result"]["value"])
        if screenshot is not None:
            shot = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                     "clip": {"x": 0, "y": 0, "width": 1280,
                                                              "height": min(out["height"], 16000), "scale": 1}})
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        out["problems"] = b.problems()
        return out
    finally:
        b.close()


def test_report_renders_in_headless_chromium(built: tuple[str, dict[str, Path]], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install the Debian 'chromium' package to run the browser check")
    _, paths = built
    shot = tmp_path / "report.png"
    res = render_in_chromium(paths["out"], tmp_path / "profile", shot)
    assert res["title"] == "musiclust report"
    assert res["problems"] == [], res["problems"]
    assert res["ext"] == []
    assert len(res["imgs"]) >= 6 and all(i["ok"] for i in res["imgs"]), res["imgs"]
    assert len(res["audios"]) == 6 and all(a["ok"] for a in res["audios"]), res["audios"]
    assert all(abs(a["d"] - 4.0) < 0.1 for a in res["audios"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_provenance_lock_hashes_and_absences(tmp_path: Path) -> None:
    from musiclust.reporting.provenance import collect, lock_hashes

    lock = {"schema": "2.0", "stages": {"segment": {
        "deps": [{"path": "data/raw", "md5": "aaa.dir"}], "outs": [{"path": "data/segments", "md5": "bbb.dir"}]}}}
    assert lock_hashes(lock) == [{"stage": "segment", "kind": "dep", "path": "data/raw", "md5": "aaa.dir"},
                                 {"stage": "segment", "kind": "out", "path": "data/segments", "md5": "bbb.dir"}]
    prov = collect(tmp_path, tmp_path / "params.yaml")  # not a git checkout, no params, no lock
    assert prov.commit is None and prov.params_text is None and prov.lock_rows == []
    assert len(prov.notes) == 3 and any("dvc.lock" in n for n in prov.notes)


def test_view_falls_back_when_test_songs_have_no_label_scores(tmp_path: Path) -> None:
    """A tiny corpus (one test song) has no label scores on test: tables use all songs and say so."""
    from musiclust.reporting.build import ReportConfig, _Ctx, _prepare_metrics
    from musiclust.reporting.inputs import ReportInputs

    rows = [{"representation": r, "kind": k, "algorithm": "kmeans", "label": "genre", "level": "clip",
             "scope": scope, "n_seeds": 3, "nmi": v if scope == "all" else np.nan,
             "nmi_low": v - 0.1 if scope == "all" else np.nan, "nmi_high": v + 0.1 if scope == "all" else np.nan}
            for r, k, v in (("raw", "baseline", 0.2), ("vae", "model", 0.3)) for scope in ("test", "all")]
    inp = ReportInputs(metrics_means=pd.DataFrame(rows))
    ctx = _Ctx(inp, ReportConfig(), tmp_path)
    _prepare_metrics(ctx)
    assert ctx.view.subset == "all" and "no label scores exist on test songs" in ctx.view_note.lower()
    assert ctx.baselines >= {"raw"}
