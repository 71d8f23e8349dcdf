"""dvc.yaml, params.yaml, the model registry and the code agree.

The code dependencies of every stage are derived from what its script really
imports (transitively, following ``musiclust`` imports through the AST), so a
stage that starts importing a new subpackage without declaring it fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from musiclust.params import load_params

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
#: the one subpackage whose modules are deps one file at a time (see _dep_path)
CONTRACTS = "contracts"


def _dvc() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def _stage_defs() -> dict[str, dict]:
    """Stage name -> definition (a foreach stage's ``do`` block under its own name)."""
    out = {}
    for name, st in _dvc()["stages"].items():
        out[name] = st["do"] if "foreach" in st else st
    return out


def _module_file(mod: str) -> Path | None:
    parts = mod.split(".")
    base = SRC.joinpath(*parts)
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def _imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mods: set[str] = set()
    pkg = None
    if SRC in path.parents:
        rel = path.relative_to(SRC).with_suffix("")
        pkg_parts = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
        pkg = pkg_parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names if a.name.split(".")[0] == "musiclust")
        elif isinstance(node, ast.ImportFrom):
            if node.level and pkg is not None:
                base = pkg[: len(pkg) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "musiclust":
                continue
            mods.add(name)
            for a in node.names:  # `from musiclust.features import store` imports a module
                if _module_file(f"{name}.{a.name}"):
                    mods.add(f"{name}.{a.name}")
    return mods


def _closure(script: Path) -> set[str]:
    seen: set[str] = set()
    todo = list(_imports_of(script))
    while todo:
        mod = todo.pop()
        parts = mod.split(".")
        # importing a.b.c also runs a/__init__ and a/b/__init__
        for i in range(1, len(parts) + 1):
            m = ".".join(parts[:i])
            if m in seen:
                continue
            f = _module_file(m)
            if f is None:
                continue
            seen.add(m)
            todo.extend(_imports_of(f))
    return seen


def _dep_path(mod: str) -> str | None:
    """musiclust.features.extract -> src/musiclust/features; musiclust.params -> src/musiclust/params.py;
    musiclust.contracts.segments -> src/musiclust/contracts/segments.py.

    A contract is one file per stage output, and a stage depends on the contract files it imports
    (not the folder): editing the metrics contract must not re-run download or segment.
    """
    parts = mod.split(".")
    if len(parts) == 1:
        return None  # the package __init__ holds only a docstring and __version__
    if parts[1] == CONTRACTS:
        # contracts/__init__ holds only a docstring (test_contracts_init_is_only_a_docstring)
        return f"src/musiclust/{CONTRACTS}/{parts[2]}.py" if len(parts) > 2 else None
    if (SRC / "musiclust" / parts[1]).is_dir():
        return f"src/musiclust/{parts[1]}"
    return f"src/musiclust/{parts[1]}.py"


def _code_of(script: str) -> set[str]:
    """The src/ deps of a stage script: what it imports, transitively."""
    return {d for d in map(_dep_path, _closure(REPO / script)) if d}


@pytest.mark.parametrize("stage", sorted(_stage_defs()))
def test_code_deps_are_exactly_the_imports(stage):
    """Each stage lists what its script imports; the train stages' code under src/ is listed once,
    as configure's, which writes its digest into every data/configs/<key>/ (a train stage's dep)."""
    st = _stage_defs()[stage]
    m = re.search(r"python (stages/\w+\.py)", st["cmd"])
    assert m, f"{stage}: cmd must run a script under stages/"
    script = m.group(1)
    expected = {script} | _code_of(script)
    if stage == "train":
        expected = {script}
    elif stage == "configure":
        expected |= _code_of("stages/train.py")
    declared = {d if isinstance(d, str) else next(iter(d)) for d in st.get("deps", [])}
    declared_code = {d for d in declared if d.startswith(("src/", "stages/"))}
    assert declared_code == expected, (
        f"{stage}: missing {sorted(expected - declared_code)}, not imported {sorted(declared_code - expected)}"
    )


def test_the_training_code_digest_covers_what_the_train_stage_imports():
    """configure hashes TRAIN_CODE into data/configs/<key>/code.txt in place of the train stages'
    code deps: it must be exactly the code stages/train.py runs."""
    from musiclust.training.configure import TRAIN_CODE, train_code_digest

    assert {f"src/musiclust/{p}" for p in TRAIN_CODE} == _code_of("stages/train.py")
    assert re.fullmatch(r"[0-9a-f]{64}", train_code_digest())


def test_contracts_init_is_only_a_docstring():
    """Stages list contract files, not the folder, so its __init__ (which every one of them runs)
    must hold nothing that could change what a stage does."""
    tree = ast.parse((SRC / "musiclust" / CONTRACTS / "__init__.py").read_text(encoding="utf-8"))
    body = tree.body
    assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), (
        "src/musiclust/contracts/__init__.py must hold only its docstring"
    )


