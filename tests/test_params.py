"""The params reader: every setting checked at load, one line naming the key; defaults written once."""

from __future__ import annotations

import copy
import dataclasses
import math
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from musiclust import params as P
from musiclust.params import ParamsError, load_params, parse_params


@pytest.fixture(scope="module")
def repo_params() -> dict:
    from tests.conftest import REPO

    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repo_params_load(repo_root):
    p = load_params(repo_root / "params.yaml")
    assert p.data.source in ("demo", "manifest", "folder")
    assert abs(p.segment.split.train + p.segment.split.val + p.segment.split.test - 1) < 1e-9
    assert len(p.seeds) >= 1
    assert p.representations == (*p.train.models, *p.cluster.baselines)


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match="segment.*windw_s"):
        parse_params({"segment": {"windw_s": 3.0}})


def test_bad_choice_and_type():
    with pytest.raises(ParamsError, match="data.source"):
        parse_params({"data": {"source": "youtube"}})
    with pytest.raises(ParamsError, match="audio.sample_rate must be an integer"):
        parse_params({"audio": {"sample_rate": "22050"}})
    with pytest.raises(ParamsError, match="sum to 1"):
        parse_params({"segment": {"split": {"train": 0.9, "val": 0.2, "test": 0.1}}})
    with pytest.raises(ParamsError, match="train.lr must be a finite number"):
        parse_params({"train": {"lr": math.nan}})


def test_one_beta(repo_params):
    """The top-level beta is the only one: beta_vae reads it, a models.beta_vae.beta is refused."""
    from musiclust.models.registry import resolve_settings

    raw = copy.deepcopy(repo_params)
    raw["beta"] = 8
    resolved = resolve_settings(parse_params(raw))
    assert resolved["beta_vae"]["beta"] == 8.0
    assert all("beta" not in cfg for key, cfg in resolved.items() if key != "beta_vae")
    raw["models"]["beta_vae"]["beta"] = 2.0
    with pytest.raises(ParamsError, match=r"models\.beta_vae\.beta.*top-level `beta`"):
        parse_params(raw)
    for bad in (0, -1.0, math.inf, "8"):
        with pytest.raises(ParamsError, match="^beta"):
            parse_params({"beta": bad})


