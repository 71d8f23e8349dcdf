"""``musiclust compare``: pure frame functions on synthetic experiments, the page, and a real DVC sweep."""

from __future__ import annotations

import base64
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from musiclust.compare import frames, page
from musiclust.compare.frames import Experiment

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# a resource the browser would fetch: src/href/url()/@import pointing at http(s) or protocol-relative
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.IGNORECASE
)


def _scores(nmi: float, half: float = 0.05) -> dict:
    return {"nmi": nmi, "nmi_low": round(nmi - half, 4), "nmi_high": round(nmi + half, 4), "ami": nmi - 0.01}


def _exp(
    name: str,
    beta: float,
    latent: int = 8,
    nmi_lang: float = 0.3,
    nmi_genre: float = 0.2,
    loss: float = 1.0,
    pca_nmi: float = 0.25,
) -> Experiment:
    return Experiment(
        name=name,
        rev=name,
        params={
            "beta": beta,
            "seeds": [0, 1],
            "models": {"beta_vae": {"latent_dim": latent, "hidden": [16]}},
        },
        headline={
            "beta_vae": {
                "language": _scores(nmi_lang),
                "genre": _scores(nmi_genre),
                "silhouette": 0.1,
                "best_val_loss": loss,
            },
            "pca": {"language": _scores(pca_nmi), "genre": _scores(0.15), "silhouette": 0.2},
        },
    )


@pytest.fixture
def sweep() -> list[Experiment]:
    return [
        _exp("main", 4.0, nmi_lang=0.30, loss=1.3),
        _exp("exp-b16", 16, nmi_lang=0.10, loss=2.0),
        _exp("exp-b1", 1, nmi_lang=0.35, loss=1.1),
        _exp("exp-b2", 2, nmi_lang=0.40, loss=1.2),
    ]


def test_flatten_nests_with_dots_and_keeps_lists_as_one_value():
    flat = frames.flatten({"beta": 4.0, "models": {"vae": {"latent_dim": 8, "hidden": [128, 64]}}})
    assert flat == {"beta": 4.0, "models.vae.latent_dim": 8, "models.vae.hidden": "[128, 64]"}


def test_changed_params_treats_int_and_float_alike_and_finds_real_changes(sweep):
    params = frames.params_frame(sweep)
    assert frames.changed_params(params) == ["beta"]
    same = frames.params_frame([_exp("a", 4.0), _exp("b", 4)])  # `-S beta=4` writes an int over 4.0
    assert frames.changed_params(same) == []
    grid = frames.params_frame([_exp("a", 1, latent=8), _exp("b", 1, latent=16)])
    assert frames.changed_params(grid) == ["models.beta_vae.latent_dim"]
    with pytest.raises(ValueError, match="unique"):
        frames.params_frame([_exp("a", 1), _exp("a", 2)])


def test_headline_frame_is_long_and_baselines_have_no_loss(sweep):
    h = frames.headline_frame(sweep)
    assert list(h.columns) == frames.HEADLINE_COLUMNS
    assert len(h) == 4 * 2 * 2  # experiments x representations x labels
    assert h[h["representation"] == "pca"]["best_val_loss"].isna().all()
    row = h[(h["experiment"] == "exp-b2") & (h["representation"] == "beta_vae") & (h["label"] == "language")]
    assert row[["nmi", "nmi_low", "nmi_high", "best_val_loss"]].iloc[0].tolist() == [0.4, 0.35, 0.45, 1.2]


def test_headline_frame_names_a_value_that_is_not_a_number():
    bad = _exp("x", 1)
    bad.headline["pca"]["genre"]["nmi"] = "high"
    with pytest.raises(ValueError, match=r"x: headline.json pca.genre.nmi = 'high'"):
        frames.headline_frame([bad])


def test_summary_table_best_per_label_and_chosen_representation(sweep):
    params, h = frames.params_frame(sweep), frames.headline_frame(sweep)
    t = frames.summary_table(params, h, ["beta_vae"])
    assert t["experiment"].tolist() == ["main", "exp-b16", "exp-b1", "exp-b2"]
    assert t["beta"].tolist() == [4.0, 16, 1, 2]
    assert t["language best"].tolist() == ["beta_vae", "pca", "beta_vae", "beta_vae"]
    assert t["language nmi"].tolist() == [0.30, 0.25, 0.35, 0.40]
    assert t["beta_vae language nmi_high"].tolist() == [0.35, 0.15, 0.40, 0.45]
    assert t["genre best"].tolist() == ["beta_vae"] * 4
    shown = frames.format_table(t)
    assert shown["language nmi"].iloc[3] == "0.400 [0.350, 0.450]"
    assert "language nmi_low" not in shown.columns


def test_summary_table_tie_goes_to_the_name_that_sorts_first():
    e = _exp("tie", 1, nmi_lang=0.25, pca_nmi=0.25)
    t = frames.summary_table(frames.params_frame([e]), frames.headline_frame([e]))
    assert t["language best"].iloc[0] == "beta_vae"