def test_stage_scripts_are_thin_and_have_main():
    for st in _stage_defs().values():
        script = REPO / re.search(r"python (stages/\w+\.py)", st["cmd"]).group(1)
        text = script.read_text()
        assert "def main(argv" in text, f"{script} needs main(argv=None)"
        assert not re.search(r"import yaml|safe_load|json\.load", text), (
            f"{script} must not parse params itself"
        )
        assert len(text.splitlines()) < 80, f"{script} is not thin"


def _foreach_items(st: dict, params: dict) -> dict:
    """A stage's foreach items as {key: item}: a dict as written, or a list interpolated from params."""
    items = st["foreach"]
    if isinstance(items, str):
        node = params
        for part in re.fullmatch(r"\$\{(.+)\}", items).group(1).split("."):
            node = node[part]
        return {str(v): v for v in node}
    return items


def test_declared_params_exist():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    dvc = _dvc()
    for name, st in dvc["stages"].items():
        items = _foreach_items(st, params) if "foreach" in st else {None: {}}
        body = st["do"] if "foreach" in st else st
        for key, item in items.items():
            for p in body.get("params", []):
                p = p.replace("${key}", str(key)).replace("${item}", str(key))
                if isinstance(item, dict):
                    p = p.replace("${item.extra}", str(item.get("extra", "")))
                node = params
                for part in p.split("."):
                    assert isinstance(node, dict) and part in node, (
                        f"{name}@{key}: param {p} not in params.yaml"
                    )
                    node = node[part]


def test_models_agree_everywhere():
    """The model set has one home: train.models (default: every registered model, each with its
    models.<key> block). dvc.yaml iterates over it; evaluate and report read what the params select."""
    from musiclust.models import REGISTRY
    from musiclust.params import BASELINES

    params = load_params(REPO / "params.yaml")
    assert list(params.train.models) == list(REGISTRY), "train.models must default to every registered model"
    assert set(params.models) == set(REGISTRY), (
        f"params.yaml models {sorted(params.models)} / registry {sorted(REGISTRY)}"
    )
    assert list(params.cluster.baselines) == list(BASELINES), (
        "cluster.baselines must default to every baseline"
    )
    stages = _dvc()["stages"]
    assert stages["train"]["foreach"] == "${train.models}"
    # one cluster stage clusters every representation the params select (models, then baselines)
    assert "foreach" not in stages["cluster"] and "baseline" not in stages
    assert {"train.models", "cluster"} <= set(stages["cluster"]["params"])
    assert {"models", "data/features", "data/lyrics.parquet"} <= set(stages["cluster"]["deps"])
    # a train stage reads only its own configure folder (settings, and the lyrics of text models)
    train = stages["train"]["do"]
    assert "params" not in train, "train@<key> reads its settings from data/configs/<key>, not params.yaml"
    assert "data/configs/${item}" in train["deps"] and "data/lyrics.parquet" not in train["deps"]
    # evaluate and report depend on the folders, and read the representations the params select
    defs = _stage_defs()
    assert "data/clusters" in defs["evaluate"]["deps"] and "train.models" in defs["evaluate"]["params"]
    assert {"models", "data/clusters"} <= set(defs["report"]["deps"])
    assert {"train.models", "cluster.baselines"} <= set(defs["report"]["params"])


