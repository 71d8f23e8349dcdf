"""Ctrl-C, then ``dvc exp run``, fetches only the songs not yet finished.

``dvc exp run`` resets ``data/raw`` to its last recorded version before it runs the
stage, so finished downloads must live outside it (``download.cache_dir``). This runs
the real ``dvc`` on a temporary git + DVC copy of the repository with a real SIGINT to
the whole process group, as a terminal's Ctrl-C would send it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SR = 22050
N = 24  # enough songs that Ctrl-C lands mid-run even when the reader lags on a busy machine


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}"
    return out


def _manifest(work: Path, n: int) -> None:
    d = work / "data" / "manifests"
    rows = []
    for i in range(n):
        p = d / "remote" / f"s{i:02d}.wav"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(int(SR * 3.0)) / SR
            sf.write(str(p), (0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t)).astype(np.float32), SR)
        rows.append({"track_id": f"s{i:02d}", "source": p.as_uri(), "language": "en", "genre": "pop"})
    pd.DataFrame(rows).to_csv(d / "m.csv", index=False)


@pytest.mark.slow
def test_ctrl_c_then_dvc_exp_run_fetches_only_the_rest(tmp_path):
    work = tmp_path / "repo"
    for rel in ("src/musiclust", "stages"):
        shutil.copytree(REPO / rel, work / rel, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy2(REPO / rel, work / rel)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="manifest", manifest="data/manifests/m.csv")
    params["download"].update(concurrency=1, retries=0, min_success_fraction=0.5)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"{work / 'src'}{os.pathsep}{work}",
        "DVC_NO_ANALYTICS": "1",
        "MUSICLUST_LOG": "INFO",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    dvc = str(BIN / "dvc")
    _manifest(work, 1)
    _run(["git", "init", "-q"], work, env)
    _run([dvc, "init", "-q"], work, env)
    _run([dvc, "repro", "download"], work, env)  # a recorded data/raw with one song
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "one song"], work, env)

    _manifest(work, N)
    proc = subprocess.Popen(
        [dvc, "exp", "run", "download"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # a shell that starts this suite in the background (`cmd &`, nohup) leaves SIGINT ignored,
        # and an ignored signal stays ignored across exec: give dvc the terminal's default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first, fetched_first = [], set()
    for line in proc.stdout:
        first.append(line)
        fetched_first |= set(re.findall(r"(s\d\d): downloaded in", line))
        if len(fetched_first) >= 2:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole group gets it
            break
    first += proc.stdout.readlines()
    assert proc.wait(timeout=120) != 0, "".join(first)[-3000:]
    assert 2 <= len(fetched_first) < N, "".join(first)[-3000:]

    again = _run([dvc, "exp", "run", "download"], work, env)
    fetched_again = set(re.findall(r"(s\d\d): downloaded in", again))
    finished_first = set(re.findall(r"(s\d\d): downloaded in", "".join(first)))
    # s00 came with the first recorded collection; what finished before Ctrl-C is not fetched again
    assert fetched_again == {f"s{i:02d}" for i in range(1, N)} - finished_first, again[-3000:]
    rep = json.loads((work / "data" / "raw" / "report.json").read_text())
    assert rep["ok"] == rep["rows_in"] == N