def test_metric_vs_param_sorts_numerically_and_carries_the_interval(sweep):
    params, h = frames.params_frame(sweep), frames.headline_frame(sweep)
    c = frames.metric_vs_param(params, h, "beta", "beta_vae", "language")
    assert c["value"].tolist() == [1, 2, 4.0, 16]  # not text order ("16" < "2")
    assert c["experiment"].tolist() == ["exp-b1", "exp-b2", "main", "exp-b16"]
    assert c["metric"].tolist() == [0.35, 0.40, 0.30, 0.10]
    assert c["low"].tolist() == [0.30, 0.35, 0.25, 0.05] and c["high"].tolist() == [0.40, 0.45, 0.35, 0.15]
    assert set(c["series"]) == {""}
    with pytest.raises(KeyError, match="gamma"):
        frames.metric_vs_param(params, h, "gamma", "beta_vae", "language")


def test_metric_vs_param_on_a_two_parameter_grid_splits_series():
    grid = [_exp(f"b{b}-z{z}", b, latent=z, nmi_lang=0.1 * b + 0.01 * z) for b in (1, 4) for z in (8, 16)]
    params, h = frames.params_frame(grid), frames.headline_frame(grid)
    c = frames.metric_vs_param(params, h, "beta", "beta_vae", "language")
    assert sorted(set(c["series"])) == ["models.beta_vae.latent_dim=16", "models.beta_vae.latent_dim=8"]
    one = c[c["series"] == "models.beta_vae.latent_dim=8"]
    assert one["value"].tolist() == [1, 4] and one["experiment"].tolist() == ["b1-z8", "b4-z8"]


def test_varying_ranking_and_loss_frames(sweep):
    h = frames.headline_frame(sweep)
    assert frames.varying_representations(h) == ["beta_vae"]
    names = [e.name for e in sweep]
    r = frames.ranking_frame(h, "language", names)
    assert list(r.index) == ["beta_vae", "pca"]  # mean 0.2875 > 0.25
    assert r.loc["pca", "rank_exp-b16"] == 1 and r.loc["beta_vae", "rank_exp-b16"] == 2
    assert math.isclose(r.loc["beta_vae", "mean"], (0.30 + 0.10 + 0.35 + 0.40) / 4)
    lv = frames.loss_vs_nmi(h, "language")
    assert set(lv["representation"]) == {"beta_vae"} and len(lv) == 4
    assert lv.set_index("experiment").loc["exp-b16", "best_val_loss"] == 2.0


def test_order_by_params_keeps_the_baseline_first_and_sorts_numerically(sweep):
    assert [e.name for e in frames.order_by_params(sweep)] == ["main", "exp-b1", "exp-b2", "exp-b16"]
    grid = [_exp("main", 4.0)] + [_exp(f"b{b}-z{z}", b, latent=z) for b in (16, 2) for z in (16, 8)]
    # params come back from pandas as numpy scalars: 8 must still sort before 16
    assert [e.name for e in frames.order_by_params(grid)] == ["main", "b2-z8", "b2-z16", "b16-z8", "b16-z16"]


def _map(seed: int, method: str, n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "representation": "beta_vae",
            "seed": seed,
            "method": method,
            "unit_id": [f"s{i}" for i in range(n)],
            "song_id": [f"s{i}" for i in range(n)],
            "split": "test",
            "x": range(n),
            "y": [float(seed)] * n,
            "note": None,
        }
    )


def test_map_grid_takes_the_method_and_lowest_seed_and_skips_missing():
    maps = {
        "a": pd.concat([_map(1, "pca"), _map(0, "pca"), _map(0, "tsne")]),
        "b": None,
        "c": _map(2, "tsne"),
    }
    grid = frames.map_grid(maps, "beta_vae", "pca")
    assert list(grid) == ["a"] and set(grid["a"]["seed"]) == {0} and set(grid["a"]["method"]) == {"pca"}
    assert page.choose_method({"beta_vae": maps}, "umap") == "tsne"


def test_page_is_self_contained_escaped_and_deterministic(sweep):
    sweep = [*sweep, _exp("<script>alert(1)</script>", 8, nmi_lang=0.2)]
    maps = page.Maps(
        frames={"beta_vae": {e.name: _map(0, "pca") for e in sweep}},
        method="pca",
        notes=["exp-b16: no data/clusters/beta_vae/maps.parquet (PathMissingError)"],
        colour={"s0": "en", "s1": "bn"},
        colour_name="language",
    )
    html = page.render_page(sweep, maps=maps, table_reps=["beta_vae"])
    assert html == page.render_page(sweep, maps=maps, table_reps=["beta_vae"])
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="curve-beta-language"' in html and 'id="curve-beta-genre"' in html
    # beta moved beta_vae's language NMI, not its genre NMI (0.2 everywhere): the page says so in words
    assert "No effect on genre NMI: beta_vae (0.200) scores the same at every value of beta" in html
    assert "No effect on language NMI" not in html
    assert 'id="maps"' in html and "no data/clusters/beta_vae/maps.parquet" in html
    for name in ("exp-b1", "exp-b2", "exp-b16", "main"):
        assert f"<td>{name}</td>" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2 + 1 + 2 + 2  # curves (2 labels), maps, ranking per label, loss per label
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)


