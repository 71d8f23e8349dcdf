"""Wall time and peak memory of every stage of the default `dvc repro`, at several collection sizes.

For each N of ``--songs`` it builds a fresh workspace under ``--work`` (the committed files of this
checkout, a git repository of their own, the checkout's ``.venv``), writes a manifest of N songs
taken in turn from ``--collection`` (a folder with a pipeline manifest, e.g. songs_en_de_400; songs
repeat under new ids ``<track_id>-<copy>`` once the folder's are used up), points ``data.source:
manifest`` at it, and runs ``dvc repro`` with every other setting at its params.yaml default.
Every stage command DVC starts (``python stages/...``) runs through a ``python`` shim first on
PATH that records, with GNU time, its wall seconds, CPU seconds and peak resident memory (of the
largest process of the stage: seed processes and workers count as their own maximum, not a sum).
One CSV row per N and stage, plus a ``total`` row for the whole ``dvc repro`` (DVC's own work
included)::

    python benchmarks/scaling.py --collection <folder>/songs_en_de_400 \\
        --songs 250 500 1000 2000 --work /tmp/scaling --out runs/scaling.csv

``--set key=value`` overrides a params.yaml value in every workspace (YAML value, e.g.
``--set 'train.models=[vae]'``). Stages whose commands fail are recorded with their exit code; the
run goes on to the next N. Not part of the pipeline; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.scaling")

#: the shim DVC finds as `python`: times the real interpreter, appending one line per command
SHIM = """#!/bin/bash
printf '%s\\t' "$*" >> "$MUSICLUST_SCALING_LOG"
exec /usr/bin/time -q -a -o "$MUSICLUST_SCALING_LOG" -f '%e\\t%U\\t%S\\t%M\\t%x' "$MUSICLUST_SCALING_PYTHON" "$@"
"""
COLUMNS = ["songs", "stage", "wall_s", "cpu_s", "peak_rss_mib", "exit", "command"]


def write_manifest(collection: Path, n_songs: int, out: Path) -> Path:
    """A manifest of ``n_songs`` rows cycling through ``collection/manifest.csv`` with distinct ids
    and absolute sources (the workspace's params allow the collection's folder)."""
    src = pd.read_csv(collection / "manifest.csv", dtype=str, keep_default_na=False)
    rows = []
    for i in range(n_songs):
        row = src.iloc[i % len(src)].to_dict()
        copy = i // len(src)
        row["track_id"] = f"{row['track_id']}-{copy}" if copy else row["track_id"]
        row["source"] = str((collection / row["source"]).resolve())
        rows.append(row)
    pd.DataFrame(rows, columns=src.columns).to_csv(out, index=False)
    return out


def make_workspace(ws: Path, collection: Path, n_songs: int, overrides: list[str]) -> None:
    """``ws``: this checkout's committed files (HEAD), its own git repository, params for N songs."""
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(ws, filter="data")
    manifest = write_manifest(collection, n_songs, ws / "scaling_manifest.csv")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["data"].update(
        source="manifest", manifest=manifest.name, allowed_roots=[str(collection.resolve())]
    )
    for item in overrides:
        key, value = item.split("=", 1)
        node = params
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = yaml.safe_load(value)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "scaling workspace"]):
        subprocess.run(cmd, cwd=ws, check=True, capture_output=True)


def stage_name(command: str) -> str:
    """The DVC stage a ``python stages/<x>.py ...`` command line belongs to (``train@vae``, ...)."""
    m = re.search(r"stages/(\w+)\.py", command)
    if not m:
        return command.split()[0] if command else "?"
    script = m.group(1)
    item = re.search(r"--(?:model|rep) (\S+)", command)
    if script == "cluster" and item:
        return f"{'cluster' if '--model' in command else 'baseline'}@{item.group(1)}"
    return f"{script}@{item.group(1)}" if item and script == "train" else script


def read_log(path: Path, n_songs: int) -> list[dict]:
    """The shim's lines (``command<TAB>wall<TAB>user<TAB>sys<TAB>maxrss_kib<TAB>exit``) as rows."""
    rows = []
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 6:
            continue  # a command still running when the log was read, or a note of time's
        command, wall, user, system, rss, code = parts[:6]
        rows.append(
            {
                "songs": n_songs,
                "stage": stage_name(command),
                "wall_s": float(wall),
                "cpu_s": round(float(user) + float(system), 2),
                "peak_rss_mib": round(int(rss) / 1024, 1),
                "exit": int(code),
                "command": command,
            }
        )
    return rows


def run_size(n_songs: int, args: argparse.Namespace) -> list[dict]:
    """One workspace of ``n_songs`` songs, its ``dvc repro`` timed stage by stage."""
    ws = args.work / f"songs_{n_songs}"
    make_workspace(ws, args.collection, n_songs, args.set)
    shim_dir = ws / ".scaling_bin"
    shim_dir.mkdir()
    shim = shim_dir / "python"
    shim.write_text(SHIM)
    shim.chmod(0o755)
    venv_bin = (args.venv / "bin").resolve()
    timing_log = ws / "scaling_times.tsv"
    env = dict(
        os.environ,
        PATH=os.pathsep.join([str(shim_dir), str(venv_bin), os.environ.get("PATH", "")]),
        PYTHONPATH=str(ws / "src"),  # the workspace's code, whatever the venv's editable install points at
        MUSICLUST_SCALING_LOG=str(timing_log),
        MUSICLUST_SCALING_PYTHON=str(venv_bin / "python"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MUSICLUST_OFFLINE="1",
    )
    log.info("%d songs: dvc repro in %s", n_songs, ws)
    t0 = time.perf_counter()
    with (ws / "scaling_repro.log").open("w") as out:
        proc = subprocess.run(
            [str(venv_bin / "dvc"), "repro"], cwd=ws, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - t0
    rows = read_log(timing_log, n_songs)
    rows.append(
        {
            "songs": n_songs,
            "stage": "total",
            "wall_s": round(wall, 2),
            "cpu_s": round(sum(r["cpu_s"] for r in rows), 2),
            "peak_rss_mib": max((r["peak_rss_mib"] for r in rows), default=0.0),
            "exit": proc.returncode,
            "command": "dvc repro",
        }
    )
    if proc.returncode != 0:
        log.warning(
            "%d songs: dvc repro exited %d (see %s)", n_songs, proc.returncode, ws / "scaling_repro.log"
        )
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--collection", type=Path, required=True, help="folder holding manifest.csv and its audio"
    )
    ap.add_argument("--songs", type=int, nargs="+", required=True, help="collection sizes to run")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the workspaces")
    ap.add_argument("--out", type=Path, required=True, help="CSV (rewritten after every size)")
    ap.add_argument("--venv", type=Path, default=REPO / ".venv", help="virtual environment with dvc")
    ap.add_argument("--set", action="append", default=[], help="params override key=value (yaml value)")
    ap.add_argument("--keep", action="store_true", help="keep each workspace (default: remove its data)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time at /usr/bin/time (apt-get install time)")
    rows: list[dict] = []
    for n in args.songs:
        rows += run_size(n, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        total = rows[-1]
        log.info("%d songs: dvc repro %.1f s (exit %d) -> %s", n, total["wall_s"], total["exit"], args.out)
        if not args.keep:
            for sub in ("data", "models", ".dvc/cache"):
                shutil.rmtree(args.work / f"songs_{n}" / sub, ignore_errors=True)
    df = pd.DataFrame(rows, columns=COLUMNS)
    print(df.drop(columns="command").to_string(index=False))
    return df


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
