"""Peak memory and step time of the train stage on a synthetic collection.

Writes a synthetic featurize/embed_lyrics output set of ``--clips`` clips (log-mel shards of
float16 like the featurize stage's, 10 clips per song), then runs ``stages/train.py`` for one
model in a fresh process and reports its peak RSS (``ru_maxrss``) and the training seconds
per optimizer step from the stage's timings file (``--steps`` steps, validated every ``--steps``). Not part of the pipeline; used to check that memory
stays flat in the collection size (docs/pipeline.md, ``models/<key>/``)::

    python benchmarks/train_memory.py --clips 10000 --model conv_vae --work /tmp/bench

With ``--baseline OTHER_CHECKOUT`` it times the same run with that checkout's code too,
alternating the two ``--repeats`` times (a shared machine's load then hits both alike), and
reports the median seconds per step of each, their ratio and both validation loss curves (the
baseline must be a checkout whose params count training in steps)::

    git worktree add /tmp/before HEAD~3
    python benchmarks/train_memory.py --clips 7000 --steps 300 --work /tmp/bench --baseline /tmp/before --repeats 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

log = logging.getLogger("benchmarks.train_memory")
REPO = Path(__file__).resolve().parents[1]
SHARD = 10_000  # clips per log-mel shard


def make_collection(root: Path, n_clips: int, n_mels: int, frames: int, seed: int = 0) -> None:
    """Synthetic segments/, features/ (mfcc_stats, scalers, logmel shards) and lyrics.parquet."""
    rng = np.random.default_rng(seed)
    seg_dir, mel_dir = root / "segments", root / "features" / "logmel"
    seg_dir.mkdir(parents=True, exist_ok=True)
    mel_dir.mkdir(parents=True, exist_ok=True)
    n_songs = max(3, n_clips // 10)
    song = np.arange(n_clips) % n_songs
    split = np.array(["train", "train", "train", "train", "train", "train", "train", "val", "test", "val"])[
        song % 10
    ]
    genre = song % 4
    seg = pd.DataFrame(
        {
            "segment_id": [f"s{s:06d}__{i:07d}" for i, s in enumerate(song)],
            "song_id": [f"s{s:06d}" for s in song],
            "split": split,
            "is_silent": False,
            "language": np.where(song % 2 == 0, "en", "bn"),
            "genre": genre.astype(str),
        }
    )
    seg.to_parquet(seg_dir / "segments.parquet", index=False)
    cols = [f"mfcc_{i:02d}_mean" for i in range(20)]
    x = (rng.normal(size=(n_clips, 20)) + genre[:, None]).astype(np.float32)
    pd.concat([seg[["segment_id"]], pd.DataFrame(x, columns=cols)], axis=1).to_parquet(
        root / "features" / "mfcc_stats.parquet", index=False
    )
    scaler = {"columns": cols, "mean": x.mean(0).tolist(), "scale": x.std(0).tolist()}
    (root / "features" / "scalers.json").write_text(json.dumps({"mfcc_stats": scaler}))
    for s, start in enumerate(range(0, n_clips, SHARD)):
        n = min(SHARD, n_clips - start)
        m = rng.normal(-40, 3, size=(n, n_mels, frames)).astype(np.float16)
        band = (genre[start : start + n] * n_mels) // 4
        for g in range(4):
            m[band == (g * n_mels) // 4, (g * n_mels) // 4 : ((g + 1) * n_mels) // 4] += 20
        np.save(mel_dir / f"shard-{s:05d}.npy", m)
    pd.DataFrame(
        {
            "segment_id": seg["segment_id"],
            "shard": np.arange(n_clips) // SHARD,
            "row": np.arange(n_clips) % SHARD,
        }
    ).to_parquet(mel_dir / "index.parquet", index=False)
    pd.DataFrame(
        {"song_id": [f"s{s:06d}" for s in range(n_songs)], "has_lyrics": False, "text_source": "none",
         "encoder": "none", "emb_000": np.float32(0)}
    ).to_parquet(root / "lyrics.parquet", index=False)  # fmt: skip


def run_stage(root: Path, model: str, params: dict, repo: Path = REPO, tag: str = "") -> dict:
    """Run the train stage of the checkout ``repo`` in a fresh process; its peak RSS (MiB),
    timings, metrics and history (outputs under ``models<tag>/``)."""
    p = root / f"params-{model}.yaml"
    p.write_text(yaml.safe_dump(params))
    timings = root / "timings.json"
    cmd = [
        sys.executable, "stages/train.py", "--model", model, "--segments", str(root / "segments"),
        "--features", str(root / "features"), "--lyrics", str(root / "lyrics.parquet"),
        "--out", str(root / f"models{tag}" / model), "--timings", str(timings), "--params", str(p),
    ]  # fmt: skip
    # a wrapper process per run, so ru_maxrss of its children is this run's peak alone
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo / "src"), str(repo)]))
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    peak_mib = int(out.stdout.strip().splitlines()[-1]) / 1024
    t = json.loads(timings.read_text())
    metrics = json.loads((root / f"models{tag}" / model / "metrics.json").read_text())
    history = pd.read_csv(root / f"models{tag}" / model / "history.csv")
    res = {"peak_rss_mib": round(peak_mib, 1), "timings": t, "metrics": metrics}
    res["seconds_per_step"] = round(t["per_seed"]["0"]["seconds"] / max(1, metrics["seed_0_steps"]), 4)
    res["val_total"] = [round(v, 4) for v in history["val_total"]]
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, required=True)
    ap.add_argument("--model", default="conv_vae")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (the collection is kept)")
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps (one validation pass at the end)")
    ap.add_argument("--n-mels", type=int, default=64)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--set", action="append", default=[], help="params override a.b=value (yaml value)")
    ap.add_argument("--baseline", type=Path, help="another checkout to time against (interleaved runs)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each checkout (medians are reported)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = args.work / f"clips{args.clips}"
    if not (root / "lyrics.parquet").exists():
        make_collection(root, args.clips, args.n_mels, args.frames)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [0]
    params["train"].update(max_steps=args.steps, eval_every=args.steps, patience=1, device="cpu")
    for item in args.set:
        key, value = item.split("=", 1)
        node = params
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = yaml.safe_load(value)
    if args.baseline is not None:
        return compare(root, args.model, params, args.baseline.resolve(), args.repeats)
    res = run_stage(root, args.model, params)
    log.info(json.dumps({"clips": args.clips, "model": args.model, "peak_rss_mib": res["peak_rss_mib"],
                         "seconds_per_step": res["seconds_per_step"],
                         "best_val_loss": res["metrics"].get("best_val_loss_mean")}))  # fmt: skip
    return res


def compare(root: Path, model: str, params: dict, baseline: Path, repeats: int) -> dict:
    """Alternate runs of ``baseline``'s code and this checkout's; medians and loss curves."""
    runs: dict[str, list[dict]] = {"baseline": [], "this": []}
    for i in range(repeats):
        for name, repo in (("baseline", baseline), ("this", REPO)):
            runs[name].append(run_stage(root, model, params, repo, tag=f"-{name}"))
            log.info("%s run %d: %.4f s/step", name, i, runs[name][-1]["seconds_per_step"])
    med = {k: float(np.median([r["seconds_per_step"] for r in v])) for k, v in runs.items()}
    out = {
        "model": model,
        "median_seconds_per_step": med,
        "speedup": round(med["baseline"] / med["this"], 2),
        "val_total": {k: v[-1]["val_total"] for k, v in runs.items()},
        # every run of one checkout must give the same curve (training is deterministic)
        "deterministic": {k: all(r["val_total"] == v[0]["val_total"] for r in v) for k, v in runs.items()},
    }
    log.info(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
