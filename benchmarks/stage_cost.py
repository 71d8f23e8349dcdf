"""What one stage costs per representation at a given collection size, for one or more checkouts.

Builds, under ``--work``, a collection of ``--songs`` songs from a prepared workspace (``--root``,
holding ``data/segments``, ``data/features`` and ``data/lyrics.parquet`` from the pipeline's first
stages) by repeating its songs under new ids (``<song>~<copy>``, each copy in its original's
split; tensor feature sets get an index of the new ids pointing at the same shard rows, the
shards linked, not copied).

``--stage cluster`` times ``stages/cluster.py`` for every representation (models and
baselines). Every model key of ``train.models`` gets stand-in latents of its shape: its
``latent_dim``, its level (a song-level model writes one vector per song to each of the song's
clips) and, for VaDE, its own cluster column; stand-ins are a seeded random projection of the
standardized clip features (song means for a song-level model), so their cost is that of real
latents of the same shape, and their scores mean nothing.

``--stage train`` runs each checkout's ``stages/configure.py`` and then times
``stages/train.py`` for every model key (or ``--reps``), as ``dvc.yaml`` runs them.

Checkouts run in turn, interleaved representation by representation so that a busy machine's
load falls on every checkout alike, each with its own code and ``params.yaml``. One CSV row per
representation and checkout: wall seconds, CPU seconds (user + system of the stage and its
child processes: the less load-dependent number), peak memory (of the largest process) and, for
``cluster``, the number of clustering runs::

    python benchmarks/stage_cost.py --stage cluster --root /tmp/ws --songs 1000 --work /tmp/cc \
        --checkout /tmp/before --checkout . --out runs/cluster_cost.csv

Not part of the pipeline; docs/scaling.md has its numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from musiclust.contracts.features import load_vectors  # noqa: E402
from musiclust.log import setup_logging  # noqa: E402
from musiclust.models.registry import model_spec  # noqa: E402

log = logging.getLogger("benchmarks.stage_cost")

#: the vector feature tables a baseline or vector model may read
VECTOR_TABLES = ("mfcc_stats", "spectral", "rhythm")
#: the tensor feature sets (index.parquet + shard-*.npy) the sequence and convolutional models read
TENSOR_SETS = ("logmel", "mfcc_seq")


def _copies(song_ids: pd.Index, n_songs: int) -> pd.DataFrame:
    """``(song_id, copy, new_id)`` for ``n_songs`` songs cycling through ``song_ids``."""
    rows = [(song_ids[i % len(song_ids)], i // len(song_ids)) for i in range(n_songs)]
    out = pd.DataFrame(rows, columns=["song_id", "copy"])
    out["new_id"] = out["song_id"] + "~" + out["copy"].astype(str)
    return out


def build_collection(root: Path, work: Path, n_songs: int) -> Path:
    """``work/data``: segments, vector features, scalers and lyrics of ``n_songs`` songs."""
    data = work / "data"
    if (data / "lyrics.parquet").exists():
        return data
    seg = pd.read_parquet(root / "data/segments/segments.parquet")
    songs = pd.Index(pd.unique(seg["song_id"].astype(str)))
    copies = _copies(songs, n_songs)
    big = seg.merge(copies, on="song_id")
    big["segment_id"] = big["segment_id"].astype(str) + "~" + big["copy"].astype(str)
    big["song_id"] = big["new_id"]
    big = big.drop(columns=["copy", "new_id"]).reset_index(drop=True)
    (data / "segments").mkdir(parents=True, exist_ok=True)
    big.to_parquet(data / "segments/segments.parquet", index=False)
    seg_of = seg[["segment_id", "song_id"]].astype(str)
    (data / "features").mkdir(parents=True, exist_ok=True)
    for name in VECTOR_TABLES:
        path = root / f"data/features/{name}.parquet"
        if not path.exists():
            continue
        f = pd.read_parquet(path).merge(seg_of, on="segment_id").merge(copies, on="song_id")
        f["segment_id"] = f["segment_id"].astype(str) + "~" + f["copy"].astype(str)
        f.drop(columns=["song_id", "copy", "new_id"]).to_parquet(
            data / f"features/{name}.parquet", index=False
        )
    for name in TENSOR_SETS:
        src = root / "data/features" / name
        if not (src / "index.parquet").exists():
            continue
        (data / "features" / name).mkdir(parents=True, exist_ok=True)
        for shard in src.glob("shard-*.npy"):
            (data / "features" / name / shard.name).symlink_to(shard.resolve())
        idx = (
            pd.read_parquet(src / "index.parquet").merge(seg_of, on="segment_id").merge(copies, on="song_id")
        )
        idx["segment_id"] = idx["segment_id"].astype(str) + "~" + idx["copy"].astype(str)
        idx.drop(columns=["song_id", "copy", "new_id"]).to_parquet(
            data / f"features/{name}/index.parquet", index=False
        )
    shutil.copy(root / "data/features/scalers.json", data / "features/scalers.json")
    lyr = pd.read_parquet(root / "data/lyrics.parquet").merge(copies, on="song_id")
    lyr["song_id"] = lyr["new_id"]
    lyr.drop(columns=["copy", "new_id"]).to_parquet(data / "lyrics.parquet", index=False)
    log.info("%d songs, %d clips -> %s", n_songs, len(big), data)
    return data


def write_stand_in_models(data: Path, params: dict) -> None:
    """``models/<key>/`` with stand-in latents for every key of ``train.models``."""
    seg = pd.read_parquet(data / "segments/segments.parquet")
    ids, x, _ = load_vectors(data / "features", ["mfcc_stats"], standardize=True)
    x = pd.DataFrame(np.asarray(x), index=ids.astype(str)).reindex(seg["segment_id"].astype(str)).to_numpy()
    keys = list(params["train"]["models"])
    for key in keys:
        spec = model_spec(key)
        dim = int(params["models"][key]["latent_dim"])
        frames = []
        for seed in params["seeds"]:
            rng = np.random.default_rng(seed)
            z = x @ rng.normal(size=(x.shape[1], dim)) / np.sqrt(x.shape[1])
            if spec.cls.level == "song":  # one vector per song, on each of its clips
                z = pd.DataFrame(z).groupby(seg["song_id"].to_numpy()).transform("mean").to_numpy()
            df = seg[["segment_id", "song_id", "split"]].copy()
            df["seed"] = int(seed)
            for i in range(dim):
                df[f"z_{i:02d}"] = z[:, i].astype(np.float32)
            if key == "vade":
                df["cluster"] = np.argmax(z[:, : int(params["models"][key]["n_components"])], axis=1)
            frames.append(df)
        out = data.parent / "models" / key
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(frames, ignore_index=True).to_parquet(out / "latents.parquet", index=False)
        condition = {"cvae_language": ["language"], "cvae_genre": ["genre"]}.get(key, [])
        text = "text" in spec.cls.needs
        info = {
            "model_key": key,
            "applicable": True,
            "reason": None,
            "level": spec.cls.level,
            "conditioned_on": condition,
            "inputs": {"x_kind": spec.cls.x_kind, **({"text": {"table": "lyrics.parquet"}} if text else {})},
        }
        (out / "info.json").write_text(json.dumps(info))
        (out / "metrics.json").write_text(json.dumps({"applicable": True, "best_val_loss_mean": 0.0}))


def configure(work: Path, checkout: Path) -> Path:
    """``stages/configure.py`` of ``checkout`` with its own params: its models' settings folder."""
    out = work / "configs" / checkout.name
    cmd = ["stages/configure.py", "--lyrics", str(work / "data/lyrics.parquet"), "--out", str(out)]
    time_stage([*cmd, "--params", str(checkout / "params.yaml")], checkout)
    return out


