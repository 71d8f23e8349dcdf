"""End to end: the real ``dvc repro`` on a tiny configuration in a temporary copy of the repo.

Checks that every output ``dvc.yaml`` declares exists, that a second repro does
nothing, and that changing ``beta`` re-runs exactly the beta-dependent stages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from musiclust.models import REGISTRY

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "seeds": [0],
    "data": {"demo": {"n_songs": 16, "min_duration_s": 8.0, "max_duration_s": 10.0}},
    "segment": {"window_s": 2.0, "hop_s": 2.0, "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
    "train": {"max_steps": 6, "eval_every": 2, "patience": 2, "kl_warmup_steps": 2, "batch_size": 16},
    "cluster": {"algorithms": ["kmeans", "agglomerative"], "maps": ["pca", "tsne"]},
    # 4 test songs: rank them at 1 per class, so that the headline has numbers an experiment can move
    "evaluate": {"bootstrap": 100, "min_test_songs_per_class": 1},
    "report": {"n_central_songs": 1, "excerpt_s": 1.0},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


def _copy_repo(dst: Path) -> None:
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for f in filter(None, files):
        src = REPO / f
        if f == "dvc.lock" or not src.is_file() or f.startswith(("metrics/", "plots/")):
            continue  # outputs are produced fresh by the run under test
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)


def _foreach_keys(st: dict, params: dict) -> list:
    items = st["foreach"]
    if isinstance(items, str):  # ${a.b}: a list in params.yaml
        node = params
        for part in re.fullmatch(r"\$\{(.+)\}", items).group(1).split("."):
            node = node[part]
        return list(node)
    return list(items)


def _declared_outputs(dvc: dict, params: dict) -> list[str]:
    outs = []
    for st in dvc["stages"].values():
        keys = _foreach_keys(st, params) if "foreach" in st else [None]
        body = st["do"] if "foreach" in st else st
        for key in keys:
            for kind in ("outs", "metrics", "plots"):
                for o in body.get(kind, []):
                    path = o if isinstance(o, str) else next(iter(o))
                    outs.append(path.replace("${key}", str(key)).replace("${item}", str(key)))
    return outs


def _env(work: Path) -> dict:
    """The environment of a run in the copy ``work``: its own src/ first on the path (so code edited
    in the copy is what runs), offline, git identity for dvc exp."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(work / "src"),
        "HF_HUB_OFFLINE": "1",
        "MUSICLUST_OFFLINE": "1",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }


def _clustered(log: str) -> set[str]:
    """The representations the cluster stage computed (not copied from its store) in a repro's log."""
    return set(re.findall(r"musiclust\.clustering\.stage: cluster (\S+): ", log))


def _ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def _summary(work: Path) -> dict:
    import json

    return json.loads((work / "metrics" / "summary.json").read_text())