def test_an_experiment_that_ranked_nothing_is_compared_without_a_best():
    """A small collection's headline.json has no label blocks (evaluate ranked no label; summary.json
    says why): the comparison shows it without naming a best representation, and does not break."""
    small = Experiment(
        name="small",
        rev="small",
        params={"beta": 8.0, "seeds": [0]},
        headline={"vae": {"best_val_loss": 1.5}},
    )
    empty = Experiment(name="empty", rev="empty", params={"beta": 2.0, "seeds": [0]}, headline={})
    exps = [_exp("main", 4.0), small, empty]
    headline = frames.headline_frame(exps)
    assert set(headline["experiment"]) == {"main"}
    table = frames.summary_table(frames.params_frame(exps), headline).set_index("experiment")
    assert table.loc["main", "language best"] == "beta_vae"
    assert table.loc[["small", "empty"], "language best"].isna().all()
    html = page.render_page(exps)
    assert "<td>small</td>" in html and "<td>empty</td>" in html
    assert page.render_page([small, empty])  # nothing ranked anywhere: still a page


def test_page_without_changed_params_says_so():
    html = page.render_page([_exp("a", 1), _exp("b", 1)])
    assert "No param differs between the experiments." in html
    assert "Latent maps were not requested." in html


# ---------------------------------------------------------------------------------------------
# End to end: a real two-point DVC sweep in a temporary repository, then `musiclust compare`.

TOY_TRAIN = """
import json, yaml
beta = float(yaml.safe_load(open("params.yaml"))["beta"])
json.dump({"beta": beta, "loss": 1.0 + 0.1 * beta}, open("train.json", "w"))
"""

TOY_EVALUATE = """
import json, os
import pandas as pd
t = json.load(open("train.json"))
nmi = round(0.2 + 0.05 * t["beta"], 4)
def s(v): return {"nmi": v, "nmi_low": round(v - 0.05, 4), "nmi_high": round(v + 0.05, 4), "ami": v}
h = {"beta_vae": {"language": s(nmi), "silhouette": 0.1, "best_val_loss": t["loss"]},
     "pca": {"language": s(0.3), "silhouette": 0.2}}
os.makedirs("metrics", exist_ok=True)
json.dump(h, open("metrics/headline.json", "w"), indent=1, sort_keys=True)
os.makedirs("data/clusters/beta_vae", exist_ok=True)
pd.DataFrame({"representation": "beta_vae", "seed": 0, "method": "pca", "unit_id": [f"s{i}" for i in range(8)],
              "song_id": [f"s{i}" for i in range(8)], "split": "test", "x": [float(i) for i in range(8)],
              "y": [t["beta"] * (i % 3) for i in range(8)], "note": None}
             ).to_parquet("data/clusters/beta_vae/maps.parquet", index=False)
"""

TOY_DVC = """
stages:
  train:
    cmd: python src/train.py
    deps: [src/train.py]
    params: [beta]
    outs: [train.json]
  evaluate:
    cmd: python src/evaluate.py
    deps: [src/evaluate.py, train.json]
    outs: [data/clusters]
    metrics:
      - metrics/headline.json:
          cache: false
"""


def _env() -> dict:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}"
    return proc.stdout


def _toy_repo(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text(textwrap.dedent(TOY_TRAIN))
    (root / "src" / "evaluate.py").write_text(textwrap.dedent(TOY_EVALUATE))
    (root / "dvc.yaml").write_text(textwrap.dedent(TOY_DVC))
    (root / "params.yaml").write_text("beta: 4.0\nmodels:\n  beta_vae: {latent_dim: 8}\n")
    _run(["git", "init", "-q", "-b", "main"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["dvc", "repro", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "baseline"], root)
    return root


@pytest.mark.slow
def test_compare_a_real_dvc_sweep(tmp_path):
    root = _toy_repo(tmp_path / "toy")
    _run(["dvc", "exp", "run", "--queue", "-S", "beta=1,2"], root)
    _run(["dvc", "exp", "run", "--run-all"], root, timeout=600)
    out = _run([sys.executable, "-m", "musiclust.cli", "compare", "--out", "cmp/compare.html"], root)

    lines = [ln.split() for ln in out.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert header[:2] == ["experiment", "beta"]
    assert len(rows) == 3  # the baseline and both experiments
    assert rows[0][:2] == ["main", "4.0"] and sorted(float(r[1]) for r in rows[1:]) == [1.0, 2.0]
    # beta_vae language NMI = 0.2 + 0.05 beta, printed with its interval
    assert "0.250 [0.200, 0.300]" in out and "0.300 [0.250, 0.350]" in out and "0.400 [0.350, 0.450]" in out

    html = (root / "cmp" / "compare.html").read_text()
    assert not EXTERNAL.search(html)
    assert 'id="curve-beta-language"' in html  # the beta curve
    assert 'id="maps"' in html and "no data/clusters" not in html  # every experiment's map was read
    names = [r[0] for r in rows]
    for name in names:
        assert f"<td>{name}</td>" in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4