def train_command(key: str, work: Path, configs: Path, out: Path) -> list[str]:
    """The train stage's command line for ``key`` (as dvc.yaml builds it; its settings are in ``configs``)."""
    d = work / "data"
    return [
        "stages/train.py", "--model", key, "--config", str(configs / key), "--segments", str(d / "segments"),
        "--features", str(d / "features"), "--out", str(out), "--timings", str(out.parent / f"{key}.json"),
    ]  # fmt: skip


def cluster_command(rep: str, work: Path, baselines: list[str], params: Path, out: Path) -> list[str]:
    """The cluster stage's command line for ``rep`` (as dvc.yaml builds it)."""
    d = work / "data"
    args = ["stages/cluster.py", "--rep", rep, "--segments", str(d / "segments"), "--out", str(out)]
    args += ["--params", str(params)]
    if rep in baselines:
        return [*args, "--features", str(d / "features"), "--lyrics", str(d / "lyrics.parquet")]
    return [*args, "--model", str(work / "models" / rep)]


#: runs a command and prints its CPU seconds and peak RSS (a fresh process: its children are that one)
_WRAPPER = (
    "import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(json.dumps({'rc': r, 'cpu': u.ru_utime + u.ru_stime, 'rss_kib': u.ru_maxrss}))"
)


def time_stage(cmd: list[str], checkout: Path) -> dict[str, float]:
    """Run ``cmd`` in ``checkout`` (its own code); wall and CPU seconds and peak RSS of that run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(checkout / "src"), str(checkout)]))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, sys.executable, *cmd],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    res = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"rc": proc.returncode}
    if proc.returncode != 0 or res["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {checkout} failed:\n{proc.stderr[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(res["cpu"], 2),
        "peak_rss_mib": round(res["rss_kib"] / 1024, 1),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("cluster", "train"), default="cluster")
    ap.add_argument("--root", type=Path, required=True, help="prepared workspace (data/segments, ...)")
    ap.add_argument("--songs", type=int, required=True, help="songs in the built collection")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (the collection is kept)")
    ap.add_argument("--checkout", type=Path, action="append", required=True, help="code to time (repeatable)")
    ap.add_argument("--reps", nargs="*", default=None, help="default: every model (and baseline)")
    ap.add_argument("--out", type=Path, required=True, help="CSV to write")
    args = ap.parse_args(argv)
    setup_logging()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    build_collection(args.root, args.work, args.songs)
    checkouts = [c.resolve() for c in args.checkout]
    keys = list(params["train"]["models"])
    baselines = list(params["cluster"]["baselines"])
    if args.stage == "cluster":
        write_stand_in_models(args.work / "data", params)
        reps = args.reps or [*keys, *baselines]
    else:
        configs = {c: configure(args.work, c) for c in checkouts}
        reps = args.reps or keys
    rows = []
    for rep in reps:
        for checkout in checkouts:
            out = args.work / args.stage / checkout.name / rep
            params_path = checkout / "params.yaml"
            if args.stage == "cluster":
                cmd = cluster_command(rep, args.work, baselines, params_path, out)
            else:
                cmd = train_command(rep, args.work, configs[checkout], out)
            row = {"stage": args.stage, "representation": rep, "songs": args.songs, "checkout": str(checkout)}
            row.update(time_stage(cmd, checkout))
            row["runs"] = (
                len(pd.read_parquet(out / "runs.parquet")) if (out / "runs.parquet").exists() else None
            )
            row["load_1min"] = round(os.getloadavg()[0], 1)
            rows.append(row)
            log.info("%s", row)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