@pytest.mark.slow
def test_dvc_repro_end_to_end(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    _copy_repo(work)
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(work)
    _run(["git", "init", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "tiny"], work, env)
    dvc = str(BIN / "dvc")

    _run([dvc, "repro"], work, env)
    for out in _declared_outputs(yaml.safe_load((work / "dvc.yaml").read_text()), params):
        assert (work / out).exists(), f"declared output {out} was not written"
    assert (work / "dvc.lock").exists()

    again = _run([dvc, "repro"], work, env)
    assert "Running stage" not in again, f"second repro re-ran stages:\n{again}"

    first_lock = (work / "dvc.lock").read_text()
    first_headline = (work / "metrics" / "headline.json").read_bytes()

    # an experiment pays for what changed: one model retrained, re-clustered and re-scored
    params["beta"] = float(params["beta"]) * 2
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    beta_run = _run([dvc, "repro"], work, env)
    ran = _ran(beta_run)
    assert ran == {"configure", "train@beta_vae", "cluster", "evaluate", "publish", "report"}, ran
    assert _clustered(beta_run) == {"beta_vae"}, beta_run[-3000:]  # the others come from the store

    # back to a beta run before: the run-cache restores train@ and cluster instead of recomputing,
    # and the outputs are the first run's, byte for byte (dvc.lock records their hashes)
    params["beta"] = float(params["beta"]) / 2
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    back_run = _run([dvc, "repro"], work, env)
    ran = _ran(back_run)
    assert not ran & {"train@beta_vae", "cluster", "evaluate", "report"}, back_run[-3000:]
    for stage in ("train@beta_vae", "cluster", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run" in back_run, back_run[-3000:]
    assert (work / "dvc.lock").read_text() == first_lock
    assert (work / "metrics" / "headline.json").read_bytes() == first_headline

    # a new lyrics encoder re-trains the models that read lyrics, and no other (each train stage
    # depends on its own configure folder, where only those models get the lyrics table); the
    # cluster stage re-clusters those models and the baselines made of lyrics, and reuses the rest
    params["lyrics"]["encoder"] = "tfidf-char"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    lyrics_run = _run([dvc, "repro"], work, env)
    ran = _ran(lyrics_run)
    text_models = sorted(k for k, spec in REGISTRY.items() if "text" in spec.needs)
    assert text_models == ["attention_mm", "hybrid", "multimodal", "shared_private"]
    expected = {"embed_lyrics", "configure", "cluster", "evaluate", "publish", "report"}
    expected |= {f"train@{k}" for k in text_models}
    assert ran == expected, ran
    lyric_baselines = {"lyrics", "raw_lyrics"} & set(params["cluster"]["baselines"])
    assert _clustered(lyrics_run) == set(text_models) & set(params["train"]["models"]) | lyric_baselines

    # choosing fewer models trains nothing: configure re-runs, the chosen models' folders are the
    # same, and evaluate and report rank and draw only the chosen models and the baselines
    chosen = dict(params, train={**params["train"], "models": ["vae", "beta_vae"]})
    (work / "params.yaml").write_text(yaml.safe_dump(chosen, sort_keys=False))
    few_run = _run([dvc, "repro"], work, env)
    assert _ran(few_run) == {"configure", "cluster", "evaluate", "publish", "report"}, _ran(few_run)
    assert _clustered(few_run) == set(), few_run[-3000:]  # every chosen one copied from the store
    ranked = {e["representation"] for entries in _summary(work)["ranking"].values() for e in entries}
    assert ranked <= {"vae", "beta_vae", *params["cluster"]["baselines"]} and {"vae", "beta_vae"} <= ranked
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run([dvc, "repro"], work, env)

    # a real small sweep, compared: two experiments on beta, then `musiclust compare`
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "tfidf"], work, env)
    for beta in (1.0, 8.0):
        _run([dvc, "exp", "run", "-S", f"beta={beta}", "-n", f"beta{beta:g}"], work, env)
    shown = _run([dvc, "exp", "show", "--only-changed", "--no-pager", "--csv"], work, env)
    header = [h.split(":")[-1] for h in shown.splitlines()[0].split(",")]
    assert "beta" in header and any(h.startswith("beta_vae.") for h in header), header
    assert not any(h.startswith(("vae.", "raw.", "autoencoder.")) for h in header), header  # unchanged
    out = _run([str(BIN / "musiclust"), "compare", "--out", "compare.html"], work, env)
    assert "beta1" in out and "beta8" in out, out[-3000:]
    page = (work / "compare.html").read_text()
    assert "beta_vae" in page and "http://" not in page and "https://" not in page


NEW_MODEL = '''"""A linear autoencoder: the smallest model, added the way any model is added."""

from musiclust.models import schema
from musiclust.models.autoencoder import AutoEncoder


class LinearAE(AutoEncoder):
    """Autoencoder with one hidden layer (Baldi & Hornik, "Neural networks and principal component
    analysis", Neural Networks 1989): spans the leading principal subspace at its optimum."""

    schema = schema.LINEAR_AE
'''
NEW_SCHEMA = """
LINEAR_AE = Schema("linear_ae", frozenset({"latent_dim", "hidden"}))
"""


def _add_linear_ae(work: Path) -> None:
    """The code edits of a new model in the copy ``work``: its module, its schema, its registry entry."""
    (work / "src/musiclust/models/linear_ae.py").write_text(NEW_MODEL)
    schema = work / "src/musiclust/models/schema.py"
    schema.write_text(schema.read_text() + NEW_SCHEMA)
    registry = work / "src/musiclust/models/registry.py"
    text = registry.read_text()
    last = '    ModelSpec("song_ae", schema.SONG_VAE, "musiclust.models.song_vae:SongVAE", {"variational": False}),\n'
    assert last in text
    entry = '    ModelSpec("linear_ae", schema.LINEAR_AE, "musiclust.models.linear_ae:LinearAE"),\n'
    registry.write_text(text.replace(last, last + entry))


@pytest.mark.slow
def test_adding_a_model_is_its_module_registry_entry_and_params_block(tmp_path):
    """A new model in a copy of the repo: its module, its schema, one registry entry and its params
    block (with its key in train.models). Nothing in dvc.yaml, evaluate or the report changes, and
    `dvc repro` trains, clusters, ranks and draws it."""
    work = tmp_path / "repo"
    work.mkdir()
    _copy_repo(work)
    _add_linear_ae(work)
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    params["models"]["linear_ae"] = {"latent_dim": 4, "hidden": [16]}
    params["train"]["models"] = ["vae", "linear_ae"]
    params["cluster"]["baselines"] = ["raw"]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(work)
    _run(["git", "init", "-q"], work, env)
    ran = _ran(_run([str(BIN / "dvc"), "repro"], work, env))
    assert {"train@linear_ae", "train@vae", "cluster", "report"} <= ran, ran
    ranked = {e["representation"] for entries in _summary(work)["ranking"].values() for e in entries}
    assert ranked == {"vae", "linear_ae", "raw"}, ranked
    history = (work / "plots" / "training" / "history.csv").read_text()
    assert "linear_ae," in history and "vae," in history
    assert "linear_ae" in (work / "plots" / "report" / "index.html").read_text()