@pytest.mark.parametrize(
    "key, setting, value, message",
    [
        ("vae", "latent_dim", 0, r"models\.vae\.latent_dim must be an integer >= 1, got 0"),
        ("vae", "latent_dim", 1.5, r"models\.vae\.latent_dim must be an integer >= 1, got 1\.5"),
        ("vae", "hidden", [], r"models\.vae\.hidden is empty"),
        ("vae", "hidden", [64, 0], r"models\.vae\.hidden\[1\] must be an integer >= 1, got 0"),
        ("vae", "hiden", [64], r"models\.vae\.hiden: unknown setting; model settings are "),
        ("conv1d_vae", "kernel", 0, r"models\.conv1d_vae\.kernel must be an odd integer >= 1, got 0"),
        ("conv1d_vae", "kernel", 4, r"models\.conv1d_vae\.kernel must be an odd integer >= 1, got 4"),
        ("song_vae", "clips_per_song", -1, r"models\.song_vae\.clips_per_song must be an integer >= 0"),
        ("beta_vae", "free_bits", -0.5, r"models\.beta_vae\.free_bits must be a number >= 0"),
        ("beta_vae", "free_bits", math.nan, r"models\.beta_vae\.free_bits must be a number >= 0"),
        (
            "attention_mm",
            "fusion",
            "sum",
            r"models\.attention_mm\.fusion: 'sum' is not one of residual, gated",
        ),
        ("vade", "n_components", 1, r"models\.vade\.n_components must be an integer >= 2"),
    ],
)
def test_model_settings_checked_at_load(repo_params, key, setting, value, message):
    raw = copy.deepcopy(repo_params)
    raw["models"][key][setting] = value
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_train_models_must_have_settings(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["train"]["models"] = ["vae", "vea"]
    with pytest.raises(ParamsError, match=r"train\.models lists \['vea'\] without a models\.<key> block"):
        parse_params(raw)
    raw["train"]["models"] = ["vae", "vae"]
    with pytest.raises(ParamsError, match="lists a model twice"):
        parse_params(raw)


def test_model_checks_that_span_settings_run_in_configure(repo_params):
    """What only the model's schema knows (heads dividing the token width, an unregistered block)
    is checked when configure resolves the settings, still as one line naming the key."""
    from musiclust.models import ModelConfigError
    from musiclust.models.registry import resolve_settings

    raw = copy.deepcopy(repo_params)
    raw["models"]["attention_mm"]["heads"] = 5
    with pytest.raises(ModelConfigError, match=r"models\.attention_mm\.heads"):
        resolve_settings(parse_params(raw))
    raw = copy.deepcopy(repo_params)
    raw["models"]["my_vae"] = {"latent_dim": 4}
    with pytest.raises(ModelConfigError, match=r"models\.my_vae: no such model"):
        resolve_settings(parse_params(raw))
    raw = copy.deepcopy(repo_params)
    del raw["models"]["vae"]["hidden"]
    with pytest.raises(ModelConfigError, match=r"models\.vae: missing setting\(s\) \['hidden'\]"):
        resolve_settings(parse_params(raw))
    raw = copy.deepcopy(repo_params)
    raw["models"]["vae"]["heads"] = 4  # a known setting (of attention_mm) that the VAE does not take
    with pytest.raises(ModelConfigError, match=r"models\.vae: unknown setting\(s\) \['heads'\]; allowed: "):
        resolve_settings(parse_params(raw))
    raw = copy.deepcopy(repo_params)
    raw["models"]["shared_private"]["audio_private_dim"] = raw["models"]["shared_private"]["latent_dim"]
    with pytest.raises(ModelConfigError, match=r"models\.shared_private: latent_dim \(\d+\) must exceed"):
        resolve_settings(parse_params(raw))


def _configure_with(raw: dict, repo_root: Path, tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """Run the configure stage as DVC does, on params ``raw`` written to ``tmp_path/params.yaml``."""
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, "stages/configure.py", "--lyrics", "x.parquet", "--out", str(tmp_path / "c"),
         "--params", str(bad)],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return bad, proc


@pytest.mark.parametrize(
    "key, setting, value, message",
    [
        (
            "attention_mm",
            "heads",
            5,
            "models.attention_mm.heads: 5 must divide the token width channels[-1] = ",
        ),
        ("song_ae", "heads", 2, "models.song_ae: unknown setting(s) ['heads']; allowed: "),
        ("shared_private", "text_private_dim", 99, "models.shared_private: latent_dim ("),
    ],
)
def test_bad_model_setting_is_one_line_exit_2_at_configure(
    repo_root, repo_params, tmp_path, key, setting, value, message
):
    """What only the model's schema can judge stops the configure stage the same way: one line
    naming ``models.<key>`` (the registry key, also where a class serves several), exit code 2."""
    raw = copy.deepcopy(repo_params)
    raw["models"][key][setting] = value
    _, proc = _configure_with(raw, repo_root, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), proc.stderr


def _leaves(node: typing.Any, prefix: str = "") -> dict[str, typing.Any]:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _set(raw: dict, path: str, value: typing.Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        raw = raw[part]
    raw[last] = value


#: values that are wrong for most settings: another type, out of every sane range, not finite
BAD_VALUES = ("text", -1, 0, 1.5, -1e9, math.nan, math.inf, True, None, [], {"a": 1})


def test_every_bad_value_of_every_key_is_one_params_error(repo_params):
    """Each leaf of params.yaml set to each bad value either loads (the value is allowed) or raises
    ParamsError naming that key: never another exception (a traceback in a stage)."""
    outcomes = {}
    for path in _leaves(repo_params):
        for bad in BAD_VALUES:
            raw = copy.deepcopy(repo_params)
            _set(raw, path, bad)
            try:
                parse_params(raw)
                outcomes[(path, repr(bad))] = "accepted"
            except ParamsError as exc:
                assert path in str(exc) or path.rsplit(".", 1)[0] in str(exc), (path, bad, str(exc))
                assert "\n" not in str(exc)
                outcomes[(path, repr(bad))] = "refused"
    # a wrong type is refused everywhere but where a null or free text is a legal value
    nullable = {"features.pretrained.model", "compute.ray_address"}
    accepted_text = {p for (p, b), o in outcomes.items() if b == "'text'" and o == "accepted"}
    assert accepted_text <= nullable | {
        "download.cache_dir",
        "data.manifest",
        "data.folder",
        "lyrics.encoder",
    }
    assert outcomes[("train.lr", "nan")] == "refused" and outcomes[("evaluate.ci", "inf")] == "refused"


def _fields(cls: type, prefix: str = "") -> dict[str, typing.Any]:
    """Every leaf default of a params dataclass, as params.yaml would spell it."""
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            out.update(_fields(type(default), f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = list(default) if isinstance(default, tuple) else default
    return out


def test_code_defaults_equal_params_yaml(repo_params):
    """params.yaml is where a default lives; the dataclasses restate it only to stay constructible,
    and must say the same (the model set and settings are checked against the registry instead)."""
    code = _fields(P.Params)
    yaml_leaves = _leaves(repo_params)
    registry_shaped = {"train.models", "models"}
    for path, default in code.items():
        if path in registry_shaped:
            continue
        assert path in yaml_leaves, f"{path}: in params.py, not in params.yaml"
        assert yaml_leaves[path] == default, (
            f"{path}: params.py says {default!r}, params.yaml {yaml_leaves[path]!r}"
        )
    extra = {p for p in yaml_leaves if not p.startswith("models.")} - set(code)
    assert not extra, f"params.yaml keys without a dataclass field: {sorted(extra)}"


def test_bad_param_is_one_line_exit_2(repo_root, repo_params, tmp_path):
    """What a user sees: one `error:` line naming the key, exit code 2, no traceback."""
    raw = copy.deepcopy(repo_params)
    raw["models"]["vae"]["latent_dim"] = 1.5
    bad, proc = _configure_with(raw, repo_root, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {bad}: models.vae.latent_dim must be an integer >= 1, got 1.5"], proc.stderr


def test_params_are_frozen(repo_root):
    p = load_params(repo_root / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.beta = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.models["vae"]["latent_dim"] = 1  # type: ignore[index]


def test_yaml_is_parsed_safely(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump({"seed": 3}))
    assert load_params(tmp_path / "ok.yaml").seed == 3