def test_cluster_store_keys_on_what_the_cluster_stage_depends_on():
    """The cluster store's key covers the stage's code deps and params (dvc.yaml): a change DVC
    re-runs the stage for is a change the store sees, so a reused folder is never stale."""
    from musiclust.clustering.store import CODE_PATHS, PARAM_KEYS

    st = _stage_defs()["cluster"]
    code = {d.removeprefix("src/musiclust/") for d in st["deps"] if d.startswith("src/musiclust/")}
    assert code == set(CODE_PATHS), sorted(code ^ set(CODE_PATHS))
    # train.models says which representations run; each one's own inputs are in its key
    assert set(st["params"]) - {"train.models"} == set(PARAM_KEYS), st["params"]


def test_only_headline_metrics_under_metrics():
    """dvc exp show stays readable: one small metrics file, numbers only, no timings."""
    declared = []
    for st in _stage_defs().values():
        for m in st.get("metrics", []):
            declared.append(m if isinstance(m, str) else next(iter(m)))
    assert declared == ["metrics/headline.json"], declared
    headline = REPO / "metrics" / "headline.json"
    if not headline.exists():
        pytest.skip("metrics/headline.json not committed yet (run dvc repro)")
    flat = _flatten(json.loads(headline.read_text()))
    assert all(isinstance(v, (int, float)) or v is None for v in flat.values()), (
        "headline.json holds non-numbers"
    )
    assert not [k for k in flat if re.search(r"second|time|elapsed|duration", k)], "timings in headline.json"
    # a fixed, small set per representation (per label: nmi, its interval, ami, and mig for models;
    # silhouette; best_val_loss for models), not one column per run, algorithm, level or seed
    reps = json.loads(headline.read_text())
    labels = {k for r in reps.values() if isinstance(r, dict) for k, v in r.items() if isinstance(v, dict)}
    per_rep = {rep: len(_flatten(r)) for rep, r in reps.items() if isinstance(r, dict)}
    assert max(per_rep.values()) <= 5 * len(labels) + 2, per_rep
    assert len(flat) <= 250, f"{len(flat)} headline keys: dvc exp show becomes unreadable"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_analytics_off():
    cfg = (REPO / ".dvc" / "config").read_text()
    assert re.search(r"analytics\s*=\s*false", cfg)


def test_readme_results_are_the_pipelines():
    """The README's results section is metrics/results.md, as the evaluate stage wrote it."""
    results = REPO / "metrics" / "results.md"
    if not results.exists():
        pytest.skip("metrics/results.md not committed yet (run dvc repro)")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- results:start -->\n(.*?)<!-- results:end -->", readme, re.S)
    assert block, "README.md lacks the <!-- results:start/end --> block"
    assert block.group(1) == results.read_text(encoding="utf-8"), (
        "README results differ from metrics/results.md"
    )


def test_only_evaluate_depends_on_the_ranking():
    """Editing the ranking re-runs `evaluate` alone: the per-run scoring the cluster stage imports
    (musiclust.evaluation) must not import the ranking (musiclust.ranking)."""
    users = set()
    for name, st in _stage_defs().items():
        script = REPO / re.search(r"python (stages/\w+\.py)", st["cmd"]).group(1)
        if any(m.split(".")[:2] == ["musiclust", "ranking"] for m in _closure(script)):
            users.add(name)
    assert users == {"evaluate"}, users
    assert "src/musiclust/ranking" not in _stage_defs()["cluster"]["deps"]


def test_dvc_lock_records_the_committed_code_and_params():
    """dvc.lock was written by a `dvc repro` of this code and these params: no stage's code, command
    or params differ from what the lock records (missing data, as in a clean clone, is allowed), so
    `dvc metrics diff` compares numbers this code produced."""
    import shutil
    import subprocess
    import sys

    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(dvc).exists():
        pytest.skip("dvc is not installed")
    res = subprocess.run(
        [dvc, "status", "--json"], cwd=REPO, capture_output=True, text=True, check=True, timeout=300
    )
    stale = {}
    for stage, changes in json.loads(res.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):
                stale.setdefault(stage, []).append(change)  # e.g. "changed command"
                continue
            # "deleted": another stage's output that is not checked out (a clean clone); any other
            # change of a dep (code, params, the manifest) means the lock is not this commit's
            deps = {p: why for p, why in change.get("changed deps", {}).items() if why != "deleted"}
            if deps:
                stale.setdefault(stage, []).append(deps)
    assert not stale, f"dvc.lock is stale (run `dvc repro` and commit dvc.lock): {stale}"
